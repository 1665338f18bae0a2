"""Optimised variants of a trained model (tensorflow-model-optimization), each a model of its own.

- `qat`: quantization-aware fine-tuning, so int8 conversion loses as little accuracy as possible;
- `pruned-<pct>`: magnitude pruning to a target sparsity, wrappers stripped before saving;
- `pruned-<pct>-qat`: prune-preserving QAT on the pruned model (its zeros survive quantization).
A variant lives in exports/<model>-<variant>/ beside its parent, with the same files and a record
that says how it was made (parent record, fine-tuning epochs, measured sparsity).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from fmnist import data as fdata, environment
from fmnist.artifacts import file_sha256
from fmnist.atomic import atomic_dir, write_json
from fmnist.models import get_spec
from fmnist.train import (MODEL_FILE, PROBABILITIES_FILE, RECORD_FILE, EpochProgress, TrainedModelError,
                          compile_model, fit_inputs, load_model, model_dir, read_record, save_model, train,
                          training_arrays)

FINETUNE_EPOCHS = 1
FINETUNE_LR_FACTOR = 0.1  # a trained model is fine-tuned with smaller steps than it was trained with


def variant_names(qat: bool, prune: float | None) -> list[str]:
    """The variants a request asks for: --qat, --prune S, or both (which adds the combination)."""
    names = []
    if prune is not None:
        if not 0 < prune < 1:
            raise ValueError(f"sparsity {prune} must be between 0 and 1 (exclusive)")
        names.append(f"pruned-{round(prune * 100)}")
    if qat:
        names.append("qat")
    if qat and prune is not None:
        names.append(f"pruned-{round(prune * 100)}-qat")
    return names


def _kernels(model) -> list[np.ndarray]:
    """Dense and conv kernels: the weights pruning acts on (not QAT's kernel_min/kernel_max)."""
    return [w.numpy() for w in model.weights if w.name.rsplit("/", 1)[-1] == "kernel:0"]


def sparsity(model) -> float:
    """Fraction of zero weights over every kernel."""
    kernels = _kernels(model)
    return sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)


def _make(parent_model, variant: str):
    """The variant's untrained-for-it model and the callbacks its fine-tuning needs."""
    if variant == "qat":
        return tfmot.quantization.keras.quantize_model(parent_model), []
    if variant.endswith("-qat"):  # prune-preserving QAT, starting from the pruned model
        annotated = tfmot.quantization.keras.quantize_annotate_model(parent_model)
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        return tfmot.quantization.keras.quantize_apply(annotated, scheme), []
    target = int(variant.split("-")[1]) / 100
    schedule = tfmot.sparsity.keras.ConstantSparsity(target, begin_step=0, frequency=100)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(parent_model, pruning_schedule=schedule)
    return pruned, [tfmot.sparsity.keras.UpdatePruningStep()]


def derive(name: str, variant: str, exports: Path, ds: fdata.FashionMNIST, *,
           finetune_epochs: int = FINETUNE_EPOCHS, epochs: int | None = None, subset: int | None = None,
           force: bool = False, seed: int = environment.SEED, progress: bool = True) -> Path:
    """Make (or reuse) exports/<name>-<variant>/ from the trained model (trained first if missing,
    with the same quick-run overrides); returns its folder."""
    spec = get_spec(name)
    if variant.endswith("-qat"):
        parent = derive(name, variant[:-len("-qat")], exports, ds, finetune_epochs=finetune_epochs,
                        epochs=epochs, subset=subset, seed=seed, progress=progress)
    else:
        parent = train(name, exports, ds, epochs=epochs, subset=subset, seed=seed, progress=progress)
    parent_sha = file_sha256(parent / RECORD_FILE)
    folder = model_dir(exports, name, variant)
    key = hashlib.sha256(json.dumps({"parent": parent_sha, "variant": variant, "epochs": finetune_epochs,
                                     "lr_factor": FINETUNE_LR_FACTOR,
                                     "subset": subset, "seed": seed, "versions": environment.versions()},
                                    sort_keys=True).encode()).hexdigest()
    if not force and (folder / MODEL_FILE).is_file():
        try:
            if read_record(folder).get("cache_key") == key:
                return folder
        except TrainedModelError:
            pass

    parent_record = read_record(parent)
    recipe = parent_record["recipe"]
    learning_rate = recipe["learning_rate"] * FINETUNE_LR_FACTOR
    keras.utils.set_random_seed(seed)
    model, callbacks = _make(load_model(parent), variant)
    compile_model(model, recipe["optimizer"], learning_rate)
    (x, y), _ = training_arrays(spec, ds, subset, seed)
    timer = EpochProgress(finetune_epochs, f"{name} {variant}", progress)
    start = time.perf_counter()
    history = model.fit(**fit_inputs(spec.recipe, x, y, seed), epochs=finetune_epochs, verbose=0,
                        callbacks=[timer, *callbacks])
    seconds = time.perf_counter() - start
    if variant.startswith("pruned") and not variant.endswith("-qat"):
        model = tfmot.sparsity.keras.strip_pruning(model)
        compile_model(model, recipe["optimizer"], learning_rate)  # stripping drops the compile
    x_test = fdata.normalise(ds.test_images)
    test_loss, test_acc = model.evaluate(x_test, ds.test_labels, batch_size=1024, verbose=0)
    measured = sparsity(model)
    record = {
        **{k: parent_record[k] for k in ("source", "summary", "recipe", "params", "macs")},
        "model": name, "variant": variant, "parent": {"folder": parent.name, "record_sha256": parent_sha,
                                                       "test_accuracy": parent_record["test_accuracy"]},
        "finetune_epochs": finetune_epochs, "finetune_learning_rate": learning_rate, "sparsity": measured,
        "nonzero_params": int(parent_record["params"] - sum(int(np.sum(k == 0)) for k in _kernels(model))),
        "epochs_planned": finetune_epochs, "epochs_run": finetune_epochs, "subset": subset,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "epoch_seconds": timer.seconds, "train_seconds": seconds,
        "train_accuracy": float(history.history["accuracy"][-1]), "train_loss": float(history.history["loss"][-1]),
        "test_accuracy": float(test_acc), "test_loss": float(test_loss),
        "environment": environment.describe(seed), "data_sha256": ds.sha256, "cache_key": key,
    }
    with atomic_dir(folder) as tmp:
        save_model(model, tmp / MODEL_FILE)
        write_json(tmp / RECORD_FILE, record)
        np.save(tmp / PROBABILITIES_FILE, model.predict(x_test, batch_size=1024, verbose=0))
    return folder
