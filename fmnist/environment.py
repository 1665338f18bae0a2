"""What a figure was measured on: CPU, cores, Python and library versions, seed, date."""
from __future__ import annotations

import datetime
import os
import platform
import re
from importlib import metadata

SEED = 42
HOST_LABEL = "host"  # the machine label of the host's own benchmark rows; devices are named otherwise
LABEL = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def valid_label(label) -> str | None:
    """Why a device label is refused, or None: a plain name (letters, digits, '-', '_', '.', no
    leading dot, at most 64 characters), not the host's own. It becomes a file name under results/."""
    if not isinstance(label, str) or not LABEL.fullmatch(label):
        return "a label is a plain name: letters, digits, '-', '_' and '.', not starting with '.'"
    if label == HOST_LABEL:
        return f"{HOST_LABEL!r} is the host's own label; name the device otherwise"
    return None
PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tf2onnx", "onnx",
            "onnxruntime", "ai-edge-litert", "tflite-micro", "openvino", "ethos-u-vela", "numpy")


# The vector extensions that set the speed of TensorFlow's and the runtimes' kernels: two CPUs that
# both call themselves "AMD EPYC" ran edge_cnn's int8 file on LiteRT in 11 µs and in 107 µs.
SIMD_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8",
                 "asimd", "asimddp", "i8mm", "sve")


def _cpuinfo(keys: tuple, path: str = "/proc/cpuinfo") -> str | None:
    """The value of the first /proc/cpuinfo line whose name is one of `keys`; None where unknown."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(keys):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo(("model name",)) or platform.processor() or platform.machine()


def cpu_features(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """Which of SIMD_FEATURES this CPU has (x86's `flags`, Arm's `Features`); [] where unknown."""
    have = set((_cpuinfo(("flags", "Features"), cpuinfo) or "").split())
    return [name for name in SIMD_FEATURES if name in have]


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
        "cpu_features": cpu_features(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": versions(),
        "seed": seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def machine(label: str) -> dict:
    """A measured machine, as results name it: label, CPU and its SIMD extensions, architecture, cores,
    OS, Python. Measured figures are reused only on the same machine, so the extensions are part of it."""
    return {"label": label, "cpu": cpu_model(), "cpu_features": cpu_features(), "architecture": platform.machine(),
            "cores": os.cpu_count(),
            "os": platform.platform(), "python": platform.python_version()}
