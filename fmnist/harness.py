"""Measure artifacts on runtimes: parity, batch-1 latency, throughput, cold start, size, memory.

Each runtime is measured in a fresh process of its own (spawned), so one runtime's libraries and
memory never bleed into another's figures; inside it, artifacts are measured one after another,
with the peak-RSS counter reset before each (Linux: /proc/self/clear_refs).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fmnist.codehash import code_digest
from fmnist.errors import one_line
from fmnist.metrics import flags, latency_stats, parity, time_calls
from fmnist.rows import row
from fmnist.validation import row_problem
from fmnist.storage import StorageError, reference_probabilities, verified_path


@dataclass(frozen=True)
class Settings:
    """How long and how much to measure; the defaults keep a full run within minutes."""
    warmup_calls: int = 10
    min_calls: int = 25
    min_seconds: float = 0.1
    max_calls: int = 20000
    throughput_batch: int = 256
    throughput_seconds: float = 0.05
    accuracy_batch: int = 1000
    threads: int = os.cpu_count() or 1
    test_images: int | None = None     # all 10,000 unless set (quick runs in the tests)
    reuse_figures: bool = True         # a row measured before on this machine, file and settings is reused


@dataclass(frozen=True)
class Job:
    """One artifact to measure on one runtime; `meta` is copied into the record as it is."""
    runtime: str
    format: str
    folder: str            # the artifact's folder (manifest folder, or the model folder for keras)
    artifact: str
    sha256: str
    reference: str         # the source model's folder: its record vouches for the probabilities
    meta: dict
    files: dict | None = None  # every file of the artifact and its SHA-256 (its manifest's)


def throughput(session, images, seconds: float) -> float:
    session.bind(images)
    session.invoke()  # warm-up at this batch size
    calls = time_calls(session.invoke, 3, seconds, 10_000)
    return len(images) * len(calls) / (sum(calls) / 1e9)


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> float:
    """Return memory to the OS, reset the peak-RSS counter, return the current RSS (MB)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # without it the peak is the process's, which can only overstate
    return _rss_mb("VmRSS")


def _timed_batch_one(session, one, settings: Settings) -> dict:
    session.bind(one)
    for _ in range(settings.warmup_calls):
        session.invoke()
    return latency_stats(time_calls(session.invoke, settings.min_calls, settings.min_seconds, settings.max_calls))


def measure(runtime, job: Job, images: np.ndarray, labels: np.ndarray, settings: Settings) -> dict:
    """Every figure of one record; raises on a bad artifact or a runtime failure. The batch-1 work
    (load, first call, warm-up, timed loop) runs first, so its memory reading is what an edge device
    needs for one image; the large-batch passes (accuracy, throughput) come after, with a peak of
    their own. `top1` (the predicted class of every test image) is for other rows' agreement."""
    path = verified_path(Path(job.folder), job.artifact, job.sha256, job.files)
    if runtime.kind == "estimate":  # a compiler's figures for a device: nothing runs here
        return runtime.estimate(path, job.format)
    threads = settings.threads if runtime.takes_threads else None
    baseline = _reset_peak()  # the runtime's library is imported already (run_runtime)
    start = time.perf_counter()
    session = runtime.load(path, job.format, threads=threads)
    load_ms = (time.perf_counter() - start) * 1e3
    one = images[:1]
    start = time.perf_counter()
    session.bind(one)
    session.invoke()
    session.result()
    first_ms = (time.perf_counter() - start) * 1e3
    latency = _timed_batch_one(session, one, settings)
    batch_one_peak = _rss_mb("VmHWM")

    probabilities = session.predict(images, batch_size=settings.accuracy_batch)
    reference = reference_probabilities(Path(job.reference))[:len(labels)]
    figures = {**parity(reference, probabilities, labels), **session.extras(images, probabilities)}
    if runtime.derived_throughput:
        ips, batch, scope = 1e6 / latency["mean"], images[:1], runtime.derived_throughput
    else:
        batch = images[:settings.throughput_batch]
        scope = ("measured, one call per image (the graph's batch is fixed)" if getattr(session, "one_image_per_call", False)
                 else "measured")
        ips = throughput(session, batch, settings.throughput_seconds)
    record = {"threads": threads, "latency_us": latency, "latency_scope": runtime.latency_scope,
              "load_ms": load_ms, "first_inference_ms": first_ms,
              "throughput_ips": ips, "throughput_batch": len(batch), "throughput_scope": scope,
              "peak_rss_mb": batch_one_peak, "model_rss_mb": batch_one_peak - baseline,
              "peak_rss_mb_large_batches": _rss_mb("VmHWM"), **figures,
              "top1": probabilities.argmax(axis=1).astype(np.uint8)}
    del session
    if runtime.takes_threads and threads != 1:  # the same artifact on one thread, for comparison
        single = runtime.load(path, job.format, threads=1)
        record["single_thread"] = {"latency_us": _timed_batch_one(single, one, settings),
                                   "throughput_ips": throughput(single, batch, settings.throughput_seconds)}
    return record


