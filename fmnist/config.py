"""How a run trains and exports, as one object threaded through train -> export -> benchmark
(instead of a dozen keyword arguments at every step). TF-free: the measuring core may read it."""
from __future__ import annotations

from dataclasses import dataclass

from fmnist.environment import SEED

CALIBRATION_IMAGES = 300


@dataclass(frozen=True)
class RunConfig:
    epochs: int | None = None            # override every recipe's epochs (quick runs)
    subset: int | None = None            # train on this many training images (quick runs)
    finetune_epochs: int | None = None   # override every variant's fine-tuning epochs
    seed: int = SEED
    force: bool = False                  # redo training and export even when cached
    calibration_size: int = CALIBRATION_IMAGES  # training images that calibrate static quantization
    # A trained model whose files no longer match its record: fmnist-train retrains it; export and
    # bench stop with one line (exit 1), so nothing is silently replaced and no artifact deleted.
    retrain_damaged: bool = False
