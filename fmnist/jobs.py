"""What there is to measure: every (artifact, runtime) pair found from model folders and the
manifests in them alone. TF-free and plot-free: the host benchmark, the regression suite and the
on-device runner all start here."""
from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

from fmnist import storage
from fmnist.harness import Job
from fmnist.metrics import variant_flags
from fmnist.runtimes import runtimes_for
from fmnist.variants import from_record

NATIVE_FORMAT = "keras"  # the trained model itself: measured, never exported


def _meta(record: dict, described: dict, base_accuracy: float | None) -> dict:
    return {"model": record["model"], "source": record["source"], "variant": record["variant"],
            "size_bytes": described["size_bytes"], "size_gzip_bytes": described["size_gzip_bytes"],
            "params": record["params"], "macs": record["macs"], "nonzero_params": record.get("nonzero_params"),
            "source_test_accuracy": record["test_accuracy"], "base_test_accuracy": base_accuracy,
            "variant_flags": variant_flags(record["test_accuracy"], base_accuracy),
            **({"origin": record["origin"]["reference"]} if record.get("origin") else {})}


def _base_accuracy(folder: Path, record: dict) -> float | None:
    if from_record(record).is_base:
        return None
    try:
        return storage.read_record(storage.model_dir(folder.parent, record["model"]))["test_accuracy"]
    except storage.TrainedModelError:
        return None


def _described(path: Path) -> dict:
    """storage.digest of a trained model file (hash, size, gzip size), once per version of the file in
    a process: a run collects a model's jobs again for each runtime, and gzip -9 of every model
    file each time cost a warm run 96 of its 125 seconds."""
    stat = Path(path).stat()
    return dict(_digest_of(str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=None)
def _digest_of(path: str, inode: int, size: int, mtime_ns: int) -> dict:
    return storage.digest(Path(path))


def collect_jobs(model_folders: list[Path], formats: list[str], runtimes: list[str],
                 weights: bool = True) -> dict[str, list[Job]]:
    """Jobs per runtime, found from the model folders and the manifests in them alone. Without
    `weights` (a bundle on a device), the trained weights are not there and not checked."""
    from fmnist.export import get_format
    jobs = defaultdict(list)
    for folder in model_folders:
        record = storage.verified_record(folder, weights=weights)
        record_sha = storage.file_sha256(Path(folder) / storage.RECORD_FILE)
        base_accuracy = _base_accuracy(folder, record)
        found = []
        if NATIVE_FORMAT in formats and record.get("model_file", storage.MODEL_FILE) == storage.MODEL_FILE:
            found.append((NATIVE_FORMAT, folder, storage.MODEL_FILE, _described(folder / storage.MODEL_FILE)))
        for artifact_folder in storage.artifact_folders(folder):
            manifest = storage.read_manifest(artifact_folder)
            fmt = manifest["format"]
            stale = (get_format(fmt).not_for(from_record(record))  # a leftover of a format no longer made
                     or manifest["source_model"]["record_sha256"] != record_sha)  # ... or of an earlier model
            if fmt in formats and not stale:
                found.append((fmt, artifact_folder, manifest["artifact"], manifest))
        for fmt, where, artifact, described in found:
            meta = _meta(record, described, base_accuracy)
            if fmt != NATIVE_FORMAT:
                meta["export_validation"] = described["validation"]
            for runtime in runtimes_for(fmt):
                if runtime.name in runtimes and not (runtime.base_only and record["variant"] != "base"):
                    jobs[runtime.name].append(Job(runtime.name, fmt, str(where), artifact, described["sha256"],
                                                  str(folder), meta, described.get("files")))
    return jobs
