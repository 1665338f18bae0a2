"""Export trained model folders to formats: convert, validate, write artifact + manifest atomically.

An export is cached: a manifest whose cache key (source record, format settings, calibration set,
versions) matches and whose artifact still has its recorded SHA-256 is reused. An artifact that
converts but misses its validation gate is kept, its manifest saying which criterion it missed
and by how much: what int8 costs is a result to measure, not a reason to refuse.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from fmnist import data as fdata, environment, storage
from fmnist.atomic import atomic_dir, write_json
from fmnist.export.base import ExportContext, Format
from fmnist.metrics import VALIDATION_IMAGES, parity
from fmnist.runtimes import get_runtime
from fmnist.variants import Variant, from_record

CALIBRATION_IMAGES = 300


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


def _cache_key(record_sha: str, fmt: Format, calibration_indices) -> str:
    return storage.cache_key({"record": record_sha, "format": fmt.name, "settings": fmt.settings(),
                              "calibration": calibration_indices if fmt.calibrated else None,
                              "versions": environment.versions()})


def export_model(folder: Path, formats: list[Format], ds: fdata.FashionMNIST, *, force: bool = False,
                 calibration_size: int = CALIBRATION_IMAGES, seed: int = environment.SEED,
                 on_done=None) -> tuple[list[dict], list[dict]]:
    """Export one trained model folder to each format; returns the manifests (cached or new) and
    failures ({"folder", "format", "error"}): one format failing does not stop the others.
    `on_done(format_name, manifest or None, cached)` is called after each format, for progress."""
    from fmnist.models import load_trained
    folder = Path(folder)
    record = storage.verified_record(folder)  # a damaged model is one error here, not one per format
    record_sha = storage.file_sha256(folder / storage.RECORD_FILE)
    indices, calibration = calibration_set(ds, calibration_size, seed)
    manifests, todo, failures = {}, [], []
    for fmt in formats:
        key = _cache_key(record_sha, fmt, indices)
        cached = None if force else storage.cached_manifest(folder / fmt.name, key)
        failed = None if force else storage.cached_failure(folder, fmt.name, key)
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
            for fmt, key in todo:
                try:
                    manifests[fmt.name] = _export_one(folder, record, record_sha, model, fmt, key, ctx,
                                                      images, labels, reference, seed)
                except Exception as e:  # a converter's own failure: recorded, and the others go on
                    failures.append(storage.write_failure(
                        folder, fmt.name, f"{folder.name} {fmt.name}: conversion failed "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''})", key))
                if on_done:
                    on_done(fmt.name, manifests.get(fmt.name), False)
    return [manifests[fmt.name] for fmt in formats if fmt.name in manifests], failures


def _export_one(folder, record, record_sha, model, fmt, key, ctx, images, labels, reference, seed) -> dict:
    storage.clear_failure(folder, fmt.name)
    with atomic_dir(folder / fmt.name) as tmp:
        start = time.perf_counter()
        details = fmt.convert(model, tmp / fmt.filename, ctx)
        seconds = time.perf_counter() - start
        manifest = {
            "schema": 1, "model": record["model"], "variant": record["variant"], "source": record["source"],
            "format": fmt.name, "artifact": fmt.filename, **storage.digest(tmp / fmt.filename),
            "params": record["params"], "macs": record["macs"],
            "source_model": {"folder": folder.name, "record_sha256": record_sha,
                             "test_accuracy": record["test_accuracy"]},
            "details": details,
            "calibration": ({"images": len(ctx.calibration_indices), "from": "training set", "seed": seed,
                             "indices": ctx.calibration_indices} if fmt.calibrated else None),
            "validation": validate(fmt, tmp / fmt.filename, images, labels, reference, ctx.variant),
            "export_seconds": seconds, "environment": environment.describe(seed), "cache_key": key,
        }
        write_json(tmp / storage.MANIFEST_FILE, manifest)
    return manifest


def export_family(name: str, formats: list[Format], variants: list[Variant], exports: Path,
                  ds: fdata.FashionMNIST, *, finetune_epochs: int | None = None, epochs: int | None = None,
                  subset: int | None = None, force: bool = False, calibration_size: int = CALIBRATION_IMAGES,
                  seed: int = environment.SEED, report=None, progress=True):
    """One model's base and variants, each exported to every format that applies to it: trained
    or derived first when missing. `report(text, artifacts_done)` is called as each artifact is
    done or not made. `progress`: training's epoch bars (bool), or a callable given a line per
    epoch. Returns (manifests, failures, skipped)."""
    from fmnist import train
    manifests, failures, skipped = [], [], []
    for variant in [Variant(), *variants]:
        folder = train.derive(name, variant, exports, ds, finetune_epochs=finetune_epochs, epochs=epochs,
                              subset=subset, seed=seed, progress=progress)
        applicable = []
        for fmt in formats:
            reason = fmt.not_for(variant)
            if reason:
                skipped.append({"folder": folder.name, "variant": variant.name, "format": fmt.name, "reason": reason})
                if report:
                    report(None, 1)
            else:
                applicable.append(fmt)
        made, failed = export_model(folder, applicable, ds, on_done=report and (
            lambda fmt_name, manifest, cached, folder=folder:
                report(f"{folder.name} {fmt_name}{' (cached)' if cached else ''}", 1)),
            force=force, calibration_size=calibration_size, seed=seed)
        manifests += made
        failures += failed
    return manifests, failures, skipped


def _family_in_worker(events, *args, **kwargs):
    """export_family in a worker process, its progress sent back through `events`. One thread
    each, so that one worker per core never oversubscribes the cores (TensorFlow's pools are
    otherwise sized to every core in every process)."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return export_family(*args, report=lambda *event: events.put(event),
                         progress=lambda line: events.put((line, 0)), **kwargs)


