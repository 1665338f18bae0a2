"""The whole pipeline as one call: train (cached) -> export (cached) -> measure every artifact on
every runtime that runs its format -> publish results/."""
from __future__ import annotations

import datetime
import json
import time
from dataclasses import asdict
from pathlib import Path

from fmnist import cost, environment, report, storage
from fmnist.config import RunConfig
from fmnist.harness import Settings, finish_rows
from fmnist.overhead import overhead_check
from fmnist.jobs import NATIVE_FORMAT, collect_jobs
from fmnist.plan import Plan
from fmnist.rows import row
from fmnist.runtimes import get_runtime, list_runtimes
from fmnist.validation import row_key, row_problem
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
        progress: bool = True, cluster: str | None = None, insecure: bool = False, devices=()) -> dict:
    """Everything `tox -e bench` does, as jobs on a cluster (fmnist.schedule); returns the results
    document it published. results/ is refreshed as the rows come in (at most every REFRESH_SECONDS),
    so the first tables can be read long before a cold run ends."""
    from fmnist import data, export, schedule
    runtimes = measured_runtimes(formats, runtimes)
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    ds = data.load(data_dir)
    plan = Plan(names, [export.get_format(f) for f in formats if f != NATIVE_FORMAT], formats, runtimes,
                         variants, Path(exports), config, settings, str(data_dir) if data_dir else None, devices)
    last = [time.monotonic()]

    def refresh(outcome):
        if time.monotonic() - last[0] >= REFRESH_SECONDS:
            _publish(plan, outcome, started, _stage_seconds(outcome), None, results, complete=False)
            last[0] = time.monotonic()
    outcome, wall = schedule.execute(plan, ds, cluster=cluster, insecure=insecure, progress=progress,
                                     on_rows=refresh)
    seconds = _stage_seconds(outcome)
    clock = time.perf_counter()
    overhead = None
    reference_tflite = next((r for r in outcome.rows if r[0] == "litert" and r[2] == "tflite"), None)
    if reference_tflite:
        overhead = overhead_check(Path(reference_tflite[1]) / export.get_format("tflite").filename)
    seconds["harness_overhead_check"] = time.perf_counter() - clock
    return _publish(plan, outcome, started, seconds, overhead, results, wall=wall + seconds["harness_overhead_check"])


REFRESH_SECONDS = 60.0


def carried_rows(results: Path, exports: Path, records: list[dict], runtimes: list[str]) -> list[dict]:
    """The host rows of results/ this run did not make, kept while their file is still the one in the
    exports (each with the date it was measured): a run of a few models updates their rows and keeps
    every other; a row whose file changed or is gone is dropped, never shown as current."""
    try:
        old = json.loads((Path(results) / "benchmark.json").read_text())
        date, rows = old["environment"]["date"], list(old["records"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    from fmnist.export import list_formats
    made = {row_key(r) for r in records}
    current = {}
    for folder in storage.trained_folders(exports):
        try:
            jobs = collect_jobs([folder], [NATIVE_FORMAT, *list_formats()], list_runtimes())
        except storage.StorageError:
            continue
        current |= {(j.meta["model"], j.meta["variant"], j.format, j.runtime): j.sha256 for js in jobs.values() for j in js}
    kept = []
    for r in rows:
        if not isinstance(r, dict) or r.get("machine") != environment.HOST_LABEL or row_problem(r) or row_key(r) in made:
            continue
        if r["status"] == "unavailable" and r.get("runtime") not in runtimes or \
                current.get((r.get("model"), r.get("variant"), r.get("format"), r.get("runtime"))) == r.get("artifact_sha256"):
            kept.append({**r, "measured_on": r.get("measured_on", date)})
    return kept


def _stage_seconds(outcome) -> dict:
    """Each stage's time: the jobs' own seconds, summed per stage (stages overlap on the cluster)."""
    seconds = {}
    for job in outcome.jobs:
        if "seconds" in job:
            stage = "train_and_export" if job["job"].startswith("train+export") else f"measure_{job['job'].split()[1]}"
            seconds[stage] = seconds.get(stage, 0.0) + job["seconds"]
    return seconds


def _publish(plan, outcome, started, seconds: dict, overhead, results: Path, complete: bool = True,
             wall: float | None = None) -> dict:
    """results/ from what the jobs gave back so far."""
    folders = {}
    for name in plan.names:
        for variant in [BASE, *plan.variants]:
            folder = storage.model_dir(plan.exports, name, variant.name)
            if (folder / storage.RECORD_FILE).is_file():  # a user model's variant may be "not made"
                folders[folder.name] = folder
    jobs = collect_jobs(list(folders.values()), plan.measured_formats, plan.runtimes)
    records = export_failure_rows(outcome.failures, folders, plan.runtimes) + list(outcome.lost)
    said = set()  # an unavailable runtime says so once, however many jobs it was handed
    for key in [(runtime, job.folder, job.format) for runtime in plan.runtimes for job in jobs.get(runtime, [])]:
        if key in outcome.rows and (key[0] not in said or outcome.rows[key]["status"] != "unavailable"):
            records.append(outcome.rows[key])
            said |= {key[0]} if outcome.rows[key]["status"] == "unavailable" else set()
    described = environment.describe(plan.config.seed)
    records = [{**r, "machine": environment.HOST_LABEL, "measured_on": described["date"]} for r in finish_rows(records)]
    kept = carried_rows(results, plan.exports, records, plan.runtimes)
    records += kept
    for r in kept:
        folder = storage.model_dir(plan.exports, r["model"], r["variant"]) if r.get("model") else None
        if folder and (folder / storage.RECORD_FILE).is_file():
            folders.setdefault(folder.name, folder)
    summaries = [storage.training_summary(f) for f in folders.values()]
    costs = cost.run_cost([s for s, _ in summaries], seconds, started, cost.dense_gflops() if complete else None, wall)
    document = {"schema": 1, "complete": complete, "environment": described,
                "machines": {environment.HOST_LABEL: environment.machine(environment.HOST_LABEL)},
                "settings": asdict(plan.settings), "stage_seconds": seconds, "harness_overhead": overhead,
                "selection": {"models": plan.names, "formats": plan.measured_formats, "runtimes": plan.runtimes,
                              "variants": [v.name for v in plan.variants], "devices": list(plan.devices or [])},
                "not_made": outcome.skipped, "trained": [s for s, _ in summaries], "run_cost": costs,
                "jobs": outcome.jobs,
                "exported_this_run": [f"{m['source_model']['folder']}/{m['format']}" for m in outcome.manifests
                                      if datetime.datetime.fromisoformat(m["environment"]["date"]) >= started],
                "artifacts": len(outcome.manifests),
                "layer_errors": layer_errors(list(folders.values()), plan.measured_formats), "records": records}
    plots = {s["model"]: files for s, files in summaries if s["variant"] == "base"}
    return report.publish_benchmark(document, Path(results), plots, new_devices=outcome.devices,
                                    exports=plan.exports)
