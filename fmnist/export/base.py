"""The interface every export format implements, and what a conversion gets to work with."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist.metrics import MIN_AGREEMENT
from fmnist.variants import Variant

OPSET = 17  # pinned ONNX opset: supported by tf2onnx 1.17 and every onnxruntime since 1.11


@dataclass
class ExportContext:
    """What a conversion may need besides the model: calibration images (training images only,
    never test images), which model and variant it is, a scratch folder, and a memo so a model is
    converted to a shared intermediate (e.g. float ONNX before int8) only once per run."""
    calibration: np.ndarray            # float32 (N, 28, 28), normalised
    calibration_indices: list
    scratch: Path
    model: str                         # the registered model's name
    variant: Variant
    memo: dict = field(default_factory=dict)


class Format:
    """`convert` writes the artifact and returns manifest details. Every artifact is then checked
    against its source model by the runtime named here: within `tolerance` on the softmax outputs
    for float formats, by top-1 agreement (at least `min_agreement`) for quantized ones and for any
    export of a quantization-aware model. One that misses is kept, and flagged."""
    name: str = ""
    filename: str = ""
    runtime: str = ""
    quantized: bool = False            # integer weights or activations: judged by agreement
    calibrated: bool = False           # uses the calibration images (static quantization)
    full_integer: bool = False         # integer arithmetic throughout: what an int8-only target runs
    activation_bits: int | None = None  # 8 or 16 for statically quantized activations, None for float
    float_counterpart: str | None = None  # the float format of the same family, for size ratios
    microcontroller: bool = False      # made for a microcontroller firmware (batch 1, C sources)
    from_onnx: bool = False            # also made from an ONNX source model (a user's ONNX file)
    tolerance: float | None = None     # max abs difference of class probabilities (float formats)
    min_agreement: float = MIN_AGREEMENT

    def not_for(self, variant: Variant) -> str | None:
        """Why this format is not made for a model variant, or None when it is."""
        return None

    def convert(self, model, target: Path, ctx: ExportContext) -> dict:
        raise NotImplementedError

    def settings(self) -> dict:
        """Everything besides the model that changes the artifact (part of the export cache key)."""
        return {"tolerance": self.tolerance, "min_agreement": self.min_agreement}
