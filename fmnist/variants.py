"""Optimised variants of a trained model (tensorflow-model-optimization), as registered objects.

A variant says what it is (its name, its parent, whether it is quantization-aware, how it is
derived) so that no module parses a name to learn it. `base` is the recipe's own model; `qat` is
quantization-aware fine-tuning; `pruned-<pct>` magnitude pruning to a target sparsity (wrappers
stripped before saving); `pruned-<pct>-qat` prune-preserving QAT on the pruned model.

Importing this module imports no TensorFlow: the report and the benchmark ask variants questions.
The methods that build Keras models import tfmot when called.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from fmnist.registry import Registry, UnknownName

MIN_PRUNABLE_WEIGHTS = 1024  # a layer smaller than this keeps all its weights: it has none to spare


SPARSITY_DECIMALS = 4  # sparsity is kept to 0.01 %, so a name (pruned-50.4) stands for one sparsity only


@dataclass(frozen=True)
class Variant:
    prune: float | None = None      # target sparsity of the pruned kernels
    qat: bool = False               # quantization-aware (fine-tuned with fake-quant nodes)

    def __post_init__(self):
        if self.prune is not None:  # two sparsities that share a name are one variant
            object.__setattr__(self, "prune", round(float(self.prune), SPARSITY_DECIMALS))

    @property
    def name(self) -> str:
        """base, qat, pruned-50, pruned-50.4, pruned-50-qat: the percent in full, never rounded away."""
        percent = f"{round(self.prune * 100, SPARSITY_DECIMALS - 2):g}" if self.prune else None
        parts = ([f"pruned-{percent}"] if percent else []) + (["qat"] if self.qat else [])
        return "-".join(parts) or "base"

    @classmethod
    def from_name(cls, name: str) -> Variant:
        """The variant a name stands for (the inverse of `name`); UnknownName when it is none."""
        match = re.fullmatch(r"(?:pruned-(\d+(?:\.\d+)?))?(-?qat)?|base", name)
        if not match or name in ("", "-qat") or (match.group(2) == "-qat" and not match.group(1)):
            raise UnknownName(f"unknown variant {name!r}; variants are base, qat, pruned-P and pruned-P-qat "
                              f"(P: percent of pruned weights, e.g. {', '.join(_VARIANTS.names())})")
        prune = float(match.group(1)) / 100 if match.group(1) else None
        if prune is not None and not 0 < prune < 1:
            raise UnknownName(f"unknown variant {name!r}: a pruned percent is between 0 and 100")
        variant = cls(prune=prune, qat=bool(match.group(2)))
        if variant.name != name:
            raise UnknownName(f"unknown variant {name!r}; write the percent as {variant.name!r}")
        return variant

    @property
    def is_base(self) -> bool:
        return self == BASE

    @property
    def quantization_aware(self) -> bool:
        return self.qat

    @property
    def parent(self) -> Variant | None:
        """What it is fine-tuned from: prune-preserving QAT starts from the pruned model."""
        if self.is_base:
            return None
        return Variant(prune=self.prune) if self.qat and self.prune else BASE

    @property
    def how(self) -> str:
        if self.is_base:
            return "trained by its recipe"
        if self.qat and self.prune:
            return f"prune-preserving quantization-aware fine-tuning of {self.parent.name}"
        if self.qat:
            return "quantization-aware fine-tuning of base"
        return (f"gradual magnitude pruning of base to {self.prune:.0%} of every kernel with at least "
                f"{MIN_PRUNABLE_WEIGHTS} weights, wrappers stripped")

    @property
    def finetune_epochs(self) -> int:
        """Pruning ramps its sparsity up gradually and then needs time to recover (tfmot's
        guidance), so it gets two epochs; QAT only has to adapt to the fake-quant nodes: one."""
        return 2 if self.prune and not self.qat else 1

    def as_dict(self) -> dict:
        return asdict(self)

    # --- Keras structure (tfmot imported only here) ---------------------------------------------
    def saved_structure(self, model):
        """The model as saved: what its weights file fits. Pruned models are saved stripped, so
        they have the base architecture."""
        if not self.qat:
            return model
        import tensorflow_model_optimization as tfmot
        if self.prune:
            annotated = tfmot.quantization.keras.quantize_annotate_model(model)
            scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
            return tfmot.quantization.keras.quantize_apply(annotated, scheme)
        return tfmot.quantization.keras.quantize_model(model)

    def training_structure(self, model, steps: int):
        """The model to fine-tune from the parent's, and the callbacks it needs; `steps` is the
        length of the fine-tuning run, over which pruning ramps up its sparsity."""
        if self.qat:
            return self.saved_structure(model), []
        import tensorflow_model_optimization as tfmot
        prune = tfmot.sparsity.keras
        # tfmot's guidance: reach the target gradually, leaving the last third to recover
        schedule = prune.PolynomialDecay(0.0, self.prune, begin_step=0, end_step=max(1, 2 * steps // 3),
                                         frequency=max(1, steps // 30))

        def wrap(layer):
            if layer.weights and layer.count_params() >= MIN_PRUNABLE_WEIGHTS and hasattr(layer, "kernel"):
                return prune.prune_low_magnitude(layer, pruning_schedule=schedule)
            return layer
        import tf_keras as keras
        return keras.models.clone_model(model, clone_function=wrap), [prune.UpdatePruningStep()]

    def float_twin(self, model, plain):
        """The trained weights of a quantization-aware `model` set into `plain` (a fresh build of
        the base architecture): the same network without its fake-quant nodes. The converter turns
        any fake-quant graph into int8, so this is what a float reference graph and a 16x8
        conversion of a QAT model start from."""
        wrapped = [layer for layer in model.layers if hasattr(layer, "layer")]  # not tfmot's input QuantizeLayer

        def leaf(weight):  # "conv2d/kernel:0" -> "kernel:0"; the wrappers' kernel_min etc. never match
            return weight.name.rsplit("/", 1)[-1]
        import tf_keras as keras
        own = [layer for layer in plain.layers if not isinstance(layer, keras.layers.InputLayer)]  # functional: listed
        for layer, trained in zip(own, wrapped, strict=True):
            values = {leaf(w): w.numpy() for w in trained.weights}
            layer.set_weights([values[leaf(w)] for w in layer.weights])
        return plain

    def finished(self, model):
        """The fine-tuned model as it is saved (pruning wrappers removed)."""
        if self.prune and not self.qat:
            import tensorflow_model_optimization as tfmot
            return tfmot.sparsity.keras.strip_pruning(model)
        return model


BASE = Variant()
# The variants `fmnist-bench` makes by default; any other sparsity is a Variant made on request,
# found by its name (get_variant), never added here by reading a record.
_VARIANTS = Registry("variant")
register_variant, list_variants = _VARIANTS.register, _VARIANTS.names


def get_variant(name: str) -> Variant:
    return Variant.from_name(name)


def from_record(record: dict) -> Variant:
    """The variant a trained model folder was made as (its record carries the definition)."""
    return Variant(**record["derivation"])


def requested(qat: bool, prune: float | None) -> list[Variant]:
    """The variants a request asks for: --qat, --prune S, or both (which adds the combination)."""
    wanted = []
    if prune is not None:
        wanted.append(Variant(prune=prune))
    if qat:
        wanted.append(Variant(qat=True))
    if qat and prune is not None:
        wanted.append(Variant(prune=prune, qat=True))
    return wanted


for _v in (BASE, Variant(qat=True), Variant(prune=0.5), Variant(prune=0.5, qat=True)):
    register_variant(_v)
