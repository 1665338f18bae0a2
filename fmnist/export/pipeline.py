"""Export trained model folders to formats: convert, validate, write artifact + manifest atomically.

An export is cached: a manifest whose cache key (source record, format settings, calibration set,
versions) matches and whose artifact still has its recorded SHA-256 is reused. An artifact that
converts but misses its validation gate is kept, its manifest saying which criterion it missed
and by how much: what int8 costs is a result to measure, not a reason to refuse.
"""
from __future__ import annotations

import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist import data as fdata, environment, storage, user
from fmnist.atomic import atomic_dir, write_json
from fmnist.codehash import code_digest
from fmnist.config import RunConfig
from fmnist.export.base import ExportContext, Format
from fmnist.metrics import VALIDATION_IMAGES, parity
from fmnist.runtimes import get_runtime
from fmnist.variants import Variant, from_record

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# Why a Keras-only format is not made from a user's ONNX file (measured: pip refuses the combination)
NOT_FROM_ONNX = ("made from a Keras model only: an ONNX file goes to TFLite through onnx2tf, whose latest release "
                 "(1.29.24) pins tensorflow==2.19.0, onnx==1.19.1 and numpy==1.26.4, which conflict with this stack's "
                 "pins (tensorflow 2.21.0, onnx 1.23.2)")


def calibration_set(ds: fdata.FashionMNIST, size: int, seed: int):
    """`size` training images chosen by seed (never test images): (indices, normalised images)."""
    indices = np.sort(np.random.default_rng(seed).choice(len(ds.train_images), size=size, replace=False))
    return indices.tolist(), fdata.normalise(ds.train_images[indices])


def validate(fmt: Format, path: Path, images, labels, reference, variant: Variant) -> dict:
    """Float artifacts must match the source within the format's tolerance; quantized ones (an int8
    format, or any export of a quantization-aware model) must agree on top-1 often enough."""
    session = get_runtime(fmt.runtime).load(path, fmt.name, threads=1)
    figures = parity(reference, session.predict(images), labels)
    figures.pop("per_class_accuracy_delta")
    if fmt.quantized or variant.quantization_aware:
        criterion = f"top-1 agreement >= {fmt.min_agreement}"
        figures["passed"] = figures["agreement"] >= fmt.min_agreement
    else:
        criterion = f"max abs difference of probabilities <= {fmt.tolerance}"
        figures["passed"] = figures["max_abs_diff"] <= fmt.tolerance
    return {"criterion": criterion, "slice": f"test images 0-{len(labels) - 1}", **figures}


def gate_warning(manifest: dict) -> str | None:
    """One line saying an artifact missed its validation gate, or None when it passed."""
    v = manifest["validation"]
    if v["passed"]:
        return None
    return (f"{manifest['source_model']['folder']} {manifest['format']}: kept but flagged, missed "
            f"{v['criterion']}: agreement {v['agreement']:.4f}, max abs diff {v['max_abs_diff']:.2e}, "
            f"accuracy {100 * (v['accuracy'] - v['source_accuracy']):+.2f} pts on {v['slice']}")


def raised_by_a_library(error: BaseException) -> bool:
    """Whether the innermost frame of the error is outside this package (in TensorFlow's converter,
    tf2onnx, ONNX Runtime...): a deterministic refusal worth remembering, not a bug of ours."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and not Path(frames[-1].filename).resolve().is_relative_to(PACKAGE_DIR)


def _cache_key(record_sha: str, fmt: Format, calibration_indices) -> str:
    """The source model, the format and its settings, the calibration images, the versions, and the
    code: the format's converter, the manifest and validation, and the runtime that validates it."""
    return storage.cache_key({"record": record_sha, "format": fmt.name, "settings": fmt.settings(),
                              "calibration": calibration_indices if fmt.calibrated else None,
                              "versions": environment.versions(),
                              "code": code_digest(fmt, _export_one, get_runtime(fmt.runtime), exclude=user.MODULES)})


