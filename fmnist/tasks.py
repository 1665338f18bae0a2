"""What a cluster's workers run for the pipeline: one model's training and export, and one runtime's
measuring of some artifacts.

A training job works in a scratch exports/ of its own, filled with the model's folders as the
machine running fmnist-bench has them; the folders it changed travel back whole, and only that
machine writes exports/ (so a worker needs no shared disk). Measuring runs on the machine whose
artifacts and rows they are, through the harness's isolated processes as before.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from fmnist import storage

PROGRESS_TOPIC = "fmnist-progress"  # workers' progress lines (an epoch, an artifact), shown by the client


def folder_files(exports: Path, folders: list[str]) -> dict[str, dict[str, bytes]]:
    """{folder: {path inside it: bytes}} of these model folders as they are now (temp leftovers,
    whose names start with a dot, aside)."""
    found = {}
    for name in folders:
        root = Path(exports) / name
        if root.is_dir():
            found[name] = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
                           if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}
    return found


def _digests(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def write_folders(exports: Path, folders: dict[str, dict[str, bytes]]) -> None:
    """Put each folder in place whole (atomic_dir): a reader sees the old folder or the new one."""
    from fmnist.atomic import atomic_dir
    for name, files in folders.items():
        with atomic_dir(Path(exports) / name) as tmp:
            for relative, data in files.items():
                (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
                (tmp / relative).write_bytes(data)


def _emitter(prefix: str):
    """Send progress lines to the client (a Dask event); silent outside a worker."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return lambda text: None
    return lambda text: text and worker.log_event(PROGRESS_TOPIC, f"{prefix}: {text}")


def _worker_name() -> str:
    try:
        from distributed import get_worker
        worker = get_worker()
        return str(worker.name)
    except (ImportError, ValueError):
        return "this process"


def _one_thread_tensorflow() -> None:
    """One thread each: one worker per core never oversubscribes the cores (TensorFlow's pools are
    otherwise sized to every core in every process). Set once, before TensorFlow's first op."""
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # this worker's earlier job set it already
        pass


def train_and_export(name: str, formats: list, variants: list, config, user_specs: list,
                     shipped: dict[str, dict[str, bytes]], ds) -> dict:
    """export_family for one model on a worker, in a scratch exports/ holding `shipped` (its folders
    as the client has them). Returns the manifests, failures and skipped formats, and `changed`:
    every folder whose files differ from what was shipped, whole."""
    from fmnist import models
    from fmnist.export.pipeline import export_family
    from fmnist.variants import Variant
    _one_thread_tensorflow()
    for spec in user_specs:
        models.adopt(spec)
    emit = _emitter(name)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fmnist-job-") as scratch:
        exports = Path(scratch)
        write_folders(exports, shipped)
        manifests, failures, skipped = export_family(name, formats, variants, exports, ds, config,
                                                     on_progress=lambda text, done: emit(text), progress=emit)
        now = folder_files(exports, [storage.model_dir(exports, name, v.name).name for v in [Variant(), *variants]])
    changed = {folder: files for folder, files in now.items()
               if _digests(files) != _digests(shipped.get(folder, {}))}
    return {"manifests": manifests, "failures": failures, "skipped": skipped, "changed": changed,
            "worker": _worker_name(), "seconds": time.perf_counter() - start}


# What a Dask nanny sets in its worker's environment (one BLAS thread, an eager malloc trim): right
# for a worker that trains on one core, wrong for a runtime being measured, which must see the user's.
WORKER_ENVIRONMENT = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def users_environment() -> dict:
    """The variables of WORKER_ENVIRONMENT as the user's command has them (None: unset)."""
    return {name: os.environ.get(name) for name in WORKER_ENVIRONMENT}


def measure(runtime: str, jobs: list, data_dir, settings, processes: int | None = None,
            environment: dict | None = None) -> dict:
    """One runtime's rows for these jobs, each measured in a process of the harness's own, started
    with the user's `environment` (users_environment()) rather than this worker's."""
    from fmnist.harness import run_isolated
    start = time.perf_counter()
    saved = {name: os.environ.get(name) for name in environment or {}}
    try:
        _set_environment(environment or {})
        rows = run_isolated(runtime, jobs, data_dir, settings, progress=False, processes=processes,
                            pool=_measuring_pool(runtime))
    finally:
        _set_environment(saved)
    return {"rows": rows, "worker": _worker_name(), "seconds": time.perf_counter() - start}


_POOLS: dict = {}  # runtime -> this worker's measuring process for it


def _measuring_pool(runtime: str):
    """One spawned measuring process per runtime for this worker's life: it imports its runtime and
    reads the test set once, not once a job (a process per job cost ~3 s each, measured). A process
    that died is replaced."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    pool = _POOLS.get(runtime)
    if pool is None or getattr(pool, "_broken", False):
        pool = _POOLS[runtime] = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_exit_with, initargs=(os.getpid(),))
    return pool


def _exit_with(parent: int) -> None:
    """In a measuring process: end when the worker that started it ends (killed, it cannot say so)."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _set_environment(values: dict) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
