"""Train registered models by their recipes, and fine-tune their variants; cached on disk.

A model folder (exports/<name>[-<variant>]/) holds the weights, `record.json` (recipe, history,
figures, provenance, file hashes), the test-set probabilities and the recipe's plots. It is
written to a temp folder and swapped into place, and reused while its cache key (architecture,
recipe, overrides, seed, data and library versions; for a variant, its parent's record) is unchanged
and its files still match their hashes.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tqdm import tqdm

import fmnist
from fmnist import data as fdata, environment, plots, storage
from fmnist.atomic import atomic_dir, write_json
from fmnist.codehash import code_digest
from fmnist.config import RunConfig
from fmnist.models import ModelSpec, Recipe, count_macs, create_model, get_spec, load_trained
from fmnist.storage import SWEEP_DIR, model_dir
from fmnist.variants import BASE, Variant

STEPS_PER_EXECUTION = 50  # same updates in the same order, half the per-step Python overhead
FINETUNE_LR_FACTOR = 0.1  # a trained model is fine-tuned with smaller steps than it was trained with


class EpochProgress(keras.callbacks.Callback):
    """One tqdm bar per training run, advanced and annotated at each epoch's end; also times epochs.
    `progress` may be a callable instead, given one line per epoch (a worker process reports to
    its parent's bar that way)."""

    def __init__(self, total: int, desc: str, progress):
        super().__init__()
        self.total, self.desc = total, desc
        self.report = progress if callable(progress) else None
        self.enabled = bool(progress) and not self.report
        self.seconds = []

    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.total, desc=self.desc, unit="epoch", disable=not self.enabled)

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items() if k != "lr"})
        self.bar.update()
        if self.report:
            self.report(f"training {self.desc}: epoch {epoch + 1}/{self.total}")

    def on_train_end(self, logs=None):
        self.bar.close()


class StopAt(keras.callbacks.Callback):
    """The seeds' epoch-end callbacks: stop once accuracy or loss crosses its threshold."""

    def __init__(self, rule):
        super().__init__()
        self.rule, self.reason = rule, None

    def on_epoch_end(self, epoch, logs=None):
        acc, loss, rule = logs["accuracy"], logs["loss"], self.rule
        if rule.accuracy_above is not None and acc > rule.accuracy_above:
            self.reason = f"accuracy {acc:.4f} > {rule.accuracy_above} after epoch {epoch + 1}"
        elif rule.loss_below is not None and loss < rule.loss_below:
            self.reason = f"loss {loss:.4f} < {rule.loss_below} after epoch {epoch + 1}"
        self.model.stop_training = self.reason is not None


