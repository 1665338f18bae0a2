"""The model registry: every architecture of the seed READMEs, each with the recipe it is trained by.

timm-style: `@register_model` on a function that returns a `ModelSpec`, `list_models()`,
`create_model(name)`. An architecture is a tuple of small layer descriptions, so a test can work out
the parameter count it implies without asking Keras, and every model takes the same input: a float32
batch of shape (N, 28, 28) with pixels in [0, 1].
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import fmnist  # noqa: F401  (selects tf_keras before TensorFlow loads)
from fmnist.metrics import at_least, at_most

from fmnist.layers import (INPUT_SHAPE, NUM_CLASSES, AddChannel, Conv, Dense, DepthwiseConv,  # noqa: F401
                           Dropout, Flatten, GlobalAvgPool, MaxPool, Residual, SeparableConv, build_model,
                           count_macs)


# --- recipes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StopRule:
    """Stop at the end of an epoch once training accuracy > accuracy_above or loss < loss_below."""
    accuracy_above: float | None = None
    loss_below: float | None = None


@dataclass(frozen=True)
class LRSweep:
    """README 001's search: lr = start * 10**(epoch / epochs_per_decade). The pick is the lr at the
    lowest loss divided by 10 (the usual rule for a rate that is fast but still stable), but never
    below `start`: a rate the sweep did not try is a guess, not a measurement."""
    start: float = 1e-3
    epochs: int = 40
    epochs_per_decade: int = 20


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "adam"            # "adam" or "sgd"
    learning_rate: float = 1e-3        # Keras' default for Adam; a sweep replaces it when set
    epochs: int = 5
    batch_size: int = 32               # Keras' default, which every seed uses
    validation: str = "none"           # "none", "test" (the test set, as READMEs 001/002) or "holdout"
    holdout_size: int = 0              # images held out of training when validation == "holdout"
    stop: StopRule | None = None
    lr_sweep: LRSweep | None = None
    lr_schedule: str = "constant"      # "constant" or "cosine" (decay to 0 over all epochs)
    augment: bool = False              # random horizontal flips of the training images


@dataclass(frozen=True)
class Ablation:
    """One change to an own model's design, trained to show what that choice buys
    (`fmnist-train --ablation NAME`): another architecture, and/or recipe fields changed."""
    label: str
    layers: tuple | None = None
    recipe: tuple = ()                 # (Recipe field, value) pairs

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")

    def applied(self, spec: ModelSpec) -> ModelSpec:
        return replace(spec, layers=self.layers or spec.layers, recipe=replace(spec.recipe, **dict(self.recipe)))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str                        # seed README ("000".."004") or "own"
    summary: str
    layers: tuple
    recipe: Recipe
    reported: dict = field(default_factory=dict)  # figures the README reports, as fractions
    notes: str = ""                    # where we chose a value the README leaves out
    targets: tuple = ()                # our own models: Targets the benchmark must show (fmnist.metrics.Target)
    ablations: tuple = ()              # our own models: the design choices `fmnist-train --ablation` tests
    # user models (fmnist.user): the tf_keras architecture as JSON, adapted to the input contract,
    # and where the model came from (kind, file or factory, SHA-256, contract): rows say "user"
    architecture: str | None = None
    origin: dict | None = None


_REGISTRY: dict[str, ModelSpec] = {}
PLUGIN_GROUP = "fmnist_edge.models"  # entry points: NAME = package.module:factory


def register_model(fn):
    """Register the ModelSpec that `fn` returns under `fn`'s name."""
    spec = fn()
    if spec.name != fn.__name__:
        raise ValueError(f"model function {fn.__name__} returns a spec named {spec.name}")
    _REGISTRY[spec.name] = spec
    return fn


def adopt(spec: ModelSpec) -> str:
    """Register a user model (resolved from a file, a factory or a plugin) in this process, so the
    pipeline finds it by name like any other; returns the name."""
    known = _REGISTRY.get(spec.name)
    if known is not None and known.origin is None:
        from fmnist.user import ModelError
        raise ModelError(f"{spec.origin['reference']}: its name {spec.name!r} is a registered model; rename it")
    _REGISTRY[spec.name] = spec
    return spec.name


def user_specs() -> list[ModelSpec]:
    """The user models adopted in this process (handed to worker processes, which adopt them too)."""
    return [spec for spec in _REGISTRY.values() if spec.origin]


def _plugins() -> dict:
    from importlib.metadata import entry_points
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}


def list_models() -> list[str]:
    """The zoo and the models installed packages register (entry-point group `fmnist_edge.models`)."""
    return sorted({name for name, spec in _REGISTRY.items() if not spec.origin} | set(_plugins()))


class UnknownModel(KeyError):
    def __str__(self):
        return (f"unknown model {self.args[0]!r}; known models: {', '.join(list_models())} (or a .keras, .h5 or "
                f".onnx file, or package.module:factory)")


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY and name in _plugins():
        from fmnist import user
        adopt(user.from_factory(_plugins()[name].value, name=name, kind="plugin"))
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModel(name) from None