class _Lines:
    """A progress bar's stand-in on a bare device (no tqdm): one line per item."""

    def __init__(self, items, desc: str, enabled: bool, total: int):
        self.items, self.desc, self.enabled, self.total, self.done = items, desc, enabled, total, 0

    def __iter__(self):
        for item in self.items:
            self.update()
            yield item

    def update(self, n: int = 1):
        self.done += n
        if self.enabled:
            print(f"{self.desc}: {self.done}/{self.total}", file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress(items, desc: str, enabled: bool, total: int | None = None):
    """tqdm where it is installed; on a bare device, one line per item."""
    total = len(items) if total is None else total
    try:
        from tqdm import tqdm
    except ImportError:
        return _Lines(items, desc, enabled, total)
    return tqdm(items, desc=desc, unit="artifact", total=total, disable=not enabled)


@functools.lru_cache(maxsize=2)
def _test_set(data_dir: str | None):
    """The test images and labels, read once per process (a worker is handed many jobs)."""
    from fmnist import data
    return data.load_test_set(data_dir)


def run_runtime(name: str, jobs: list[Job], data_dir: str | None, settings: Settings,
                progress: bool = True) -> list[dict]:
    """Measure every job on runtime `name`, in this process. One row per job; a job that fails
    becomes an error row and the rest go on. An unavailable runtime gives one row saying why.
    `data_dir`: where the test set is (IDX files, or a bundle's .npz). A row's `top1` (numpy,
    every test image's class) is for the caller's agreement figures, not for the results."""
    from fmnist import data
    from fmnist.runtimes import get_runtime
    runtime = get_runtime(name)
    described = {"runtime": name, "device": runtime.device}
    why = runtime.unavailable()
    if why:
        return [row(**described, status="unavailable", error=why, formats=list(runtime.formats))]
    described = {**described, **runtime.describe()}
    images, labels = _test_set(data_dir)
    images, labels = data.normalise(images[:settings.test_images]), labels[:settings.test_images]
    runtime.import_library()
    latency_stats(time_calls(lambda: None, 100, 0.001, 1000))  # the harness's own first-use cost: not a model's
    records = []
    for job in _progress(jobs, f"bench {name}", progress):
        record = row(**job.meta, format=job.format, **described, artifact_sha256=job.sha256)
        try:
            _with_figures(record, runtime, *_measure_or_reuse(runtime, job, images, labels, settings, described))
        except Exception as e:  # a runtime that cannot run one artifact must not stop the others
            record.update(status="error", error=one_line(e))
        records.append(record)
    return records


def _with_figures(record: dict, runtime, figures: dict, reused: bool) -> dict:
    if runtime.kind == "estimate":
        record.update(status="estimated", error=None, kind=runtime.kind, **figures)
    else:
        reasons = flags(figures) + record.get("variant_flags", [])
        record.update(status="ok", error=None, kind=runtime.kind, **figures, flagged=bool(reasons),
                      flag_reasons=reasons)
    record["reused"] = reused
    return record


def reused_row(name: str, job: Job, settings: Settings) -> dict | None:
    """The job's row from figures measured before on this very file (same key), read without
    starting the runtime's process: what a warm run reads instead of measuring. None when it must
    be measured (nothing reusable, a GPU runtime whose GPU may have gone, a file that changed)."""
    from fmnist.runtimes import get_runtime
    from fmnist.storage import cached_measurement
    runtime = get_runtime(name)
    if not settings.reuse_figures or runtime.device == "gpu" or runtime.unavailable():
        return None
    described = {"runtime": name, "device": runtime.device, **runtime.describe()}
    try:
        verified_path(Path(job.folder), job.artifact, job.sha256, job.files)
        figures = cached_measurement(Path(job.folder), name, measurement_key(runtime, job, settings, described))
    except StorageError:
        return None
    if figures is None:
        return None
    return _with_figures(row(**job.meta, format=job.format, **described, artifact_sha256=job.sha256), runtime,
                         figures, True)


def measurement_key(runtime, job: Job, settings: Settings, described: dict) -> str:
    """What a measured row depends on: the artifact and reference hashes, the runtime and its version,
    the settings, the machine (CPU, its SIMD extensions, cores, OS, Python), and the code that
    measures it (the harness's measure and this runtime's adapter, with all they use)."""
    from fmnist.environment import HOST_LABEL, machine
    from fmnist.storage import cache_key, read_record
    return cache_key({"artifact": job.sha256, "reference": read_record(Path(job.reference))["probabilities_sha256"],
                      "runtime": described, "format": job.format, "machine": machine(HOST_LABEL),
                      "settings": {k: v for k, v in asdict(settings).items() if k != "reuse_figures"},
                      "code": code_digest(measure, runtime)})


def _measure_or_reuse(runtime, job: Job, images, labels, settings: Settings, described: dict) -> tuple[dict, bool]:
    """(figures, reused): measure(), or the figures measured before on this very file with the same
    key (measurement_key). As with exports, what has not changed is not redone: a warm run
    re-measures only what changed. `reuse_figures=False` (--remeasure) measures everything afresh."""
    if not settings.reuse_figures:
        return measure(runtime, job, images, labels, settings), False
    from fmnist.storage import cached_measurement, write_measurement
    verified_path(Path(job.folder), job.artifact, job.sha256, job.files)  # a reused figure is of this very file
    key = measurement_key(runtime, job, settings, described)
    figures = cached_measurement(Path(job.folder), runtime.name, key)
    if figures is not None:
        return figures, True
    figures = measure(runtime, job, images, labels, settings)
    write_measurement(Path(job.folder), runtime.name, key, figures)
    return figures, False


def measure_one(name: str, data_dir, settings: Settings, job: Job) -> dict:
    """One job's row, in a measuring process: what run_isolated hands each process."""
    return run_runtime(name, [job], data_dir, settings, False)[0]


def _run_unit(task, jobs: tuple) -> list[dict]:
    """One process's unit of work: its jobs, one after another (task per job)."""
    return [task(job) for job in jobs]


def _in_processes(task, units: list[tuple], workers: int, bar, pool=None) -> tuple[dict, list]:
    """({id(job): task(job)}, jobs lost to a process that died): each unit (a tuple of jobs, run in
    turn in one process) goes to one of `workers` spawned processes, which take unit after unit;
    or to `pool`, a process pool the caller keeps (and shuts down)."""
    rows, lost = {}, []
    with contextlib.nullcontext(pool) if pool else \
            ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_run_unit, task, unit): unit for unit in units}
        for future in as_completed(futures):
            unit = futures[future]
            try:
                rows.update(zip(map(id, unit), future.result()))
                bar.update(len(unit))
            except BrokenProcessPool:  # the process died: a job of this unit, or one beside it, killed it
                lost += unit
    return rows, lost


