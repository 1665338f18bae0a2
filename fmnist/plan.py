"""What a run asks of the cluster and what comes back, and what a job is expected to cost: the
plain data the scheduler (fmnist.schedule) works from. TF-free."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from fmnist import storage
from fmnist.config import RunConfig
from fmnist.harness import Settings
from fmnist.runtimes import get_runtime
from fmnist.variants import BASE

DEVICE_FORMATS = ("tflite", "tflite-int8", "onnx", "onnx-int8")  # what a device bundle carries by default
VERDICTS_DIR = "_jobs"  # exports/_jobs/<model>.json: a model's last training-and-export verdict, by content
SECONDS_PER_STEP = 0.002  # a rough training step (batch 32, one core) before any run has timed one
RESCATTER_TRIES = 3  # a job whose data was lost with the only worker holding it is sent again, with the data
SECONDS_PER_MEASURED_ROW = 1.5  # a rough row's measuring, for the time left


@dataclass(frozen=True)
class Plan:
    """What a run asks for."""
    names: list
    formats: list             # the export formats (Format objects)
    measured_formats: list    # names, `keras` (the trained model itself) included
    runtimes: list
    variants: list
    exports: Path
    config: RunConfig = RunConfig()
    settings: Settings = Settings()
    data_dir: str | None = None
    devices: tuple | None = ()  # device labels to measure on (None: every device worker present)


@dataclass
class Outcome:
    """What the jobs gave back, as they finished."""
    manifests: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    rows: dict = field(default_factory=dict)        # (runtime, artifact folder, format) -> row
    lost: list = field(default_factory=list)        # error rows of jobs that never finished
    devices: list = field(default_factory=list)     # device results (the runner's JSON)
    jobs: list = field(default_factory=list)        # {"job", "worker", "seconds", "status"}


@functools.lru_cache(maxsize=1)
def package_digest() -> str:
    """Every source file of the package: a verdict is reused only under the code that gave it."""
    root = Path(__file__).parent
    return storage.cache_key({p.relative_to(root).as_posix(): storage.file_sha256(p) for p in sorted(root.rglob("*.py"))})


def family_folders(name: str, variants: list) -> list[str]:
    """The exports/ folders one model's training and export may write."""
    return [storage.model_dir(Path(), name, v.name).as_posix() for v in [BASE, *variants]] + \
        [f"{storage.SWEEP_DIR}/{name}"]


def estimated_seconds(name: str, plan: Plan) -> float:
    """A model's training and export, for longest-first order and the time left: what training took
    last time (its records), else its recipe's steps at a rough cost per step."""
    from fmnist.models import get_spec
    spent = []
    for folder in family_folders(name, plan.variants):
        try:
            spent.append(storage.read_record(plan.exports / folder)["train_seconds"])
        except (storage.StorageError, KeyError):
            pass
    if spent:
        return sum(spent) + 2.0 * len(plan.formats)
    recipe = get_spec(name).recipe
    images = plan.config.subset or 60_000
    epochs = (plan.config.epochs or recipe.epochs) + (recipe.lr_sweep.epochs if recipe.lr_sweep else 0)
    steps = epochs * images / recipe.batch_size * (1 + 0.3 * len(plan.variants))
    return steps * SECONDS_PER_STEP * (1 + 4 * str(get_spec(name).layers).count("Conv")) + 2.0 * len(plan.formats)


def whole_machine(runtime: str) -> bool:
    """A runtime measured alone (it uses every core, or its timing would feel a training beside it)."""
    return not get_runtime(runtime).single_threaded
