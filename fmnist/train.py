"""Train registered models by their recipes, cached on disk under exports/<name>/.

A model folder holds `model.h5`, `record.json` (recipe, history, figures, provenance), the
recipe's plots and the test-set probabilities. It is written to a temp folder and renamed into
place, and reused as long as its cache key (architecture, recipe, overrides, seed, data and
library versions) is unchanged.
"""
from __future__ import annotations

import hashlib
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
from fmnist import data as fdata, environment, plots
from fmnist.atomic import atomic_dir, write_json
from fmnist.models import ModelSpec, Recipe, count_macs, create_model, get_spec

DEFAULT_EXPORTS = Path(os.environ.get("FMNIST_EXPORTS", "exports"))
# HDF5, not .keras: tf_keras' .keras format cannot load a quantization-aware model back
# ("Layer 'quantize_layer' expected 5 variables, but received 3"), and one format serves all models.
MODEL_FILE, RECORD_FILE = "model.h5", "record.json"
PROBABILITIES_FILE = "test_probabilities.npy"  # the source model's outputs: what parity compares to
STEPS_PER_EXECUTION = 50  # same updates in the same order, half the per-step Python overhead
SWEEP_DIR = "_lr_sweeps"


class TrainedModelError(Exception):
    """A trained model folder is missing or unreadable."""


def model_dir(exports: Path, name: str, variant: str = "base") -> Path:
    """exports/<name> for the recipe's own model, exports/<name>-<variant> for a derived one."""
    return Path(exports) / (name if variant == "base" else f"{name}-{variant}")


def _key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def read_record(folder: Path) -> dict:
    path = Path(folder) / RECORD_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TrainedModelError(f"{folder}: no trained model here (missing {RECORD_FILE})") from None
    except (OSError, ValueError) as e:
        raise TrainedModelError(f"{path}: unreadable training record ({e})") from None


def save_model(model, path: Path) -> None:
    with warnings.catch_warnings():  # "HDF5 ... is considered legacy": chosen on purpose, see MODEL_FILE
        warnings.simplefilter("ignore", UserWarning)
        model.save(path)


def load_model(folder: Path):
    """The trained tf_keras model in `folder`; a clear error if it is missing or corrupt."""
    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise TrainedModelError(f"{folder}: no trained model here (missing {MODEL_FILE})")
    try:
        from tensorflow_model_optimization.quantization.keras import quantize_scope
        with quantize_scope():  # QAT models carry quantize wrappers
            return keras.models.load_model(path)
    except Exception as e:  # Keras raises many types for a damaged file
        raise TrainedModelError(f"{path}: cannot load the trained model ({type(e).__name__}: {e})") from None


class EpochProgress(keras.callbacks.Callback):
    """One tqdm bar per training run, advanced and annotated at each epoch's end; also times epochs."""

    def __init__(self, total: int, desc: str, enabled: bool):
        super().__init__()
        self.total, self.desc, self.enabled = total, desc, enabled
        self.seconds = []

    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.total, desc=self.desc, unit="epoch", disable=not self.enabled)

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items() if k != "lr"})
        self.bar.update()

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


def _base_key(spec: ModelSpec, ds, epochs, subset, seed) -> dict:
    return {"layers": repr(spec.layers), "recipe": repr(spec.recipe), "epochs": epochs, "subset": subset,
            "seed": seed, "data": ds.sha256,
            "versions": {k: v for k, v in environment.versions().items() if k in ("tensorflow", "tf-keras")}}


def lr_sweep(name: str, exports: Path, ds, *, subset=None, seed=environment.SEED, progress=True) -> dict:
    """README 001's learning-rate sweep as its own cached step; returns its record (with `pick`)."""
    spec = get_spec(name)
    sweep = spec.recipe.lr_sweep
    epochs = sweep.epochs
    folder = Path(exports) / SWEEP_DIR / name
    key = _key({**_base_key(spec, ds, epochs, subset, seed), "sweep": repr(sweep)})
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


