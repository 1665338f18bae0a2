"""What a figure was measured on: CPU, cores, Python and library versions, seed, date."""
from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata

SEED = 42
PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tf2onnx", "onnx",
            "onnxruntime", "ai-edge-litert", "numpy")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def describe(seed: int = SEED) -> dict:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": versions(),
        "seed": seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
