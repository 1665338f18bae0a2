"""Markdown reports under results/, written from the records on disk (the report never runs a model)."""
from __future__ import annotations

import shutil
from pathlib import Path

from tabulate import tabulate

from fmnist.atomic import atomic_dir, write_text
from fmnist.models import get_spec, list_models
from fmnist.train import RECORD_FILE, TrainedModelError, model_dir, read_record

TRAINING_PLOTS = ("learning_curves.png", "confusion_matrix.png", "predictions.png")


def pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def environment_lines(env: dict) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return [f"- CPU: {env['cpu']} ({env['cores']} cores, {env['machine']}), Python {env['python']}",
            f"- Libraries: {versions}",
            f"- Seed: {env['seed']}; run on {env['date']}"]


def _reported(record: dict) -> str:
    names = {"train_accuracy": "train", "validation_accuracy": "val", "test_accuracy": "test"}
    return ", ".join(f"{names[k]} {pct(v)}" for k, v in record["reported"].items()) or "none"


def _quick_run(record: dict) -> str:
    """Says when a row is not the full recipe, so a quick run is never mistaken for a result."""
    parts = []
    if record["subset"]:
        parts.append(f"subset of {record['subset']} images")
    if record["epochs_planned"] != get_spec(record["model"]).recipe.epochs:
        parts.append(f"{record['epochs_planned']} epochs")
    return f" (quick run: {', '.join(parts)})" if parts else ""


def write_training(exports: Path, results: Path) -> Path:
    """results/training.md: one row per trained registered model, plus the plots it links."""
    rows, env = [], None
    plots_dir = Path(results) / "training"
    with atomic_dir(plots_dir) as tmp_plots:
        for name in list_models():
            folder = model_dir(exports, name)
            try:
                record = read_record(folder)
            except TrainedModelError:
                continue
            env = env or record["environment"]
            (tmp_plots / name).mkdir()
            links = []
            for plot in TRAINING_PLOTS:
                shutil.copy(folder / plot, tmp_plots / name / plot)
                links.append(f"[{plot.split('.')[0].replace('_', ' ')}](training/{name}/{plot})")
            if (Path(exports) / "_lr_sweeps" / name / "lr_vs_loss.png").is_file():
                shutil.copy(Path(exports) / "_lr_sweeps" / name / "lr_vs_loss.png", tmp_plots / name)
                links.append(f"[lr vs loss](training/{name}/lr_vs_loss.png)")
            rows.append([
                name + _quick_run(record), record["source"], f"{record['params']:,}",
                f"{record['epochs_run']}/{record['epochs_planned']}", record["stop_reason"],
                f"{record['recipe']['optimizer']} lr {record['recipe']['learning_rate']:.3g}",
                pct(record["train_accuracy"]), pct(record["validation_accuracy"]), pct(record["test_accuracy"]),
                _reported(record), f"{record['train_seconds']:.0f} s", " · ".join(links)])
    headers = ["model", "README", "params", "epochs run", "stop reason", "optimizer", "train acc",
               "val acc", "test acc", "README reports", "train time", "plots"]
    lines = ["# Training: every registered model by its README's recipe", "",
             "Written by `fmnist-train` from the records in exports/; do not edit by hand.",
             "Train accuracy is the last epoch's running average (as Keras reports it and the READMEs "
             "quote it); val is the recipe's validation data (the test set for READMEs 001/002, a held-out "
             "5,000 training images for 003); test is the 10,000 test images.", "",
             tabulate(rows, headers, tablefmt="github", disable_numparse=True), ""]
    if env:
        lines += ["## Environment", "", *environment_lines(env), ""]
    path = Path(results) / "training.md"
    write_text(path, "\n".join(lines))
    return path
