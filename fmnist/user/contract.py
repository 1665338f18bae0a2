"""The input contract of a user model, stated rather than assumed (TF-free).

Every artifact of this toolkit takes a float32 batch (N, 28, 28) of pixels in [0, 1] and returns 10
class probabilities. A user model may want (N, 28, 28, 1) or (N, 1, 28, 28), pixels in 0-255 or
normalised by a mean and standard deviation, and may return logits. Its contract is read from the
model (layout) and from a flag or a sidecar file (scaling), and the model is adapted by a few nodes
in its own graph: a reshape (free: one channel), `(x * scale - mean) / std`, and a softmax when it
returns logits. So every runtime, the device bundle and the parity checks treat it like the zoo, and
the record lists exactly what was added.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fmnist.layers import INPUT_SHAPE, NUM_CLASSES
from fmnist.errors import FmnistError

LAYOUTS = {(28, 28): "NHW", (28, 28, 1): "NHWC", (1, 28, 28): "NCHW"}
SIDECAR_SUFFIX = ".input.json"  # model.keras -> model.input.json: {"scale": 255} or {"mean": m, "std": s}
PROBABILITY_CHECK_IMAGES = 256


class ContractError(FmnistError):
    """A model that does not fit the contract: one line naming what is wrong."""


@dataclass(frozen=True)
class Scaling:
    """What the model expects of a pixel p in [0, 1]: (p * scale - mean) / std."""
    scale: float = 1.0
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        for name in ("scale", "mean", "std"):
            if not math.isfinite(getattr(self, name)):
                raise ContractError(f"input {name} must be a finite number")
        if self.std <= 0 or self.scale <= 0:
            raise ContractError("input scale and std must be positive")

    @property
    def identity(self) -> bool:
        return (self.scale, self.mean, self.std) == (1.0, 0.0, 1.0)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The numpy reference of what the added nodes compute (float32 throughout)."""
        x = pixels.astype(np.float32)
        if self.scale != 1.0:
            x = x * np.float32(self.scale)
        return ((x - np.float32(self.mean)) / np.float32(self.std)).astype(np.float32)


SIDECAR_KEYS = ("scale", "mean", "std")


def _sidecar(path: Path) -> dict:
    """The sidecar's figures, strictly: a JSON object of known keys and finite numbers (a misspelled
    key is an error, not a silent default)."""
    example = '{"scale": 255} or {"mean": 0.286, "std": 0.353}'
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise ContractError(f"{path}: not a JSON object like {example} ({type(e).__name__})") from None
    if not isinstance(found, dict):
        raise ContractError(f"{path}: not a JSON object like {example}")
    unknown = sorted(set(found) - set(SIDECAR_KEYS))
    if unknown:
        raise ContractError(f"{path}: unknown key {unknown[0]!r}; the keys are {', '.join(SIDECAR_KEYS)}")
    for key, value in found.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ContractError(f"{path}: {key} must be a finite number, not {json.dumps(value)[:40]}")
    return found


def scaling_for(model_path: Path | None, scale: float | None, mean: float | None, std: float | None) -> Scaling:
    """Flags first, then the sidecar file beside the model (model.input.json), then [0, 1]."""
    if scale is None and mean is None and std is None and model_path is not None:
        sidecar = model_path.with_name(model_path.name.rsplit(".", 1)[0] + SIDECAR_SUFFIX)
        if sidecar.is_file():
            scale, mean, std = (_sidecar(sidecar).get(key) for key in SIDECAR_KEYS)
    if (mean is None) != (std is None):
        raise ContractError("give the input mean and std together")
    return Scaling(float(1.0 if scale is None else scale), float(0.0 if mean is None else mean),
                   float(1.0 if std is None else std))


def layout_of(shape, where: str) -> str:
    """The layout of a model input's shape without its batch dimension; ContractError otherwise."""
    shape = tuple(shape)
    if shape not in LAYOUTS:
        raise ContractError(f"{where}: input shape {shape} is not a 28x28 grey image; the contract is "
                            f"(N, 28, 28), (N, 28, 28, 1) or (N, 1, 28, 28)")
    return LAYOUTS[shape]


def layout_shape(layout: str) -> tuple:
    return next(shape for shape, name in LAYOUTS.items() if name == layout)


def check_classes(count, where: str) -> None:
    if count != NUM_CLASSES:
        raise ContractError(f"{where}: the output has {count} values per image; a Fashion-MNIST classifier "
                            f"has {NUM_CLASSES}")


def returns_logits(outputs: np.ndarray, where: str) -> bool:
    """Probabilities are in [0, 1] and sum to 1 on every image; anything else is taken as logits.
    A model whose outputs are not finite (NaN or infinite weights) is refused: no figure of it means
    anything."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if not np.isfinite(outputs).all():
        raise ContractError(f"{where}: its outputs are not finite (NaN or infinity) on real images; "
                            f"check its weights")
    in_range = outputs.min() >= 0 and outputs.max() <= 1
    return not (in_range and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3))


@dataclass(frozen=True)
class InputContract:
    layout: str
    scaling: Scaling
    logits: bool

    def describe(self) -> dict:
        """What the record and the rows say: the model's contract and the nodes added to meet ours."""
        added = ([f"reshape (N, 28, 28) -> (N, {', '.join(map(str, layout_shape(self.layout)))})"]
                 if self.layout != "NHW" else [])
        if not self.scaling.identity:
            added.append(f"(x * {self.scaling.scale:g} - {self.scaling.mean:g}) / {self.scaling.std:g}")
        if self.logits:
            added.append("softmax (the model returns logits)")
        return {"layout": self.layout, "input_shape": [None, *layout_shape(self.layout)], **asdict(self.scaling),
                "output": "logits" if self.logits else "probabilities", "nodes_added": added,
                "toolkit_input": f"float32 (N, {INPUT_SHAPE[0]}, {INPUT_SHAPE[1]}) pixels in [0, 1]"}

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 28, 28) pixels in [0, 1] as the model itself takes them."""
        return self.scaling.apply(pixels).reshape(len(pixels), *layout_shape(self.layout))
