"""What each choice in our own models' designs buys, reproduced by the tool: every `Ablation` a
model's spec lists (one change to the design: layers or recipe) is trained by the model's recipe
and seed, and scored on the 10,000 test images; a model with microcontroller targets also gets the
int8 flash and tensor arena of its batch-1 `tflm` conversion. `fmnist-train --ablation NAME`
writes results/ablation-NAME.md. Each row is cached in exports/_ablations/ by the same kind of key
as a trained model (spec, recipe, overrides, seed, data, versions, code)."""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import tf_keras as keras
from tabulate import tabulate

from fmnist import data as fdata, environment, resultsdir, storage
from fmnist.atomic import write_json, write_text
from fmnist.codehash import code_digest
from fmnist.config import RunConfig
from fmnist.models import Ablation, build_model, get_spec
from fmnist.report.pages import environment_lines
from fmnist.train import (NOT_TRAINING_CODE, TRAINING_LIBRARIES, EpochProgress, _versions, compile_model,
                          fit_inputs, training_arrays)

ABLATIONS_DIR = "_ablations"


def _micro(spec) -> bool:
    return any(t.metric.startswith("tflm_") for t in spec.targets)


def _score(spec, ds, config: RunConfig, progress) -> dict:
    """Train one design by its recipe; its test accuracy, and its tflm flash and arena if it is a
    microcontroller model."""
    from fmnist.export import ExportContext, get_format
    from fmnist.export.pipeline import calibration_set
    from fmnist.variants import BASE
    keras.utils.set_random_seed(config.seed)
    (x, y), validation = training_arrays(spec, ds, config.subset, config.seed)
    model = build_model(spec.layers, spec.name)
    recipe = spec.recipe
    compile_model(model, recipe.optimizer, recipe.learning_rate, recipe.lr_schedule,
                  recipe.epochs * -(-len(x) // recipe.batch_size))
    start = time.perf_counter()
    model.fit(**fit_inputs(recipe, x, y, config.seed), epochs=recipe.epochs, verbose=0,
              callbacks=[EpochProgress(recipe.epochs, spec.name, progress)])
    _, accuracy = model.evaluate(fdata.normalise(ds.test_images), ds.test_labels, batch_size=1024, verbose=0)
    figures = {"test_accuracy": float(accuracy), "params": int(model.count_params()),
               "train_seconds": time.perf_counter() - start}
    if _micro(spec):
        indices, calibration = calibration_set(ds, config.calibration_size, config.seed)
        with tempfile.TemporaryDirectory(prefix="fmnist-ablation-") as scratch:
            details = get_format("tflm").convert(model, Path(scratch) / "model.tflite",
                                                 ExportContext(calibration, indices, Path(scratch), spec.name, BASE))
        figures |= {"flash_bytes": details["flash_bytes"], "arena_bytes_min": details["arena_bytes_min"]}
    return figures


def run(name: str, exports: Path, ds: fdata.FashionMNIST, config: RunConfig = RunConfig(), progress=True) -> list:
    """Every ablation of `name`, the design itself first: [(ablation, figures, reused)]."""
    spec = get_spec(name)
    found = []
    for ablation in (Ablation("the design"), *spec.ablations):
        changed = ablation.applied(spec)
        changed = replace(changed, recipe=replace(changed.recipe, epochs=config.epochs or changed.recipe.epochs))
        key = storage.cache_key({"layers": repr(changed.layers), "recipe": repr(changed.recipe),
                                 "subset": config.subset, "seed": config.seed, "data": ds.sha256,
                                 "versions": _versions(TRAINING_LIBRARIES), "micro": _micro(spec),
                                 "code": code_digest(_score, exclude=NOT_TRAINING_CODE)})
        path = Path(exports) / ABLATIONS_DIR / name / f"{ablation.slug}.json"
        try:
            saved = json.loads(path.read_text())
            cached = saved["figures"] if saved.get("cache_key") == key else None
        except (OSError, ValueError, KeyError):
            cached = None
        figures = cached or _score(changed, ds, config, progress)
        if not cached:
            write_json(path, {"model": name, "ablation": ablation.label, "cache_key": key, "figures": figures})
        found.append((ablation, changed, figures, bool(cached)))
    return found


def page(name: str, found: list, config: RunConfig) -> str:
    spec = get_spec(name)
    micro = _micro(spec)
    design = found[0][2]["test_accuracy"]
    rows = [[a.label, f"{100 * f['test_accuracy']:.2f}%", f"{100 * (f['test_accuracy'] - design):+.2f}",
             f"{f['params']:,}", *([f"{f['flash_bytes']:,} B", f"{f['arena_bytes_min']:,} B"] if micro else []),
             f"{changed.recipe.epochs}", f"{f['train_seconds']:.0f} s"] for a, changed, f, _ in found]
    quick = [f"{config.subset} training images"] * bool(config.subset) + \
        [f"{config.epochs} epoch{'s' * (config.epochs != 1)}"] * bool(config.epochs)
    return "\n".join([
        f"# What each choice in {name}'s design buys", "",
        f"Written by `fmnist-train --ablation {name}`{' (quick run: ' + ', '.join(quick) + ')' if quick else ''}: "
        f"each row is the design ({spec.summary}) with one change, trained by the model's recipe, seed "
        f"{config.seed}, one run each; accuracy on the 10,000 test images (Keras)"
        + ("; flash and the smallest tensor arena from the batch-1 int8 `tflm` conversion." if micro else "."), "",
        tabulate(rows, ["variant of the design", "test accuracy", "Δ pts vs the design", "params",
                        *(["int8 flash", "arena"] if micro else []), "epochs", "train time"],
                 tablefmt="github", disable_numparse=True), "",
        "One run each: differences of a few tenths of a point are within a run's noise.", "",
        *environment_lines(environment.describe(config.seed))])


def write(name: str, found: list, config: RunConfig, results: Path) -> Path:
    path = Path(results) / f"ablation-{name}.md"
    write_text(path, page(name, found, config))
    resultsdir.add_owned(results, path.name)
    return path