def create_model(name: str):
    """The untrained tf_keras model of a registered architecture (uncompiled): built from its layer
    descriptions, or, for a user model, from its stored architecture."""
    spec = get_spec(name)
    if spec.architecture:
        from fmnist.user import keras_source
        return keras_source.from_architecture(spec.architecture, spec.origin)
    return build_model(spec.layers, name)


def load_trained(folder):
    """The trained model in `folder`: rebuilt from its registry entry (a user model: from the
    architecture stored beside its weights) and its variant's definition, then given the stored
    weights. Nothing stored in a file is ever executed (unless the user said they trust a model's
    code), and every file is checked against the record's SHA-256 first. An ONNX user model has
    no Keras model: its source is its ONNX graph."""
    from fmnist import storage, variants
    folder = Path(folder)
    record = storage.verified_record(folder)
    origin = record.get("origin")
    if origin and origin["kind"] == "onnx-file":
        from fmnist.user import onnx_source
        return onnx_source.OnnxSource.load(folder / record["model_file"])
    try:
        if origin:
            from fmnist.user import keras_source
            base = keras_source.from_architecture(storage.read_checked_text(
                folder / storage.ARCHITECTURE_FILE, record["architecture_sha256"]), origin)
        else:
            base = create_model(record["model"])
        model = variants.from_record(record).saved_structure(base)
    except UnknownModel as e:
        raise storage.TrainedModelError(f"{folder}: {e}") from None
    try:
        model.load_weights(folder / storage.MODEL_FILE)
    except Exception as e:  # h5py and Keras raise many types for a file that does not fit
        raise storage.TrainedModelError(f"{folder / storage.MODEL_FILE}: cannot load the weights "
                                        f"({type(e).__name__}: {str(e)[:200]})") from None
    return model


# --- README 000: three MLPs, Adam, sparse categorical cross-entropy, 5 epochs ---------------------
@register_model
def mlp128():
    return ModelSpec("mlp128", "000", "Dense 128 (README 000 model 1)",
                     (Flatten(), Dense(128), Dense(10, "softmax")), Recipe(epochs=5))


@register_model
def mlp512():
    return ModelSpec("mlp512", "000", "Dense 512 (README 000 model 2)",
                     (Flatten(), Dense(512), Dense(10, "softmax")), Recipe(epochs=5))


@register_model
def mlp512_stop():
    return ModelSpec("mlp512_stop", "000", "Dense 512, stop at accuracy > 60% or loss < 0.4 (model 3)",
                     (Flatten(), Dense(512), Dense(10, "softmax")),
                     Recipe(epochs=5, stop=StopRule(accuracy_above=0.60, loss_below=0.40)))


# --- README 001: tiny MLPs, the test set as validation, a learning-rate sweep -------------------
@register_model
def mlp4x2():
    return ModelSpec("mlp4x2", "001", "Dense 4-4 (README 001 model 1)",
                     (Flatten(), Dense(4), Dense(4), Dense(10, "softmax")),
                     Recipe(epochs=10, validation="test"),
                     notes="10 epochs: the low end of the README's '10-40 (varying by experiment)'")


@register_model
def mlp4x3():
    return ModelSpec("mlp4x3", "001", "Dense 4-4-4 (README 001 model 2)",
                     (Flatten(), Dense(4), Dense(4), Dense(4), Dense(10, "softmax")),
                     Recipe(epochs=10, validation="test"),
                     notes="10 epochs, as model 1, so the deeper net is compared at the same budget")


@register_model
def mlp4x3_tuned():
    return ModelSpec("mlp4x3_tuned", "001", "Dense 4-4-4, learning rate from the sweep (models 3-4)",
                     (Flatten(), Dense(4), Dense(4), Dense(4), Dense(10, "softmax")),
                     Recipe(epochs=40, validation="test", lr_sweep=LRSweep()),
                     reported={"train_accuracy": 0.8171, "validation_accuracy": 0.803},
                     notes="model 3 is the 40-epoch sweep; model 4 retrains 40 epochs at its pick")


# --- README 002: the CNN ------------------------------------------------------------------------
@register_model
def cnn32_64():
    return ModelSpec("cnn32_64", "002", "Conv 32-64, Dense 64 (README 002)",
                     (AddChannel(), Conv(32), MaxPool(2), Conv(64), MaxPool(2), Flatten(),
                      Dense(64), Dense(10, "softmax")),
                     Recipe(epochs=10, validation="test"),
                     reported={"test_accuracy": 0.9102})


# --- README 003: 300-100 MLP with SGD and a held-out validation set -----------------------------
@register_model
def mlp300_100_sgd():
    return ModelSpec("mlp300_100_sgd", "003", "Dense 300-100, SGD (README 003)",
                     (Flatten(), Dense(300), Dense(100), Dense(10, "softmax")),
                     Recipe(optimizer="sgd", learning_rate=0.01, epochs=30,
                            validation="holdout", holdout_size=5000),
                     reported={"train_accuracy": 0.958, "validation_accuracy": 0.895},
                     notes="SGD at Keras' default lr 0.01, 30 epochs, 5,000 training images held out")


