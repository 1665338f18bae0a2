"""One publish: the whole results/ folder is written to a temp folder and swapped in at once
(`resultsdir.replace`), so a reader sees the old results or the new ones, never a mix, and a page
this run did not make is gone (README links only the pages that exist). Only what the tool wrote is
replaced: every other entry of the folder stays. What other commands wrote is carried over: device
results (results/devices/*.json, validated again at every publish: a file that fails is left out of
the pages, with one warning, and left where it is) and the design ablations (`fmnist-train
--ablation`); so is everything else when only the training page is republished."""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
from pathlib import Path

from fmnist import plots, resultsdir
from fmnist.atomic import write_json, write_text
from fmnist.errors import one_line
from fmnist.report.gfm import spreadsheet_safe
from fmnist.environment import HOST_LABEL
from fmnist.report import analysis, banner, explorer, pages, profile, schema, topics

DEVICES_DIR = "devices"
TRAINING_DIR = "training"
ABLATION_PAGES = "ablation-*.md"
TOPICS = {  # optional pages: file -> (render function, what the README says of it)
    "quantization.md": (topics.quantization_page, "per-layer int8 error, and what 16x8, mixed precision and QAT "
                                                  "buy back"),
    "micro.md": (topics.micro_page, "every int8 artifact on TensorFlow Lite for Microcontrollers: arena, flash, "
                                    "accuracy, and which boards hold it; Arm Ethos-U NPU estimates (Vela)"),
    "profile.md": (profile.profile_page, "where each model's main artifacts spend their time, op by op (ONNX "
                                         "Runtime and OpenVINO profilers, Vela's NPU cycles, MACs from the graph)"),
    "devices.md": (topics.devices_page, "the same artifacts measured on other machines by the bundle runner "
                                        "(`fmnist-bench merge`)"),
}


_WARNED: set = set()


def device_results(results: Path, exports: Path | None) -> list[dict]:
    """The device runs in results/devices/<label>.json that pass validation (`bundle.device_result_
    problem`) against `exports`; each other file is named in one warning line and left out."""
    from fmnist.bundle import device_result_problem
    found = []
    for path in sorted((Path(results) / DEVICES_DIR).glob("*.json")):
        try:
            result = json.loads(path.read_text())
            problem = device_result_problem(result, exports) if exports is not None else "no exports to check it against"
        except (OSError, ValueError, RecursionError) as e:
            problem = f"not a device result ({one_line(e, 120)})"
        if not problem and path.stem != result["machine"]["label"]:
            problem = f"its machine label {result['machine']['label']!r} is not its file name"
        if problem and (str(path), problem) not in _WARNED:  # once a run, not at every refresh
            _WARNED.add((str(path), problem))
            print(f"warning: {path}: left out of the results: {problem}", file=sys.stderr)
        if problem:
            continue
        found.append(result)
    return found


