"""The whole pipeline as one call: train (cached) -> export (cached) -> measure every artifact on
every runtime that runs its format -> publish results/."""
from __future__ import annotations

import datetime
import time
from dataclasses import asdict
from pathlib import Path

from fmnist import cost, environment, report, storage
from fmnist.config import RunConfig
from fmnist.harness import Settings, finish_rows, overhead_check, run_isolated
from fmnist.jobs import NATIVE_FORMAT, collect_jobs
from fmnist.rows import row
from fmnist.runtimes import get_runtime
from fmnist.variants import BASE


def export_failure_rows(failures: list[dict], folders: dict[str, Path], runtimes: list[str]) -> list[dict]:
    """A failed export is a row too (on each selected runtime that would have run it): the table
    says it is missing and why."""
    from fmnist.export import get_format
    rows = []
    for failure in failures:
        record = storage.read_record(folders[failure["folder"]])
        runtime = get_runtime(get_format(failure["format"]).runtime)
        if runtime.name in runtimes:
            rows.append(row(model=record["model"], source=record["source"], variant=record["variant"],
                            format=failure["format"], runtime=runtime.name, device=runtime.device,
                            status="error", error=failure["error"]))
    return rows


def measured_runtimes(formats: list[str], runtimes: list[str]) -> list[str]:
    """The selected runtimes that run at least one selected format (no row for a GPU runtime
    when only TFLite was asked for)."""
    return [r for r in runtimes if set(get_runtime(r).formats) & set(formats)]


def layer_errors(folders: list[Path], formats: list[str]) -> list[dict]:
    """The per-layer quantization error each selected artifact's manifest recorded at export."""
    found = []
    for folder in folders:
        for artifact_folder in storage.artifact_folders(folder):
            manifest = storage.read_manifest(artifact_folder)
            layers = manifest["details"].get("layer_errors")
            if layers and manifest["format"] in formats:
                found.append({"model": manifest["model"], "variant": manifest["variant"], "format": manifest["format"],
                              "agreement": manifest["validation"]["agreement"], "layers": layers})
    return found


def run(names: list[str], formats: list[str], runtimes: list[str], variants: list, exports: Path,
        results: Path, config: RunConfig = RunConfig(), settings: Settings = Settings(), *, data_dir=None,
        progress: bool = True) -> dict:
    """Everything `tox -e bench` does; returns the results document it published."""
    from fmnist import data, export
    from fmnist.export.pipeline import export_all
    runtimes = measured_runtimes(formats, runtimes)
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    clock = time.perf_counter()
    seconds = {}
    ds = data.load(data_dir)
    exported_formats = [export.get_format(f) for f in formats if f != NATIVE_FORMAT]
    manifests, failures, skipped = export_all(names, exported_formats, variants, exports, ds, config,
                                              progress=progress)
    seconds["train_and_export"] = time.perf_counter() - clock
    folders = {}
    for name in names:
        for variant in [BASE, *variants]:
            folder = storage.model_dir(exports, name, variant.name)
            if variant.is_base or (folder / storage.RECORD_FILE).is_file():  # a user model's variant may be "not made"
                folders[folder.name] = folder
    jobs = collect_jobs(list(folders.values()), formats, runtimes)
    records = export_failure_rows(failures, folders, runtimes)
    for runtime in runtimes:
        clock = time.perf_counter()
        records += run_isolated(runtime, jobs.get(runtime, []), data_dir, settings, progress)
        seconds[f"measure_{runtime}"] = time.perf_counter() - clock
    records = [{**r, "machine": environment.HOST_LABEL} for r in finish_rows(records)]
    overhead = None
    clock = time.perf_counter()
    reference_tflite = next((j for j in jobs.get("litert", []) if j.format == "tflite"), None)
    if reference_tflite:
        overhead = overhead_check(Path(reference_tflite.folder) / reference_tflite.artifact)
    seconds["harness_overhead_check"] = time.perf_counter() - clock
    summaries = [storage.training_summary(f) for f in folders.values()]
    costs = cost.run_cost([s for s, _ in summaries], seconds, started, cost.dense_gflops())
    document = {"schema": 1, "environment": environment.describe(config.seed),
                "machines": {environment.HOST_LABEL: environment.machine(environment.HOST_LABEL)},
                "settings": asdict(settings), "stage_seconds": seconds, "harness_overhead": overhead,
                "selection": {"models": names, "formats": formats, "runtimes": runtimes,
                              "variants": [v.name for v in variants]},
                "not_made": skipped, "trained": [s for s, _ in summaries], "run_cost": costs,
                "exported_this_run": [f"{m['source_model']['folder']}/{m['format']}" for m in manifests
                                      if datetime.datetime.fromisoformat(m["environment"]["date"]) >= started],
                "artifacts": len(manifests),
                "layer_errors": layer_errors(list(folders.values()), formats), "records": records}
    plots = {s["model"]: files for s, files in summaries if s["variant"] == "base"}
    return report.publish_benchmark(document, Path(results), plots)