def _optimizer(name: str, learning_rate: float):
    return {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[name](learning_rate)


def compile_model(model, optimizer: str, learning_rate, schedule: str = "constant", steps: int = 0) -> None:
    """Compile with the recipe's optimizer; a cosine schedule decays to 0 over `steps` updates."""
    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(optimizer=_optimizer(optimizer, learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=STEPS_PER_EXECUTION)


def fit_inputs(recipe: Recipe, x, y, seed: int) -> dict:
    """model.fit's data arguments: the arrays, or augmented batches when the recipe asks for them."""
    if recipe.augment:
        return {"x": augmented(x, y, recipe.batch_size, seed)}
    return {"x": x, "y": y, "batch_size": recipe.batch_size}


def augmented(x, y, batch_size: int, seed: int):
    """Shuffled batches, each image mirrored left-right at random: a mirrored garment is still the
    same garment. (Random 2-pixel shifts were tried too and cost 0.6 points: see README.md.)"""
    def flip(images, labels):
        return tf.image.random_flip_left_right(images[..., None], seed=seed)[..., 0], labels
    return (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
            .batch(batch_size).map(flip, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def training_arrays(spec: ModelSpec, ds: fdata.FashionMNIST, subset: int | None, seed: int):
    """(train, validation or None) as normalised arrays, by the recipe's validation policy."""
    train = (ds.train_images, ds.train_labels)
    validation = None
    if spec.recipe.validation == "holdout":
        train, validation = fdata.validation_split(*train, size=spec.recipe.holdout_size, seed=seed)
    if subset:
        pick = np.random.default_rng(seed).permutation(len(train[0]))[:subset]
        train = (train[0][pick], train[1][pick])
    if spec.recipe.validation == "test":
        validation = (ds.test_images, ds.test_labels)
    norm = lambda pair: (fdata.normalise(pair[0]), pair[1])  # noqa: E731
    return norm(train), (norm(validation) if validation else None)


TRAINING_LIBRARIES = ("tensorflow", "tf-keras")
# Code a trained model's weights do not depend on: plots, storage and the record's environment,
# the run's options (their values are in the key); and, for a base model, the variants.
# A user model's architecture and input contract are in its key as content, so the code that reads
# user models (fmnist.user) is left out too: editing it retrains no zoo model.
NOT_TRAINING_CODE = ("fmnist.plots", "fmnist.storage", "fmnist.environment", "fmnist.atomic", "fmnist.config",
                     "fmnist.user", "fmnist.user.contract", "fmnist.user.keras_source", "fmnist.user.onnx_source")
FINETUNING_LIBRARIES = (*TRAINING_LIBRARIES, "tensorflow-model-optimization")


def _versions(names) -> dict:
    """The versions a training result depends on (and no others: a new runtime retrains nothing)."""
    return {k: v for k, v in environment.versions().items() if k in names}


def _base_key(spec: ModelSpec, ds, epochs, subset, seed, code) -> dict:
    """What a trained result depends on: the architecture, recipe and overrides, seed, data, library
    versions, and the code that trains it (`code`: functions whose fmnist definitions are digested;
    plots, storage and the environment's description change no weight and are left out)."""
    return {"layers": repr(spec.layers), "architecture": spec.architecture, "origin": spec.origin,
            "recipe": repr(spec.recipe), "epochs": epochs, "subset": subset,
            "seed": seed, "data": ds.sha256, "versions": _versions(TRAINING_LIBRARIES),
            "code": code_digest(*code, exclude=(*NOT_TRAINING_CODE, "fmnist.variants"))}


def lr_sweep(name: str, exports: Path, ds, config: RunConfig = RunConfig(), progress=True) -> dict:
    """README 001's learning-rate sweep as its own cached step; returns its record (with `pick`)."""
    spec, subset, seed = get_spec(name), config.subset, config.seed
    sweep = spec.recipe.lr_sweep
    epochs = sweep.epochs
    folder = Path(exports) / SWEEP_DIR / name
    key = storage.cache_key({**_base_key(spec, ds, epochs, subset, seed, [lr_sweep]), "sweep": repr(sweep)})
    try:
        cached = json.loads((folder / "sweep.json").read_text())
        if cached.get("cache_key") == key:
            return cached
    except (OSError, ValueError):
        pass
    keras.utils.set_random_seed(seed)
    (x, y), _ = training_arrays(spec, ds, subset, seed)
    model = create_model(name)
    compile_model(model, spec.recipe.optimizer, sweep.start)
    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch: sweep.start * 10 ** (epoch / sweep.epochs_per_decade))
    history = model.fit(x, y, epochs=epochs, batch_size=spec.recipe.batch_size, verbose=0,
                        callbacks=[schedule, EpochProgress(epochs, f"{name} lr sweep", progress)])
    rates = [sweep.start * 10 ** (e / sweep.epochs_per_decade) for e in range(epochs)]
    losses = [float(v) for v in history.history["loss"]]
    best = int(np.nanargmin(losses))
    record = {"model": name, "sweep": asdict(sweep), "epochs": epochs, "learning_rates": rates,
              "losses": losses, "lowest_loss_lr": rates[best],
              "pick": max(rates[best] / 10, sweep.start),
              "cache_key": key}
    with atomic_dir(folder) as tmp:
        write_json(tmp / "sweep.json", record)
        plots.lr_sweep(rates, losses, record["pick"], name, tmp / "lr_vs_loss.png")
    return record


def _save(folder: Path, model, record: dict, ds: fdata.FashionMNIST, seed: int, plots_for=None,
          architecture: str | None = None) -> Path:
    """Evaluate on the 10,000 test images and write the model folder whole: weights, reference
    probabilities, plots, a user model's architecture, and the sealed record (with the files'
    hashes)."""
    x_test = fdata.normalise(ds.test_images)
    test_loss, test_acc = model.evaluate(x_test, ds.test_labels, batch_size=1024, verbose=0)
    probabilities = model.predict(x_test, batch_size=1024, verbose=0)
    record = {**record, "test_accuracy": float(test_acc), "test_loss": float(test_loss),
              "environment": environment.describe(seed), "data_sha256": ds.sha256,
              "fmnist_version": fmnist.__version__}
    with atomic_dir(folder) as tmp:
        with warnings.catch_warnings():  # "HDF5 ... is considered legacy": weights only, on purpose
            warnings.simplefilter("ignore", UserWarning)
            model.save_weights(tmp / storage.MODEL_FILE)
        np.save(tmp / storage.PROBABILITIES_FILE, probabilities)
        if architecture:
            (tmp / storage.ARCHITECTURE_FILE).write_text(architecture)
        if plots_for:
            predicted = probabilities.argmax(axis=1)
            if record["history"]:  # a user model trained elsewhere has none
                plots.learning_curves(record["history"], plots_for, tmp / "learning_curves.png")
            plots.confusion_matrix(ds.test_labels, predicted, plots_for, tmp / "confusion_matrix.png")
            plots.prediction_grid(ds.test_images, ds.test_labels, predicted, plots_for, tmp / "predictions.png",
                                  seed)
        storage.seal_model_folder(tmp, record)
    return folder


def _history(history) -> dict:
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def train(name: str, exports: Path = storage.DEFAULT_EXPORTS, ds: fdata.FashionMNIST | None = None,
          config: RunConfig = RunConfig(), progress=True) -> Path:
    """Train `name` by its recipe unless an identical run is cached; returns the model folder."""
    spec, subset, seed = get_spec(name), config.subset, config.seed
    ds = ds or fdata.load()
    if spec.origin and spec.origin["kind"] in ("keras-file", "onnx-file"):
        return imported(spec, exports, ds, config)
    recipe = replace(spec.recipe, epochs=config.epochs or spec.recipe.epochs)
    sweep = None
    if recipe.lr_sweep:
        # the sweep keeps its own 40-epoch schedule: cutting it short would change what it measures
        sweep = lr_sweep(name, exports, ds, config, progress=progress)
        recipe = replace(recipe, learning_rate=sweep["pick"])
    folder = model_dir(exports, name)
    key = storage.cache_key({**_base_key(spec, ds, recipe.epochs, subset, seed, [train]),
                             "learning_rate": recipe.learning_rate})
    if not config.force and storage.cached_record(folder, key, config.retrain_damaged):
        return folder

    keras.utils.set_random_seed(seed)
    (x, y), validation = training_arrays(spec, ds, subset, seed)
    model = create_model(name)
    steps = recipe.epochs * -(-len(x) // recipe.batch_size)
    compile_model(model, recipe.optimizer, recipe.learning_rate, recipe.lr_schedule, steps)
    timer = EpochProgress(recipe.epochs, name, progress)
    stopper = StopAt(recipe.stop) if recipe.stop else None
    start = time.perf_counter()
    history = _history(model.fit(**fit_inputs(recipe, x, y, seed), epochs=recipe.epochs, verbose=0,
                                 validation_data=validation, callbacks=[timer] + ([stopper] if stopper else [])))
    record = {
        "model": name, "variant": BASE.name, "derivation": BASE.as_dict(), "source": spec.source,
        "summary": spec.summary, "recipe": asdict(recipe), "notes": spec.notes, "reported": spec.reported,
        "params": int(model.count_params()), "macs": count_macs(model),
        "epochs_planned": recipe.epochs, "epochs_run": len(history["loss"]),
        "stop_reason": (stopper and stopper.reason) or f"ran all {recipe.epochs} epochs",
        "subset": subset, "lr_sweep": {k: sweep[k] for k in ("lowest_loss_lr", "pick")} if sweep else None,
        "history": history, "epoch_seconds": timer.seconds, "train_seconds": time.perf_counter() - start,
        "train_threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
        "train_accuracy": history["accuracy"][-1], "train_loss": history["loss"][-1],
        "validation_accuracy": history.get("val_accuracy", [None])[-1],
        "validation_loss": history.get("val_loss", [None])[-1],
        "validation": recipe.validation, "cache_key": key, **({"origin": spec.origin} if spec.origin else {}),
    }
    return _save(folder, model, record, ds, seed, plots_for=name, architecture=spec.architecture)


def imported(spec: ModelSpec, exports: Path, ds: fdata.FashionMNIST, config: RunConfig) -> Path:
    """A user model trained elsewhere, in a model folder like a trained one (not trained again):
    its weights (a Keras file, rebuilt in tf_keras) or its adapted graph (an ONNX file), its test
    probabilities and its record. Cached by the file's SHA-256 and the contract."""
    from fmnist.user import keras_source, onnx_source
    folder = model_dir(exports, spec.name)
    path, origin = Path(spec.origin["reference"]), spec.origin
    if storage.file_sha256(path) != origin["sha256"]:
        raise storage.TrainedModelError(f"{path}: changed since it was read; run the command again")
    key = storage.cache_key({**_base_key(spec, ds, 0, None, config.seed, [imported]),
                             "versions": _versions((*TRAINING_LIBRARIES, "keras", "onnx", "onnxruntime"))})
    if not config.force and storage.cached_record(folder, key, config.retrain_damaged):
        return folder
    record = {"model": spec.name, "variant": BASE.name, "derivation": BASE.as_dict(), "source": spec.source,
              "summary": spec.summary, "recipe": asdict(spec.recipe), "notes": spec.notes, "reported": {},
              "subset": None, "epochs_planned": 0, "epochs_run": 0, "stop_reason": "trained elsewhere",
              "history": {}, "epoch_seconds": [], "train_seconds": 0.0, "train_threads": None,
              "validation": "none", "cache_key": key, "origin": origin}
    if origin["kind"] == "onnx-file":
        return onnx_source.imported(folder, onnx_source.checked(path), record, ds, config.seed)
    _, major = keras_source.read_config(path)
    model = keras_source.with_weights(keras_source.from_architecture(spec.architecture, origin),
                                      keras_source.load_weights_of(path, major, origin["trusted_code"]))
    compile_model(model, spec.recipe.optimizer, spec.recipe.learning_rate)
    train_loss, train_accuracy = model.evaluate(fdata.normalise(ds.train_images), ds.train_labels, batch_size=1024,
                                                verbose=0)
    record |= {"params": int(model.count_params()), "macs": count_macs(model), "train_accuracy": float(train_accuracy),
               "train_loss": float(train_loss)}
    return _save(folder, model, record, ds, config.seed, plots_for=spec.name, architecture=spec.architecture)


def _kernels(model) -> list[np.ndarray]:
    """Dense and conv kernels: the weights pruning acts on (not QAT's kernel_min/kernel_max)."""
    return [w.numpy() for w in model.weights if w.name.rsplit("/", 1)[-1] == "kernel:0"]


def derive(name: str, variant: Variant, exports: Path, ds: fdata.FashionMNIST, config: RunConfig = RunConfig(),
           progress=True) -> Path:
    """Make (or reuse) the variant's folder from its parent (trained or derived first if missing,
    with the same quick-run overrides); returns its folder."""
    if variant.is_base:
        return train(name, exports, ds, config, progress=progress)
    spec, subset, seed = get_spec(name), config.subset, config.seed
    if spec.origin and spec.origin["kind"] == "onnx-file":
        from fmnist.user import ModelError
        raise ModelError(f"{name}: an ONNX source has no Keras model for tfmot to fine-tune")
    parent = derive(name, variant.parent, exports, ds, replace(config, force=False), progress=progress)
    parent_record = storage.verified_record(parent)
    epochs_ = config.finetune_epochs or variant.finetune_epochs
    folder = model_dir(exports, name, variant.name)
    key = storage.cache_key({"parent": parent_record["cache_key"], "parent_model": parent_record["model_sha256"],
                             "variant": variant.as_dict(), "how": variant.how, "epochs": epochs_,
                             "lr_factor": FINETUNE_LR_FACTOR, "subset": subset, "seed": seed,
                             "versions": _versions(FINETUNING_LIBRARIES),
                             "code": code_digest(derive, Variant, exclude=NOT_TRAINING_CODE)})
    if not config.force and storage.cached_record(folder, key, config.retrain_damaged):
        return folder

    recipe = parent_record["recipe"]
    learning_rate = recipe["learning_rate"] * FINETUNE_LR_FACTOR
    keras.utils.set_random_seed(seed)
    (x, y), _ = training_arrays(spec, ds, subset, seed)
    steps = epochs_ * -(-len(x) // recipe["batch_size"])
    model, callbacks = variant.training_structure(load_trained(parent), steps)
    compile_model(model, recipe["optimizer"], learning_rate)
    timer = EpochProgress(epochs_, f"{name} {variant.name}", progress)
    start = time.perf_counter()
    history = _history(model.fit(**fit_inputs(spec.recipe, x, y, seed), epochs=epochs_, verbose=0,
                                 callbacks=[timer, *callbacks]))
    seconds = time.perf_counter() - start
    model = variant.finished(model)
    compile_model(model, recipe["optimizer"], learning_rate)  # stripping drops the compile
    kernels = _kernels(model)
    zeros = sum(int(np.sum(k == 0)) for k in kernels)
    record = {
        **{k: parent_record[k] for k in ("source", "summary", "recipe", "params", "macs", "origin") if k in parent_record},
        "model": name, "variant": variant.name, "derivation": variant.as_dict(),
        "parent": {"folder": parent.name, "record_sha256": storage.file_sha256(parent / storage.RECORD_FILE),
                   "test_accuracy": parent_record["test_accuracy"]},
        "finetune": {"epochs": epochs_, "learning_rate": learning_rate, "how": variant.how},
        "sparsity": zeros / sum(k.size for k in kernels), "nonzero_params": int(parent_record["params"] - zeros),
        "epochs_planned": epochs_, "epochs_run": epochs_, "subset": subset, "history": history,
        "epoch_seconds": timer.seconds, "train_seconds": seconds,
        "train_accuracy": history["accuracy"][-1], "train_loss": history["loss"][-1], "cache_key": key,
    }
    architecture = parent / storage.ARCHITECTURE_FILE
    return _save(folder, model, record, ds, seed, architecture=architecture.read_text() if architecture.is_file() else None)