def _relay(events, report) -> None:
    """Hand the workers' progress events to `report` until None, or until an interrupt has shut
    the queue's manager down."""
    try:
        for event in iter(events.get, None):
            report(*event)
    except (EOFError, OSError):
        pass


def _interrupt_workers(pool, futures) -> None:
    """Cancel what has not started and send SIGINT to the workers (a signal sent to this process
    alone does not reach them): a KeyboardInterrupt unwinds their atomic writes, so nothing
    half-written is left, and the pool's shutdown then finds them idle."""
    import signal
    for future in futures:
        future.cancel()
    for process in list(pool._processes.values()):  # the executor has no public handle on its workers
        try:
            os.kill(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def export_all(names: list[str], formats: list[Format], variants: list[Variant], exports: Path,
               ds: fdata.FashionMNIST, *, workers: int | None = None, progress: bool = True, **options):
    """Train what is missing, derive the variants, export every (model, variant) to every format
    that applies to it. Models go to `workers` processes at once (one per core by default): a
    converter, a validation or a small model's training keeps one core busy and leaves the other
    idle. Options are export_family's (finetune_epochs, epochs, subset, force, calibration_size,
    seed). Returns (manifests, failures, skipped), in the order of `names`."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm
    workers = min(len(names), workers or os.cpu_count() or 1)
    with tqdm(total=len(names) * (1 + len(variants)) * len(formats), desc="export", unit="artifact",
              disable=not progress) as bar:
        def report(text, done):
            if text:
                bar.set_postfix_str(text)
            bar.update(done)
        if workers <= 1:  # in this process: training shows its epochs
            results = [export_family(name, formats, variants, exports, ds, report=report, progress=progress,
                                     **options) for name in names]
        else:
            context = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
            with context.Manager() as manager, \
                    ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                events = manager.Queue()
                relay = threading.Thread(target=_relay, args=(events, report), daemon=True)
                relay.start()
                futures = [pool.submit(_family_in_worker, events, name, formats, variants, exports, ds, **options)
                           for name in names]
                try:
                    results = [future.result() for future in futures]
                except BaseException:  # Ctrl-C here: the workers stop now, not after their models
                    _interrupt_workers(pool, futures)
                    raise
                events.put(None)
                relay.join()
    return tuple([item for result in results for item in result[i]] for i in range(3))