# --- README 004: Dense 128 until 95% training accuracy ------------------------------------------
@register_model
def mlp128_stop95():
    return ModelSpec("mlp128_stop95", "004", "Dense 128, up to 50 epochs, stop at 95% accuracy",
                     (Flatten(), Dense(128), Dense(10, "softmax")),
                     Recipe(epochs=50, stop=StopRule(accuracy_above=0.95)),
                     notes="Adam, the README's unnamed optimizer, as the other seeds use")


# --- our own edge model (issue 5) -----------------------------------------------------------------
@register_model
def edge_cnn():
    """Three batch-normalised 3x3 convolutions and no hidden dense layer: the seed CNN spends 84% of
    its parameters on Dense 1600x64; here a third conv does that work with a fraction of the weights,
    and random flips and a cosine schedule make up for the smaller head."""
    return ModelSpec("edge_cnn", "own", "Conv 32s-64s-64 with BatchNorm, dropout, Dense 10 (ours)",
                     (AddChannel(), Conv(32, padding="same", batchnorm=True), MaxPool(2),
                      Conv(64, padding="same", batchnorm=True), MaxPool(2), Conv(64, batchnorm=True),
                      Dropout(0.3), Flatten(), Dense(10, "softmax")),
                     Recipe(learning_rate=2e-3, lr_schedule="cosine", epochs=20, augment=True),
                     notes="Adam 2e-3 with cosine decay to 0, 20 epochs, random horizontal flips",
                     targets=(at_least("keras_accuracy", 0.925), at_least("int8_accuracy", 0.923),
                              at_most("int8_bytes", 100_000), at_most("p50_us", 50), at_most("train_seconds", 600)),
                     ablations=(
                         Ablation("two convs (no third conv)", layers=(
                             AddChannel(), Conv(32, padding="same", batchnorm=True), MaxPool(2),
                             Conv(64, padding="same", batchnorm=True), MaxPool(2), Dropout(0.3), Flatten(),
                             Dense(10, "softmax"))),
                         Ablation("a third conv of 128 and a third pool", layers=(
                             AddChannel(), Conv(32, padding="same", batchnorm=True), MaxPool(2),
                             Conv(64, padding="same", batchnorm=True), MaxPool(2), Conv(128, batchnorm=True),
                             MaxPool(2), Dropout(0.3), Flatten(), Dense(10, "softmax"))),
                         Ablation("no augmentation", recipe=(("augment", False),)),
                         Ablation("constant learning rate instead of cosine", recipe=(("lr_schedule", "constant"),))))


@register_model
def micro_cnn():
    """edge_cnn scaled to a microcontroller's budget (int8 flash <= 32 KB, arena <= 16 KB): the
    widest tensor (the first conv's 28x28 output) sets the arena, so the first conv has 12 filters;
    the last conv is unpadded to shrink what the classifier reads."""
    return ModelSpec("micro_cnn", "own", "Conv 12s-24s-32 with BatchNorm, dropout, Dense 10 (ours, for MCUs)",
                     (AddChannel(), Conv(12, padding="same", batchnorm=True), MaxPool(2),
                      Conv(24, padding="same", batchnorm=True), MaxPool(2), Conv(32, batchnorm=True),
                      Dropout(0.2), Flatten(), Dense(10, "softmax")),
                     Recipe(learning_rate=2e-3, lr_schedule="cosine", epochs=20, augment=True),
                     notes="Adam 2e-3 with cosine decay to 0, 20 epochs, random horizontal flips (as edge_cnn)",
                     targets=(at_least("tflm_accuracy", 0.910), at_most("tflm_flash_bytes", 32 * 1024),
                              at_most("tflm_arena_bytes", 16 * 1024), at_most("train_seconds", 600)),
                     ablations=(
                         Ablation("first conv 8 filters", layers=(
                             AddChannel(), Conv(8, padding="same", batchnorm=True), MaxPool(2),
                             Conv(24, padding="same", batchnorm=True), MaxPool(2), Conv(32, batchnorm=True),
                             Dropout(0.2), Flatten(), Dense(10, "softmax"))),
                         Ablation("no BatchNorm", layers=(
                             AddChannel(), Conv(12, padding="same"), MaxPool(2), Conv(24, padding="same"), MaxPool(2),
                             Conv(32), Dropout(0.2), Flatten(), Dense(10, "softmax"))),
                         Ablation("last conv padded (classifier reads 7x7x32)", layers=(
                             AddChannel(), Conv(12, padding="same", batchnorm=True), MaxPool(2),
                             Conv(24, padding="same", batchnorm=True), MaxPool(2),
                             Conv(32, padding="same", batchnorm=True), Dropout(0.2), Flatten(), Dense(10, "softmax"))),
                         Ablation("no flips", recipe=(("augment", False),)),
                         Ablation("constant learning rate instead of cosine", recipe=(("lr_schedule", "constant"),))))
