"""Runtime adapters: load an artifact file, run batches of normalised images, describe themselves.

A runtime knows nothing of how an artifact was made; it gets a path and a format name. Importing
this package imports no inference library: each adapter imports its own when it loads, so a
benchmark worker for LiteRT never pays for (or measures the memory of) TensorFlow.
"""
from __future__ import annotations

from fmnist.registry import Registry
from fmnist.runtimes.base import Runtime, Session

_RUNTIMES = Registry("runtime")
register_runtime, list_runtimes, get_runtime = _RUNTIMES.register, _RUNTIMES.names, _RUNTIMES.get


def runtimes_for(fmt: str) -> list[Runtime]:
    return [r for r in _RUNTIMES.entries.values() if fmt in r.formats]


# registrations
from fmnist.runtimes import c_host, cortex_m, ethos_u, keras, litert, onnxruntime, openvino, tensorflow, tflm  # noqa: E402,F401

__all__ = ["Runtime", "Session", "get_runtime", "list_runtimes", "register_runtime",
           "runtimes_for"]
