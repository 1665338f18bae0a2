"""Export trained model folders to formats: convert, validate, write artifact + manifest atomically.

An export is cached: a manifest whose cache key (source record, format settings, calibration set,
versions) matches and whose artifact still has its recorded SHA-256 is reused.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fmnist import data as fdata, environment
from fmnist.artifacts import MANIFEST, ArtifactError, digest, file_sha256, read_manifest, verified_path
from fmnist.atomic import atomic_dir, write_json
from fmnist.export.base import ExportContext, Format
from fmnist.metrics import parity
from fmnist.runtimes import get_runtime
from fmnist.train import RECORD_FILE, load_model, read_record

VALIDATION_IMAGES = 1000   # the first 1,000 test images: a fixed slice every export is checked on
CALIBRATION_IMAGES = 300


class ExportValidationError(Exception):
    """A converted artifact does not reproduce its source model closely enough."""


def calibration_set(ds: fdata.FashionMNIST, size: int, seed: int):
    """`size` training images chosen by seed (never test images): (indices, normalised images)."""
    indices = np.sort(np.random.default_rng(seed).choice(len(ds.train_images), size=size, replace=False))
    return indices.tolist(), fdata.normalise(ds.train_images[indices])


def validate(fmt: Format, path: Path, images, labels, reference, quantized: bool) -> dict:
    """Float artifacts must match the source within the format's tolerance; quantized ones (an int8
    format, or any export of a quantization-aware model) must agree on top-1 often enough."""
    session = get_runtime(fmt.runtime).load(path, fmt.name, threads=1)
    figures = parity(reference, session.predict(images), labels)
    figures.pop("per_class_accuracy_delta")
    if quantized:
        criterion = f"top-1 agreement >= {fmt.min_agreement}"
        figures["passed"] = figures["agreement"] >= fmt.min_agreement
    else:
        criterion = f"max abs difference of probabilities <= {fmt.tolerance}"
        figures["passed"] = figures["max_abs_diff"] <= fmt.tolerance
    return {"criterion": criterion, "slice": f"test images 0-{len(labels) - 1}", **figures}


def _cache_key(record_sha: str, fmt: Format, calibration_indices) -> str:
    payload = {"record": record_sha, "format": fmt.name, "settings": fmt.settings(),
               "calibration": calibration_indices if fmt.calibrated else None,
               "versions": environment.versions()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _cached(folder: Path, key: str) -> dict | None:
    try:
        manifest = read_manifest(folder)
        if manifest.get("cache_key") == key:
            verified_path(folder, manifest)
            return manifest
    except ArtifactError:
        pass
    return None


def _failure_path(folder: Path, fmt: Format) -> Path:
    return folder / f"{fmt.name}.failed.json"


def _cached_failure(folder: Path, fmt: Format, key: str) -> dict | None:
    """The same conversion of the same model failed before: a deterministic result, not retried
    (until the model, the format's settings or the libraries change, or --force)."""
    try:
        failure = json.loads(_failure_path(folder, fmt).read_text())
    except (OSError, ValueError):
        return None
    return failure if failure.get("cache_key") == key else None


def export_model(folder: Path, formats: list[Format], ds: fdata.FashionMNIST, *, force: bool = False,
                 calibration_size: int = CALIBRATION_IMAGES, seed: int = environment.SEED,
                 on_done=None) -> list[dict]:
    """Export one trained model folder to each format; returns the manifests (cached or new) and
    failures ({"folder", "format", "error"}): one format failing does not stop the others.
    `on_done(format_name, manifest or None, cached)` is called after each format, for progress."""
    folder = Path(folder)
    record = read_record(folder)
    record_sha = file_sha256(folder / RECORD_FILE)
    indices, calibration = calibration_set(ds, calibration_size, seed)
    manifests, todo, failures = {}, [], []
    for fmt in formats:
        key = _cache_key(record_sha, fmt, indices)
        cached = None if force else _cached(folder / fmt.name, key)
        failed = None if force else _cached_failure(folder, fmt, key)
        if cached:
            manifests[fmt.name] = cached
        elif failed:
            failures.append(failed)
        else:
            todo.append((fmt, key))
            continue
        if on_done:
            on_done(fmt.name, cached, True)
    if todo:
        model = load_model(folder)
        images = fdata.normalise(ds.test_images[:VALIDATION_IMAGES])
        labels = ds.test_labels[:VALIDATION_IMAGES]
        reference = model.predict(images, batch_size=1000, verbose=0)
        with tempfile.TemporaryDirectory(prefix="fmnist-export-") as scratch:
            ctx = ExportContext(calibration, indices, Path(scratch))
            for fmt, key in todo:
                try:
                    manifests[fmt.name] = _export_one(folder, record, record_sha, model, fmt, key, ctx,
                                                      images, labels, reference, seed)
                except Exception as e:  # a converter's own failure is reported like a failed validation
                    message = str(e) if isinstance(e, ExportValidationError) else \
                        f"{folder.name} {fmt.name}: conversion failed ({type(e).__name__}: {str(e)[:300]})"
                    failure = {"folder": folder.name, "format": fmt.name, "error": message, "cache_key": key}
                    write_json(_failure_path(folder, fmt), failure)
                    failures.append(failure)
                if on_done:
                    on_done(fmt.name, manifests.get(fmt.name), False)
    return [manifests[fmt.name] for fmt in formats if fmt.name in manifests], failures


def _export_one(folder, record, record_sha, model, fmt, key, ctx, images, labels, reference, seed) -> dict:
    _failure_path(folder, fmt).unlink(missing_ok=True)
    with atomic_dir(folder / fmt.name) as tmp:
        start = time.perf_counter()
        details = fmt.convert(model, tmp / fmt.filename, ctx)
        seconds = time.perf_counter() - start
        quantized = fmt.quantized or record["variant"].endswith("qat")
        validation = validate(fmt, tmp / fmt.filename, images, labels, reference, quantized)
        if not validation["passed"]:
            raise ExportValidationError(
                f"{folder.name} {fmt.name}: validation failed ({validation['criterion']}): agreement "
                f"{validation['agreement']:.4f}, max abs diff {validation['max_abs_diff']:.2e}; no artifact written")
        manifest = {
            "schema": 1, "model": record["model"], "variant": record["variant"], "source": record["source"],
            "format": fmt.name, "artifact": fmt.filename, **digest(tmp / fmt.filename),
            "params": record["params"], "macs": record["macs"],
            "source_model": {"folder": folder.name, "record_sha256": record_sha,
                             "test_accuracy": record["test_accuracy"]},
            "details": details,
            "calibration": ({"images": len(ctx.calibration_indices), "from": "training set", "seed": seed,
                             "indices": ctx.calibration_indices} if fmt.calibrated else None),
            "validation": validation, "export_seconds": seconds,
            "environment": environment.describe(seed), "cache_key": key,
        }
        write_json(tmp / MANIFEST, manifest)
    return manifest


def export_all(names: list[str], formats: list[Format], variants: list[str], exports: Path,
               ds: fdata.FashionMNIST, *, finetune_epochs: int, epochs: int | None = None,
               subset: int | None = None, force: bool = False, calibration_size: int = CALIBRATION_IMAGES,
               seed: int = environment.SEED, progress: bool = True):
    """Train what is missing, derive the variants, export every (model, variant) to every format
    that applies to it. Returns (manifests, failures, skipped)."""
    from tqdm import tqdm

    from fmnist import train, variants as fvariants
    manifests, failures, skipped = [], [], []
    with tqdm(total=len(names) * (1 + len(variants)) * len(formats), desc="export", unit="artifact",
              disable=not progress) as bar:
        for name in names:
            folders = [("base", train.train(name, exports, ds, epochs=epochs, subset=subset, seed=seed,
                                            progress=progress))]
            folders += [(v, fvariants.derive(name, v, exports, ds, finetune_epochs=finetune_epochs, subset=subset,
                                             epochs=epochs, seed=seed, progress=progress)) for v in variants]
            for variant, folder in folders:
                applicable = []
                for fmt in formats:
                    reason = fmt.not_for(variant)
                    if reason:
                        skipped.append({"folder": folder.name, "format": fmt.name, "reason": reason})
                        bar.update()
                    else:
                        applicable.append(fmt)

                def done(fmt_name, manifest, cached, folder=folder):
                    bar.set_postfix_str(f"{folder.name} {fmt_name}{' (cached)' if cached else ''}")
                    bar.update()
                made, failed = export_model(folder, applicable, ds, force=force, seed=seed,
                                            calibration_size=calibration_size, on_done=done)
                manifests += made
                failures += failed
    return manifests, failures, skipped
