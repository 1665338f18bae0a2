"""The whole pipeline as one call: train (cached) -> export (cached) -> measure every artifact on
every runtime that runs its format -> write results/."""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from fmnist import environment, report
from fmnist.artifacts import MANIFEST, digest, read_manifest
from fmnist.harness import Job, Settings, overhead_check, run_isolated
from fmnist.runtimes import get_runtime, runtimes_for
from fmnist.train import MODEL_FILE, PROBABILITIES_FILE, read_record


def _meta(record: dict, artifact: dict) -> dict:
    return {"model": record["model"], "source": record["source"], "variant": record["variant"],
            "size_bytes": artifact["size_bytes"], "size_gzip_bytes": artifact["size_gzip_bytes"],
            "params": record["params"], "macs": record["macs"], "nonzero_params": record.get("nonzero_params"),
            "source_test_accuracy": record["test_accuracy"]}


def collect_jobs(model_folders: list[Path], formats: list[str], runtimes: list[str]) -> dict[str, list[Job]]:
    """Jobs per runtime, found from the model folders and the manifests in them alone."""
    from fmnist.export import get_format
    jobs = defaultdict(list)

    def add(fmt, folder, artifact, described, record, reference):
        for runtime in runtimes_for(fmt):
            if runtime.name in runtimes and not (runtime.base_only and record["variant"] != "base"):
                jobs[runtime.name].append(Job(runtime.name, fmt, str(folder), artifact, described["sha256"],
                                              reference, _meta(record, described)))

    for folder in model_folders:
        record = read_record(folder)
        reference = str(folder / PROBABILITIES_FILE)
        if "keras" in formats:
            add("keras", folder, MODEL_FILE, digest(folder / MODEL_FILE), record, reference)
        for artifact_folder in sorted(p.parent for p in folder.glob(f"*/{MANIFEST}")):
            manifest = read_manifest(artifact_folder)
            fmt = manifest["format"]
            if fmt in formats and not get_format(fmt).not_for(record["variant"]):  # not a stale leftover
                add(fmt, artifact_folder, manifest["artifact"], manifest, record, reference)
    return jobs


def export_failure_rows(failures: list[dict], folders: dict[str, Path]) -> list[dict]:
    """A failed export is a row too: the table says it is missing and why."""
    from fmnist.export import get_format
    rows = []
    for failure in failures:
        record = read_record(folders[failure["folder"]])
        runtime = get_runtime(get_format(failure["format"]).runtime)
        rows.append({"model": record["model"], "source": record["source"], "variant": record["variant"],
                     "format": failure["format"], "runtime": runtime.name, "device": runtime.device,
                     "status": "error", "error": failure["error"]})
    return rows


def run(names: list[str], formats: list[str], runtimes: list[str], variants: list[str], exports: Path,
        results: Path, *, data_dir=None, settings: Settings | None = None, finetune_epochs: int = 1,
        epochs: int | None = None, subset: int | None = None, progress: bool = True) -> dict:
    """Everything `tox -e bench` does; returns the results document it wrote."""
    from fmnist import data, export, train
    from fmnist.export.pipeline import export_all
    settings = settings or Settings()
    clock = time.perf_counter()
    seconds = {}
    ds = data.load(data_dir)
    exported_formats = [export.get_format(f) for f in formats if f != "keras"]
    _, failures, skipped = export_all(names, exported_formats, variants, exports, ds,
                                      finetune_epochs=finetune_epochs, epochs=epochs, subset=subset,
                                      progress=progress)
    seconds["train_and_export"] = time.perf_counter() - clock
    folders = {}
    for name in names:
        for variant in ["base", *variants]:
            folder = train.model_dir(exports, name, variant)
            folders[folder.name] = folder
    jobs = collect_jobs(list(folders.values()), formats, runtimes)
    records = export_failure_rows(failures, folders)
    for runtime in runtimes:
        clock = time.perf_counter()
        records += run_isolated(runtime, jobs.get(runtime, []), data_dir, settings, progress)
        seconds[f"measure_{runtime}"] = time.perf_counter() - clock
    overhead = None
    reference_tflite = next((j for j in jobs.get("litert", []) if j.format == "tflite"), None)
    if reference_tflite:
        overhead = overhead_check(Path(reference_tflite.folder) / reference_tflite.artifact)
    document = {"schema": 1, "environment": environment.describe(), "settings": asdict(settings),
                "stage_seconds": seconds, "harness_overhead": overhead,
                "selection": {"models": names, "formats": formats, "runtimes": runtimes, "variants": variants},
                "not_made": skipped, "records": records}
    report.write_benchmark(document, Path(results), exports)
    report.write_training(exports, Path(results))
    return document
