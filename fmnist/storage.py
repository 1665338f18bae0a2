"""Everything on disk, defined once: where trained models and artifacts live, what a training record
and an artifact manifest hold, cache keys, integrity checks, and the records of failed exports.

Imports no TensorFlow: the benchmark, the report and the on-device runner read through it, and
training and export write through it. Every file a stage trusts is checked against the SHA-256 its
record or manifest carries, so a damaged file is caught where it is used, not measured.
"""
import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np

# No `from __future__ import annotations` here: TypedDict must see NotRequired[...] unquoted to
# know which keys are optional.

from fmnist.atomic import atomic_path, write_json
from fmnist.errors import FmnistError

DEFAULT_EXPORTS = Path(os.environ.get("FMNIST_EXPORTS", "exports"))
# Weights only (HDF5): a trained model is rebuilt from its registry entry and given these weights,
# so loading one never runs anything stored in a file.
MODEL_FILE = "model.weights.h5"
RECORD_FILE = "record.json"
ARCHITECTURE_FILE = "architecture.json"  # user models: the tf_keras architecture the weights fit
PROBABILITIES_FILE = "test_probabilities.npy"  # the source model's outputs: what parity compares to
MANIFEST_FILE = "manifest.json"
SWEEP_DIR = "_lr_sweeps"


class StorageError(FmnistError):
    """Something on disk is missing, unreadable or not what its record says: one line, exit 1."""


class TrainedModelError(StorageError):
    """A trained model folder is missing, incomplete or altered."""


class ArtifactError(StorageError):
    """An artifact is missing, unreadable or not the file its manifest describes."""


class Record(TypedDict):
    """exports/<model>[-<variant>]/record.json: how a model was trained and what it scored."""
    model: str                      # registered model name
    variant: str                    # "base", or the variant's name
    derivation: dict                # the variant's definition ({"prune": float | None, "qat": bool})
    source: str                     # seed README ("000".."004") or "own"
    summary: str
    recipe: dict                    # the recipe actually run (epochs and learning rate included)
    params: int
    macs: int
    subset: int | None              # quick runs: training images used
    epochs_planned: int
    epochs_run: int
    history: dict                   # per-epoch metrics, as Keras reports them
    epoch_seconds: list
    train_seconds: float
    train_accuracy: float
    train_loss: float
    test_accuracy: float            # all 10,000 test images
    test_loss: float
    environment: dict
    data_sha256: dict
    cache_key: str
    model_sha256: str               # of MODEL_FILE
    probabilities_sha256: str       # of PROBABILITIES_FILE
    stop_reason: NotRequired[str]
    notes: NotRequired[str]
    reported: NotRequired[dict]     # the seed README's own figures
    lr_sweep: NotRequired[dict | None]
    validation: NotRequired[str]
    validation_accuracy: NotRequired[float | None]
    validation_loss: NotRequired[float | None]
    parent: NotRequired[dict]       # variants: the parent folder, record hash and test accuracy
    finetune: NotRequired[dict]     # variants: epochs, learning rate, schedule
    sparsity: NotRequired[float]    # measured fraction of zero kernel weights
    nonzero_params: NotRequired[int]
    origin: NotRequired[dict]       # user models: kind, file or factory, SHA-256, input contract
    model_file: NotRequired[str]    # the model file when it is not MODEL_FILE (an ONNX user model)
    architecture_sha256: NotRequired[str]  # user Keras models: of ARCHITECTURE_FILE


class Manifest(TypedDict):
    """exports/<folder>/<format>/manifest.json: one artifact, where it came from, how it validated."""
    schema: int
    model: str
    variant: str
    source: str
    format: str
    artifact: str                   # file or folder name beside the manifest
    sha256: str
    size_bytes: int
    size_gzip_bytes: int
    params: int
    macs: int
    source_model: dict              # folder, record_sha256, test_accuracy
    details: dict                   # format-specific: converter, I/O dtypes and quantization, ops
    calibration: dict | None        # calibrated formats: image count, seed, training-set indices
    validation: dict                # criterion, passed, figures on the validation slice
    export_seconds: float
    environment: dict
    cache_key: str
    files: NotRequired[dict]        # SHA-256 of every file of the artifact (its C sources included)


def cache_key(payload: dict) -> str:
    """The one way a cache key is made: SHA-256 of the payload as canonical JSON."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest_ = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest_.update(chunk)
    return digest_.hexdigest()


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def digest(path: Path, sizes: bool = True) -> dict:
    """SHA-256, raw size and gzip size (level 9) of a file, or of a folder's files taken together
    (a SavedModel is a folder): pruning only pays off once an artifact is compressed. Without
    `sizes`, the hash alone (the check before every use, where gzip would cost the most)."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: artifact not found")
    sha, size, gz = hashlib.sha256(), 0, 0
    for file in _files(path):
        raw = file.read_bytes()
        sha.update(str(file.relative_to(path.parent)).encode() + b"\0" + hashlib.sha256(raw).digest())
        size += len(raw)
        if sizes:
            gz += len(gzip.compress(raw, compresslevel=9, mtime=0))
    return {"sha256": sha.hexdigest(), **({"size_bytes": size, "size_gzip_bytes": gz} if sizes else {})}