def _units(runtime, jobs: list[Job], workers: int) -> list[tuple]:
    """Jobs as units of work: with several processes, the most multiply-accumulates first (no core
    idles at the end while the other finishes a CNN); for a runtime with `twins`, one source model's
    jobs together, so the process can reuse a pass of a network it has run."""
    order = sorted(jobs, key=lambda j: -(j.meta.get("macs") or 0)) if workers > 1 else jobs
    if not runtime.twins:
        return [(job,) for job in order]
    groups = {}
    for job in order:
        groups.setdefault(job.reference, []).append(job)
    return [tuple(group) for group in groups.values()]


def run_isolated(name: str, jobs: list[Job], data_dir, settings: Settings, progress: bool = True,
                 task=measure_one, processes: int | None = None, pool=None) -> list[dict]:
    """run_runtime in freshly spawned processes: a clean memory baseline, and no library of another
    runtime loaded beside it. One process takes unit after unit of jobs (_units); a single-threaded
    runtime gets one process per core. A process that dies (a runtime's segfault) costs only the job
    that killed it: the jobs it took down with it run again, each alone, and the one that kills its
    process again is an error row. Rows come back in the order of `jobs`. `task(name, data_dir,
    settings, job)` is what each process runs for a job (a test hands in one that crashes);
    `processes` caps the processes at once (a cluster's worker holds one core); `pool`, a one-process
    pool of the caller's, is used instead of new processes (a worker keeps one per runtime)."""
    from fmnist.runtimes import get_runtime
    runtime = get_runtime(name)
    data_dir = str(data_dir) if data_dir else None
    if runtime.unavailable():  # one row saying why; nothing to isolate
        return run_runtime(name, jobs, data_dir, settings, progress)
    workers = min(len(jobs), processes or os.cpu_count() or 1) if runtime.single_threaded else 1
    run = functools.partial(task, name, data_dir, settings)
    with _progress(None, f"bench {name}", progress, total=len(jobs)) as bar:
        rows, lost = _in_processes(run, _units(runtime, jobs, workers), max(workers, 1), bar,
                                   pool if workers <= 1 else None)
        for job in lost:
            again, crashed = _in_processes(run, [(job,)], 1, bar)
            rows.update(again)
            if crashed:
                rows[id(job)] = row(**job.meta, format=job.format, runtime=name, device=runtime.device,
                                    artifact_sha256=job.sha256, status="error",
                                    error=f"the {name} process crashed on this artifact (a runtime failure, e.g. a "
                                          f"segfault)")
                bar.update()
    return [rows[id(job)] for job in jobs]


