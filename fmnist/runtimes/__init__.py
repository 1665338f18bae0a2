"""Runtime adapters: load an artifact file, run batches of normalised images, describe themselves.

A runtime knows nothing of how an artifact was made; it gets a path and a format name. Importing
this package imports no inference library: each adapter imports its own when it loads, so a
benchmark worker for LiteRT never pays for (or measures the memory of) TensorFlow.
"""
from __future__ import annotations

from fmnist.runtimes.base import Runtime, Session, UnknownRuntime

_RUNTIMES: dict[str, Runtime] = {}


def register_runtime(runtime: Runtime) -> Runtime:
    _RUNTIMES[runtime.name] = runtime
    return runtime


def list_runtimes() -> list[str]:
    return list(_RUNTIMES)


def get_runtime(name: str) -> Runtime:
    try:
        return _RUNTIMES[name]
    except KeyError:
        raise UnknownRuntime(f"unknown runtime {name!r}; known runtimes: {', '.join(_RUNTIMES)}") from None


def runtimes_for(fmt: str) -> list[Runtime]:
    return [r for r in _RUNTIMES.values() if fmt in r.formats]


from fmnist.runtimes import keras, litert, onnxruntime, tensorflow, tflm  # noqa: E402,F401  (registrations)

__all__ = ["Runtime", "Session", "UnknownRuntime", "get_runtime", "list_runtimes", "register_runtime",
           "runtimes_for"]
