"""Measure artifacts on runtimes: parity, batch-1 latency, throughput, cold start, size, memory.

Each runtime is measured in a fresh process of its own (spawned), so one runtime's libraries and
memory never bleed into another's figures; inside it, artifacts are measured one after another,
with the peak-RSS counter reset before each (Linux: /proc/self/clear_refs).
"""
from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.artifacts import ArtifactError, verified_path
from fmnist.metrics import latency_stats, parity

LATENCY_SCOPE = ("the runtime call alone: inputs are bound before the timed loop and outputs read after it, "
                 "so int8 quantize/dequantize and input copies are excluded")
MAX_ACCURACY_DROP, MIN_AGREEMENT = 0.005, 0.99


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


@dataclass(frozen=True)
class Job:
    """One artifact to measure on one runtime; `meta` is copied into the record as it is."""
    runtime: str
    format: str
    folder: str            # the artifact's folder (manifest folder, or the model folder for keras)
    artifact: str
    sha256: str
    reference: str         # the source model's test-set probabilities (.npy)
    meta: dict


def time_calls(call, min_calls: int, min_seconds: float, max_calls: int) -> list[int]:
    """Per-call nanoseconds of `call()`: at least `min_calls` and `min_seconds`, at most `max_calls`."""
    clock, samples = time.perf_counter_ns, []
    deadline = clock() + int(min_seconds * 1e9)
    while len(samples) < max_calls and (len(samples) < min_calls or clock() < deadline):
        start = clock()
        call()
        samples.append(clock() - start)
    return samples


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


def flags(figures: dict) -> list[str]:
    reasons = []
    if figures["accuracy_delta"] < -MAX_ACCURACY_DROP:
        reasons.append(f"accuracy {100 * figures['accuracy_delta']:+.2f} pts")
    if figures["agreement"] < MIN_AGREEMENT:
        reasons.append(f"agreement {100 * figures['agreement']:.2f}%")
    return reasons


def measure(runtime, job: Job, images: np.ndarray, labels: np.ndarray, settings: Settings) -> dict:
    """Every figure of one record; raises on a bad artifact or a runtime failure."""
    path = verified_path(Path(job.folder), {"artifact": job.artifact, "sha256": job.sha256})
    threads = settings.threads if runtime.takes_threads else None
    baseline = _reset_peak()
    start = time.perf_counter()
    session = runtime.load(path, job.format, threads=threads)
    load_ms = (time.perf_counter() - start) * 1e3
    one = images[:1]
    start = time.perf_counter()
    session.bind(one)
    session.invoke()
    session.result()
    first_ms = (time.perf_counter() - start) * 1e3

    probabilities = session.predict(images, batch_size=settings.accuracy_batch)
    figures = parity(np.load(job.reference), probabilities, labels)

    session.bind(one)
    for _ in range(settings.warmup_calls):
        session.invoke()
    samples = time_calls(session.invoke, settings.min_calls, settings.min_seconds, settings.max_calls)
    batch = images[:settings.throughput_batch]
    ips = throughput(session, batch, settings.throughput_seconds)
    peak = _rss_mb("VmHWM")
    record = {"threads": threads, "latency_us": latency_stats(samples), "latency_scope": LATENCY_SCOPE,
              "load_ms": load_ms, "first_inference_ms": first_ms,
              "throughput_ips": ips, "throughput_batch": len(batch),
              "peak_rss_mb": peak, "model_rss_mb": peak - baseline, **figures}
    del session
    if runtime.takes_threads and threads != 1:  # the same artifact on one thread, for comparison
        single = runtime.load(path, job.format, threads=1)
        single.bind(one)
        for _ in range(settings.warmup_calls):
            single.invoke()
        record["single_thread"] = {
            "latency_us": latency_stats(time_calls(single.invoke, settings.min_calls, settings.min_seconds,
                                                   settings.max_calls)),
            "throughput_ips": throughput(single, batch, settings.throughput_seconds)}
    return record


def run_runtime(name: str, jobs: list[Job], data_dir: str | None, settings: Settings,
                progress: bool = True) -> list[dict]:
    """Measure every job on runtime `name`, in this process. One record per job; a job that fails
    becomes an error row and the rest go on. An unavailable runtime gives one row saying why."""
    from tqdm import tqdm

    from fmnist import data
    from fmnist.runtimes import get_runtime
    runtime = get_runtime(name)
    described = {"runtime": name, "device": runtime.device}
    why = runtime.unavailable()
    if why:
        return [{**described, "status": "unavailable", "error": why, "formats": list(runtime.formats)}]
    described = {**described, **runtime.describe()}
    ds = data.load(data_dir)
    images, labels = data.normalise(ds.test_images), ds.test_labels
    records = []
    for job in tqdm(jobs, desc=f"bench {name}", unit="artifact", disable=not progress):
        row = {**job.meta, "format": job.format, **described, "artifact_sha256": job.sha256}
        try:
            figures = measure(runtime, job, images, labels, settings)
            row.update(status="ok", error=None, **figures)
            reasons = flags(figures)
            row.update(flagged=bool(reasons), flag_reasons=reasons)
        except ArtifactError as e:
            row.update(status="error", error=str(e))
        except Exception as e:  # a runtime that cannot run one artifact must not stop the others
            row.update(status="error", error=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
        records.append(row)
    return records


def run_isolated(name: str, jobs: list[Job], data_dir, settings: Settings, progress: bool = True) -> list[dict]:
    """run_runtime in a freshly spawned process: a clean memory baseline, and no library of another
    runtime loaded beside it."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(run_runtime, name, jobs, str(data_dir) if data_dir else None,
                           settings, progress).result()


def overhead_check(path: Path, seconds: float = 0.5, repeats: int = 15) -> dict:
    """The harness's batch-1 p50 on a TFLite file against a bare `interpreter.invoke()` loop on the
    same file, in the same process: the ratio says what the harness's own bookkeeping costs."""
    from ai_edge_litert.interpreter import Interpreter

    from fmnist.runtimes import get_runtime
    session = get_runtime("litert").load(path, "tflite", threads=1)
    session.bind(np.zeros((1, 28, 28), dtype=np.float32))
    for _ in range(100):
        session.invoke()
    harness_p50 = latency_stats(time_calls(session.invoke, 100, seconds, 10**6))["p50"]
    bare = Interpreter(model_path=str(path), num_threads=1)
    bare.allocate_tensors()
    invoke = bare.invoke
    per_call = []
    calls = max(100, int(seconds * 1e6 / max(harness_p50, 0.1) / repeats))
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(calls):
            invoke()
        per_call.append((time.perf_counter_ns() - start) / calls / 1e3)
    bare_us = float(np.median(per_call))
    return {"artifact": str(path), "harness_p50_us": harness_p50, "bare_loop_us": bare_us,
            "ratio": harness_p50 / bare_us}