def agreements(rows: list[dict], runtime: str, reference_runtime: str) -> None:
    """Top-1 agreement of `runtime`'s rows with `reference_runtime`'s rows of the same artifact, from
    the stored predictions of each (no pass is run again, and the measured process ran only its own
    runtime). Sets it in the row's runtime section (e.g. `tflm.agreement_with_litert`)."""
    predictions = {r["artifact_sha256"]: r["top1"] for r in rows
                   if r.get("runtime") == reference_runtime and r.get("top1") is not None}
    for r in rows:
        if r.get("runtime") == runtime and r.get("status") == "ok" and runtime in r:
            theirs = predictions.get(r["artifact_sha256"])
            r[runtime][f"agreement_with_{reference_runtime}"] = (
                float(np.mean(theirs == r["top1"])) if theirs is not None and len(theirs) == len(r["top1"]) else None)


def finish_rows(records: list[dict]) -> list[dict]:
    """Each runtime's agreement with the runtime it names (TFLM's with LiteRT), from the rows'
    stored predictions; the predictions themselves do not go into results/. The host's benchmark
    and the device runner both finish their rows here."""
    from fmnist.runtimes import get_runtime
    for runtime in {r.get("runtime") for r in records if r.get("status") == "ok"}:
        for reference in get_runtime(runtime).agrees_with:
            agreements(records, runtime, reference)
    return [unsound_as_error({k: v for k, v in r.items() if k != "top1"}) for r in records]


def unsound_as_error(record: dict) -> dict:
    """A row whose figures are not all finite and in range (a model that outputs NaN, say) is an
    error row saying which figure: no such figure is ever published."""
    problem = row_problem(record) if record.get("status") in ("ok", "estimated") else None
    if not problem:
        return record
    kept = ("model", "source", "origin", "variant", "format", "runtime", "device", "provider", "version", "threads",
            "machine", "artifact_sha256", "kind")
    return row(**{k: record[k] for k in kept if k in record}, status="error", error=f"unsound figures: {problem}")