# --- trained models -----------------------------------------------------------------------------
def model_dir(exports: Path, name: str, variant: str = "base") -> Path:
    """exports/<name> for the recipe's own model, exports/<name>-<variant> for a derived one."""
    return Path(exports) / (name if variant == "base" else f"{name}-{variant}")


def _read_checked(path: Path, kind, error, what: str, remedy: str) -> dict:
    """A JSON file that must hold every required key of the TypedDict `kind`; else `error`."""
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path.parent}: no {what} here (missing {path.name})") from None
    except (OSError, ValueError) as e:
        raise error(f"{path}: unreadable {what} ({e})") from None
    missing = sorted(kind.__required_keys__ - set(content)) if isinstance(content, dict) else ["all"]
    if missing:
        raise error(f"{path}: incomplete {what} (missing {', '.join(missing)}); {remedy}")
    return content


def read_record(folder: Path) -> Record:
    """The folder's training record, with every required field present."""
    return _read_checked(Path(folder) / RECORD_FILE, Record, TrainedModelError, "training record",
                         "retrain it with fmnist-train --force")


def verified_record(folder: Path, weights: bool = True) -> Record:
    """The record, after checking the model weights (unless `weights` is false: a bundle on a
    device carries none) and reference probabilities are the files it was written with: an
    altered model is never measured as if it were the trained one."""
    folder = Path(folder)
    record = read_record(folder)
    checks = (((record.get("model_file", MODEL_FILE), "model_sha256"),) * weights
              + ((PROBABILITIES_FILE, "probabilities_sha256"),)
              + ((ARCHITECTURE_FILE, "architecture_sha256"),) * ("architecture_sha256" in record))
    for name, field in checks:
        path = folder / name
        if not path.is_file():
            raise TrainedModelError(f"{path}: missing; retrain it with fmnist-train --force")
        if file_sha256(path) != record[field]:
            raise TrainedModelError(f"{path}: SHA-256 does not match its record; the file was altered "
                                    f"or damaged: retrain it with fmnist-train --force")
    return record


def cached_record(folder: Path, key: str, retrain_damaged: bool = False) -> Record | None:
    """The record of an intact model folder trained with this cache key; None when there is none
    or it was made another way (to be trained). A folder whose files no longer match its record
    raises TrainedModelError, unless `retrain_damaged` (then None: it is trained again)."""
    if not Path(folder).exists():
        return None
    try:
        record = verified_record(folder)
    except TrainedModelError:
        if retrain_damaged:
            return None
        raise
    return record if record["cache_key"] == key else None


def seal_model_folder(folder: Path, record: dict) -> Record:
    """Write record.json into a model folder holding MODEL_FILE and PROBABILITIES_FILE, with
    their hashes, so every later use can check them."""
    record = {**record, "model_sha256": file_sha256(Path(folder) / record.get("model_file", MODEL_FILE)),
              "probabilities_sha256": file_sha256(Path(folder) / PROBABILITIES_FILE)}
    if (Path(folder) / ARCHITECTURE_FILE).is_file():
        record["architecture_sha256"] = file_sha256(Path(folder) / ARCHITECTURE_FILE)
    missing = Record.__required_keys__ - set(record)
    if missing:
        raise ValueError(f"record lacks {sorted(missing)}")  # a programming error, not a user's
    write_json(Path(folder) / RECORD_FILE, record)
    return record


def read_checked_text(path: Path, sha256: str) -> str:
    """A small file's text, after checking it is the file its record hashed."""
    if file_sha256(path) != sha256:
        raise TrainedModelError(f"{path}: SHA-256 does not match its record; retrain it with fmnist-train --force")
    return path.read_text()


def reference_probabilities(folder: Path) -> np.ndarray:
    """The source model's test-set probabilities, checked against its record."""
    verified_record(folder, weights=False)
    return np.load(Path(folder) / PROBABILITIES_FILE)


TRAINING_PLOTS = ("learning_curves.png", "confusion_matrix.png", "predictions.png")
SUMMARY_FIELDS = ("model", "variant", "source", "summary", "params", "macs", "subset", "epochs_planned", "epochs_run",
                  "stop_reason", "recipe", "train_seconds", "train_threads", "train_accuracy", "validation_accuracy",
                  "test_accuracy", "reported", "environment", "cache_key", "origin")


def training_summary(folder: Path) -> tuple[dict, list[Path]]:
    """What results/ says of a trained model (its record without history and hashes), and the
    plots its training drew (the learning-rate sweep's too)."""
    record = read_record(folder)
    folder = Path(folder)
    plots = [folder / p for p in TRAINING_PLOTS] + [folder.parent / SWEEP_DIR / record["model"] / "lr_vs_loss.png"]
    return {k: record.get(k) for k in SUMMARY_FIELDS}, [p for p in plots if p.is_file()]