def train(name: str, exports: Path = DEFAULT_EXPORTS, ds: fdata.FashionMNIST | None = None, *,
          epochs: int | None = None, subset: int | None = None, force: bool = False,
          seed: int = environment.SEED, progress: bool = True) -> Path:
    """Train `name` by its recipe unless an identical run is cached; returns the model folder."""
    spec = get_spec(name)
    ds = ds or fdata.load()
    recipe = replace(spec.recipe, epochs=epochs or spec.recipe.epochs)
    sweep = None
    if recipe.lr_sweep:
        # the sweep keeps its own 40-epoch schedule: cutting it short would change what it measures
        sweep = lr_sweep(name, exports, ds, subset=subset, seed=seed, progress=progress)
        recipe = replace(recipe, learning_rate=sweep["pick"])
    folder = model_dir(exports, name)
    key = _key({**_base_key(spec, ds, recipe.epochs, subset, seed), "learning_rate": recipe.learning_rate})
    if not force and (folder / MODEL_FILE).is_file():
        try:
            if read_record(folder).get("cache_key") == key:
                return folder
        except TrainedModelError:
            pass  # a damaged record is simply retrained

    keras.utils.set_random_seed(seed)
    (x, y), validation = training_arrays(spec, ds, subset, seed)
    model = create_model(name)
    steps = recipe.epochs * -(-len(x) // recipe.batch_size)
    compile_model(model, recipe.optimizer, recipe.learning_rate, recipe.lr_schedule, steps)
    timer = EpochProgress(recipe.epochs, name, progress)
    stopper = StopAt(recipe.stop) if recipe.stop else None
    callbacks = [timer] + ([stopper] if stopper else [])
    start = time.perf_counter()
    history = model.fit(**fit_inputs(recipe, x, y, seed), epochs=recipe.epochs, verbose=0,
                        validation_data=validation, callbacks=callbacks)
    train_seconds = time.perf_counter() - start
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    epochs_run = len(hist["loss"])
    stop_reason = (stopper and stopper.reason) or f"ran all {recipe.epochs} epochs"

    x_test = fdata.normalise(ds.test_images)
    test_loss, test_acc = model.evaluate(x_test, ds.test_labels, batch_size=1024, verbose=0)
    probabilities = model.predict(x_test, batch_size=1024, verbose=0)
    predicted = probabilities.argmax(axis=1)
    record = {
        "model": name, "variant": "base", "source": spec.source, "summary": spec.summary,
        "recipe": asdict(recipe), "notes": spec.notes, "reported": spec.reported,
        "params": int(model.count_params()), "macs": count_macs(model),
        "epochs_planned": recipe.epochs, "epochs_run": epochs_run, "stop_reason": stop_reason,
        "subset": subset, "lr_sweep": {k: sweep[k] for k in ("lowest_loss_lr", "pick")} if sweep else None,
        "history": hist, "epoch_seconds": timer.seconds, "train_seconds": train_seconds,
        "train_accuracy": hist["accuracy"][-1], "train_loss": hist["loss"][-1],
        "validation_accuracy": hist.get("val_accuracy", [None])[-1],
        "validation_loss": hist.get("val_loss", [None])[-1],
        "validation": recipe.validation,
        "test_accuracy": float(test_acc), "test_loss": float(test_loss),
        "environment": environment.describe(seed), "data_sha256": ds.sha256,
        "fmnist_version": fmnist.__version__, "cache_key": key,
    }
    with atomic_dir(folder) as tmp:
        save_model(model, tmp / MODEL_FILE)
        write_json(tmp / RECORD_FILE, record)
        np.save(tmp / PROBABILITIES_FILE, probabilities)
        plots.learning_curves(hist, name, tmp / "learning_curves.png")
        plots.confusion_matrix(ds.test_labels, predicted, name, tmp / "confusion_matrix.png")
        plots.prediction_grid(ds.test_images, ds.test_labels, predicted, name, tmp / "predictions.png", seed)
    return folder