def export_model(folder: Path, formats: list[Format], ds: fdata.FashionMNIST, config: RunConfig = RunConfig(),
                 on_done=None) -> tuple[list[dict], list[dict]]:
    """Export one trained model folder to each format; returns the manifests (cached or new) and
    failures ({"folder", "format", "error"}): one format failing does not stop the others.
    `on_done(format_name, manifest or None, cached)` is called after each format, for progress."""
    from fmnist.models import load_trained
    folder = Path(folder)
    record = storage.verified_record(folder)  # a damaged model is one error here, not one per format
    record_sha = storage.file_sha256(folder / storage.RECORD_FILE)
    indices, calibration = calibration_set(ds, config.calibration_size, config.seed)
    manifests, todo, failures = {}, [], []
    for fmt in formats:
        key = _cache_key(record_sha, fmt, indices)
        cached = None if config.force else storage.cached_manifest(folder / fmt.name, key)
        failed = None if config.force else storage.cached_failure(folder, fmt.name, key)
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
        model = load_trained(folder)
        images = fdata.normalise(ds.test_images[:VALIDATION_IMAGES])
        labels = ds.test_labels[:VALIDATION_IMAGES]
        reference = model.predict(images, batch_size=VALIDATION_IMAGES, verbose=0)
        with tempfile.TemporaryDirectory(prefix="fmnist-export-") as scratch:
            ctx = ExportContext(calibration, indices, Path(scratch), record["model"], from_record(record))
            source = Source(folder, record, record_sha, model, images, labels, reference, config.seed)
            for fmt, key in todo:
                try:
                    manifests[fmt.name] = _export_one(source, fmt, key, ctx)
                except Exception as e:  # one format failing does not stop the others
                    message = (f"{folder.name} {fmt.name}: conversion failed "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''})")
                    if raised_by_a_library(e):  # the converter's own refusal: remembered until the key changes
                        failures.append(storage.write_failure(folder, fmt.name, message, key))
                    else:  # a bug in fmnist itself: reported, never remembered
                        failures.append({"folder": folder.name, "format": fmt.name,
                                         "error": message.replace("conversion failed", "fmnist error")})
                if on_done:
                    on_done(fmt.name, manifests.get(fmt.name), False)
    return [manifests[fmt.name] for fmt in formats if fmt.name in manifests], failures


@dataclass(frozen=True)
class Source:
    """The trained model an export starts from, and its outputs on the validation slice."""
    folder: Path
    record: dict
    record_sha: str
    model: object           # the tf_keras model
    images: np.ndarray      # the validation slice
    labels: np.ndarray
    reference: np.ndarray   # the model's probabilities on it
    seed: int


def _export_one(source: Source, fmt: Format, key: str, ctx: ExportContext) -> dict:
    folder, record = source.folder, source.record
    storage.clear_failure(folder, fmt.name)
    with atomic_dir(folder / fmt.name) as tmp:
        start = time.perf_counter()
        details = fmt.convert(source.model, tmp / fmt.filename, ctx)
        seconds = time.perf_counter() - start
        manifest = {
            "schema": 1, "model": record["model"], "variant": record["variant"], "source": record["source"],
            "format": fmt.name, "artifact": fmt.filename, **storage.digest(tmp / fmt.filename),
            "params": record["params"], "macs": record["macs"],
            "source_model": {"folder": folder.name, "record_sha256": source.record_sha,
                             "test_accuracy": record["test_accuracy"]},
            "details": details,
            "calibration": ({"images": len(ctx.calibration_indices), "from": "training set", "seed": source.seed,
                             "indices": ctx.calibration_indices} if fmt.calibrated else None),
            "validation": validate(fmt, tmp / fmt.filename, source.images, source.labels, source.reference,
                                   ctx.variant),
            "export_seconds": seconds, "environment": environment.describe(source.seed), "cache_key": key,
            "files": storage.file_hashes(tmp),
        }
        write_json(tmp / storage.MANIFEST_FILE, manifest)
    return manifest


def export_family(name: str, formats: list[Format], variants: list[Variant], exports: Path,
                  ds: fdata.FashionMNIST, config: RunConfig = RunConfig(), on_progress=None, progress=True):
    """One model's base and variants, each exported to every format that applies to it: trained
    or derived first when missing. `on_progress(text, artifacts_done)` is called as each artifact
    is done or not made. `progress`: training's epoch bars (bool), or a callable given a line per
    epoch. Returns (manifests, failures, skipped)."""
    from fmnist import train
    from fmnist.models import get_spec
    manifests, failures, skipped = [], [], []
    origin = get_spec(name).origin
    for variant in [Variant(), *variants]:
        try:
            folder = train.derive(name, variant, exports, ds, config, progress=progress)
        except Exception as e:  # a user model that tfmot cannot wrap, or with no Keras model at all
            if variant.is_base or not origin:
                raise
            reason = f"not made for this user model: {str(e).strip().splitlines()[0][:300]}"
            skipped += [{"folder": storage.model_dir(exports, name, variant.name).name, "variant": variant.name,
                         "format": fmt.name, "reason": reason} for fmt in formats]
            if on_progress:
                on_progress(None, len(formats))
            continue
        applicable = []
        for fmt in formats:
            reason = fmt.not_for(variant) or (NOT_FROM_ONNX if origin and origin["kind"] == "onnx-file"
                                              and not fmt.from_onnx else None)
            if reason:
                skipped.append({"folder": folder.name, "variant": variant.name, "format": fmt.name, "reason": reason})
                if on_progress:
                    on_progress(None, 1)
            else:
                applicable.append(fmt)
        made, failed = export_model(folder, applicable, ds, config, on_done=on_progress and (
            lambda fmt_name, manifest, cached, folder=folder:
                on_progress(f"{folder.name} {fmt_name}{' (cached)' if cached else ''}", 1)))
        manifests += made
        failures += failed
    return manifests, failures, skipped