def trained_folders(exports: Path) -> list[Path]:
    """Every model folder under exports/ (base models and variants)."""
    return sorted(p.parent for p in Path(exports).glob(f"*/{RECORD_FILE}"))


# --- artifacts ----------------------------------------------------------------------------------
def artifact_folders(model_folder: Path) -> list[Path]:
    return sorted(p.parent for p in Path(model_folder).glob(f"*/{MANIFEST_FILE}"))


def read_manifest(folder: Path) -> Manifest:
    return _read_checked(Path(folder) / MANIFEST_FILE, Manifest, ArtifactError, "manifest",
                         "re-export it (fmnist-export --force)")


def file_hashes(folder: Path, skip: tuple = (MANIFEST_FILE,)) -> dict:
    """SHA-256 of every file an artifact consists of (a tflm export's C sources beside its graph):
    recorded in its manifest, so none of them can change unnoticed."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() not in skip}


def artifact_files(folder: Path, manifest: dict) -> list[Path]:
    """The files an artifact consists of, as its manifest lists them (older manifests: the artifact)."""
    path = Path(folder) / manifest["artifact"]
    listed = manifest.get("files")
    if listed:
        return [Path(folder) / name for name in listed]
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def verified_path(folder: Path, artifact: str, sha256: str, files: dict | None = None) -> Path:
    """The artifact's path, after checking its bytes (and those of every other file its manifest
    lists, `files`) are the ones its manifest describes."""
    path = Path(folder) / artifact
    actual = digest(path, sizes=False)["sha256"]
    if actual != sha256:
        raise ArtifactError(f"{path}: SHA-256 {actual[:12]}… does not match its manifest's "
                            f"{sha256[:12]}…; re-export it (fmnist-export --force)")
    for name, expected in (files or {}).items():
        other = Path(folder) / name
        if not other.is_file() or file_sha256(other) != expected:
            raise ArtifactError(f"{other}: missing, or its SHA-256 does not match its manifest; re-export it "
                                f"(fmnist-export --force)")
    return path


def cached_manifest(folder: Path, key: str) -> Manifest | None:
    """An intact artifact exported with this cache key, else None."""
    try:
        manifest = read_manifest(folder)
        if manifest["cache_key"] == key:
            verified_path(folder, manifest["artifact"], manifest["sha256"], manifest.get("files"))
            return manifest
    except ArtifactError:
        pass
    return None


# --- failed exports -----------------------------------------------------------------------------
def failure_path(model_folder: Path, fmt: str) -> Path:
    return Path(model_folder) / f"{fmt}.failed.json"


def write_failure(model_folder: Path, fmt: str, error: str, key: str) -> dict:
    failure = {"folder": Path(model_folder).name, "format": fmt, "error": error, "cache_key": key}
    write_json(failure_path(model_folder, fmt), failure)
    return failure


def cached_failure(model_folder: Path, fmt: str, key: str) -> dict | None:
    """The same conversion of the same model failed before: a deterministic result, not retried
    (until the model, the format's settings or the libraries change, or --force)."""
    try:
        failure = json.loads(failure_path(model_folder, fmt).read_text())
    except (OSError, ValueError):
        return None
    return failure if isinstance(failure, dict) and failure.get("cache_key") == key else None


def clear_failure(model_folder: Path, fmt: str) -> None:
    failure_path(model_folder, fmt).unlink(missing_ok=True)


# --- measurements reused by artifact hash ---------------------------------------------------------
def _measurement_path(artifact_folder: Path, runtime: str, suffix: str = "measured.json") -> Path:
    return Path(artifact_folder) / f"{runtime}.{suffix}"


def cached_measurement(artifact_folder: Path, runtime: str, key: str) -> dict | None:
    """Figures measured on this very artifact before (same key), with their `top1` predictions
    (none for an estimate, which predicts nothing), else None."""
    try:
        saved = json.loads(_measurement_path(artifact_folder, runtime).read_text())
        predicted = isinstance(saved, dict) and saved.get("top1_sha256") is not None
        top1 = np.load(_measurement_path(artifact_folder, runtime, "top1.npy")) if predicted else None
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("cache_key") != key or \
            (predicted and saved["top1_sha256"] != _sha(top1)):
        return None
    return {**saved["figures"], **({"top1": top1} if predicted else {})}


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def write_measurement(artifact_folder: Path, runtime: str, key: str, figures: dict) -> None:
    """The figures as JSON and the predictions (`top1`, one class per test image, where the runtime
    made any) as .npy beside them."""
    top1 = figures.get("top1")
    if top1 is not None:
        with atomic_path(_measurement_path(artifact_folder, runtime, "top1.npy")) as tmp:
            np.save(tmp, top1)
    write_json(_measurement_path(artifact_folder, runtime),
               {"cache_key": key, "top1_sha256": _sha(top1) if top1 is not None else None,
                "figures": {k: v for k, v in figures.items() if k != "top1"}})