def flatten(record: dict, prefix: str = "") -> dict:
    """Nested fields as dotted columns (latency_us.p50), for the CSV."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            flat[f"{prefix}{key}"] = "; ".join(map(str, value))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _csv(records: list[dict]) -> str:
    rows = [{k: spreadsheet_safe(v) for k, v in flatten(r).items()} for r in records]
    out = io.StringIO()
    writer = csv.DictWriter(out, list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _training(folder: Path, trained: list[dict], plot_files: dict | None, old: Path) -> str | None:
    """training.md and its plots in `folder`: copied from the exports (plot_files) or, when the run
    brought none (a merge), from the results being replaced."""
    links = {}
    if plot_files is None and (old / TRAINING_DIR).is_dir():
        shutil.copytree(old / TRAINING_DIR, folder / TRAINING_DIR)
        plot_files = {p.name: sorted(p.iterdir()) for p in (folder / TRAINING_DIR).iterdir() if p.is_dir()}
        links = {m: [f"{TRAINING_DIR}/{m}/{f.name}" for f in files] for m, files in plot_files.items()}
    else:
        for model, files in (plot_files or {}).items():
            (folder / TRAINING_DIR / model).mkdir(parents=True)
            for file in files:
                shutil.copy(file, folder / TRAINING_DIR / model / Path(file).name)
            links[model] = [f"{TRAINING_DIR}/{model}/{Path(f).name}" for f in files]
    text = pages.training_page(trained, links) if trained else None
    if text is None:
        shutil.rmtree(folder / TRAINING_DIR, ignore_errors=True)
    return text


def finite(value):
    """`value` with every non-finite number as null: benchmark.json is strict JSON (rows with such a
    figure are error rows already; this covers the run's own bookkeeping)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _document_json(document: dict) -> str:
    """benchmark.json with one record per line: a tenth of indented JSON's lines, and a re-run's
    diff still shows which rows changed."""
    compact = lambda value: json.dumps(finite(value), separators=(",", ":"), allow_nan=False)  # noqa: E731
    fields = [f'  {json.dumps(k)}: {compact(v)}' for k, v in document.items() if k != "records"]
    records = ",\n".join(f"    {compact(r)}" for r in document["records"])
    return "{\n" + ",\n".join([*fields, f'  "records": [\n{records}\n  ]']) + "\n}\n"


def publish_benchmark(document: dict, results: Path, training_plots: dict | None = None,
                      new_devices: list[dict] = (), exports: Path | None = None) -> dict:
    """Write results/ whole from the run's document (host rows), the devices merged before (checked
    against `exports`) and `new_devices` (checked device results: one replaces an earlier run of its
    label); returns the document as written to benchmark.json."""
    results = Path(results)
    devices = list({d["machine"]["label"]: d for d in [*device_results(results, exports), *new_devices]}.values())
    host = analysis.host_rows(document["records"])
    document = {**document, "records": host + [r for d in devices for r in d["records"]],
                "machines": {**{k: v for k, v in document.get("machines", {}).items() if k == HOST_LABEL},
                             **{d["machine"]["label"]: d["machine"] for d in devices}}}
    with resultsdir.replace(results) as tmp:
        (tmp / "plots").mkdir()
        for d in devices:
            write_json(tmp / DEVICES_DIR / f"{d['machine']['label']}.json", d)
        for path in sorted((results / DEVICES_DIR).glob("*")):  # the ones left out stay where they are
            if not (tmp / DEVICES_DIR / path.name).exists():
                (tmp / DEVICES_DIR).mkdir(exist_ok=True)
                resultsdir.carry(path, tmp / DEVICES_DIR / path.name)
        carried = {}
        for page in sorted(results.glob(ABLATION_PAGES)):
            shutil.copy2(page, tmp / page.name)
            carried[page.name] = f"what each choice in {page.stem.split('-', 1)[1]}'s design buys " \
                                 f"(`fmnist-train --ablation {page.stem.split('-', 1)[1]}`)"
        made = {"accuracy.md": "accuracy and parity: the best rows (every row: accuracy.csv)", "latency.md": "latency, "
                "throughput, cold start and memory: the best rows (every row: latency.csv)", "size.md": "artifact sizes, "
                "parameters and MACs (every artifact: size.csv)", "explorer.html": "every measured row in your browser, "
                "offline: filter, sort, and accuracy against latency with the Pareto front"}
        write_text(tmp / "explorer.html", explorer.page(document))
        write_text(tmp / "accuracy.md", pages.accuracy_page(document, tmp))
        write_text(tmp / "latency.md", pages.latency_page(document, tmp))
        write_text(tmp / "size.md", pages.size_page(document, tmp))
        for name, (render, what) in TOPICS.items():
            text = render(document, tmp)
            if text:
                write_text(tmp / name, text)
                made[name] = what
        training = _training(tmp, document.get("trained", []), training_plots, results)
        if training:
            write_text(tmp / "training.md", training)
            made["training.md"] = "how each model was trained"
        made |= carried
        made["benchmark.json"] = "every record, with the environment and settings (fields: the project README)"
        made["benchmark.csv"] = "the same records, one line each, nested fields flattened"
        made["benchmark.schema.json"] = "JSON Schema of benchmark.json and of one record (from fmnist.rows.Row)"
        write_text(tmp / "benchmark.json", _document_json(document))
        write_text(tmp / "benchmark.csv", _csv(document["records"]))
        write_json(tmp / "benchmark.schema.json", schema.document_schema())
        ok = analysis.ok_rows(host)
        drawn = []
        if ok:
            for plot in ("accuracy_vs_latency", "latency_by_runtime"):
                getattr(plots, plot)(ok, tmp / "plots" / f"{plot}.png")
                if (tmp / "plots" / f"{plot}.png").is_file():  # a plot with nothing to show is not drawn
                    drawn.append(f"plots/{plot}.png")
        if explorer.browser() and document.get("complete", True):  # a browser per refresh would cost a core
            try:
                explorer.screenshot(tmp / "explorer.html", tmp / "plots" / "explorer.png", explorer.browser())
                drawn.append("plots/explorer.png")
            except Exception as e:  # noqa: BLE001  (a picture of the page is no reason to lose the run)
                print(f"warning: no screenshot of explorer.html ({one_line(e, 120)})", file=sys.stderr)
        write_text(tmp / "README.md", pages.readme(document, made, drawn))
        banner.mark_incomplete(tmp, document, carried)
    return document


def publish_training(trained: list[dict], training_plots: dict, results: Path) -> None:
    """Republish only training.md (fmnist-train): every other file of results/ is carried over."""
    results = Path(results)
    with resultsdir.replace(results) as tmp:
        for name in resultsdir.owned(results) - {TRAINING_DIR, "training.md"}:
            if (results / name).exists():
                resultsdir.carry(results / name, tmp / name)
        text = _training(tmp, trained, training_plots, results)
        if text:
            write_text(tmp / "training.md", text)
