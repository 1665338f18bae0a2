"""What a figure was measured on: CPU, cores, Python and library versions, seed, date."""
from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata

SEED = 42
HOST_LABEL = "host"  # the machine label of the host's own benchmark rows; devices are named otherwise
PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tf2onnx", "onnx",
            "onnxruntime", "ai-edge-litert", "tflite-micro", "numpy")


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


def machine(label: str) -> dict:
    """A measured machine, as results name it: label, CPU, architecture, cores, OS, Python."""
    return {"label": label, "cpu": cpu_model(), "architecture": platform.machine(), "cores": os.cpu_count(),
            "os": platform.platform(), "python": platform.python_version()}
