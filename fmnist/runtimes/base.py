"""The one small interface every runtime adapter implements."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class Session:
    """A loaded artifact. `bind` prepares inputs (not timed), `invoke` is the runtime call itself
    (what latency measures), `result` returns float32 class probabilities, dequantized if needed."""

    def bind(self, images: np.ndarray) -> None:
        raise NotImplementedError

    def invoke(self) -> None:
        raise NotImplementedError

    def result(self) -> np.ndarray:
        raise NotImplementedError

    def extras(self, images: np.ndarray, probabilities: np.ndarray) -> dict:
        """Figures only this runtime has (e.g. a microcontroller's arena), given the test images
        and the probabilities it produced for them; added to the record as they are."""
        return {}

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        outputs = []
        for start in range(0, len(images), batch_size):
            self.bind(images[start:start + batch_size])
            self.invoke()
            outputs.append(self.result())
        return np.concatenate(outputs)


class Runtime:
    """Runs some formats on some device. `unavailable()` says why it cannot run here, or None."""
    name: str = ""
    kind: str = "measured"     # "measured": it runs the file here; "estimate": a compiler's model of a device
    #                            (Vela for Ethos-U), which gives `estimate()` and no session
    formats: tuple = ()
    device: str = "cpu"
    takes_threads: bool = True
    base_only: bool = False   # measured on the recipe's own models only, not on their variants
    edge: bool = False        # an edge runtime (what is deployed), not a reference to compare with
    microcontroller: bool = False  # runs as a microcontroller does: its latency on this host is not an MCU's
    single_threaded: bool = False  # one core per artifact: the benchmark measures several at once
    twins: bool = False        # one source model's files go to one measuring process, in turn (the runtime
    #                            reuses a pass of a network it has run already: TFLM)

    package: str = ""          # the Python package it needs (import name), checked by unavailable()
    library: str = ""          # the module that loads its kernels (default: package), imported
    #                            before the memory baseline, so a row's memory is the model's own
    latency_scope: str = ("the runtime call alone: inputs are bound before the timed loop and outputs read "
                          "after it, so int8 quantize/dequantize and input copies are excluded")
    derived_throughput: str | None = None  # how throughput is derived where it is not measured
    agrees_with: tuple = ()    # runtimes whose rows of the same file this one's top-1 is compared with

    def import_library(self) -> None:
        import importlib
        importlib.import_module(self.library or self.package)

    def unavailable(self) -> str | None:
        """Why this runtime cannot run here (its package missing, no GPU, ...), or None."""
        import importlib.util
        if self.package and importlib.util.find_spec(self.package) is None:
            return f"{self.package} is not installed"
        return None

    def load(self, path: Path, fmt: str, threads: int | None = None) -> Session:
        raise NotImplementedError

    def estimate(self, path: Path, fmt: str) -> dict:
        """An estimate runtime's figures for one file (its own section of the row)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """runtime, version, provider, device: what a result row says it ran on."""
        raise NotImplementedError
