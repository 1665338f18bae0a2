"""The C export compiled for this host (`cc -O2`) and called through ctypes: the generated code
itself, measured by the same harness as every runtime. It needs only a C compiler.

Latency is the model's own invoke function on an x86-64 core, a reference beside TFLM's; what a
microcontroller takes is the Cortex-M estimates' business (cortex_m.py)."""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from fmnist.runtimes.base import Runtime, Session

COMPILER = "cc"
FLAGS = ("-O2", "-std=c99", "-shared", "-fPIC")
# Exposes the I/O quantization and a batch loop under fixed names, whatever the model's prefix.
DRIVER = """#include <stdint.h>
#include "model.h"
float fmnist_input_scale(void) { return FMNIST_MODEL_INPUT_SCALE; }
int fmnist_input_zero_point(void) { return FMNIST_MODEL_INPUT_ZERO_POINT; }
float fmnist_output_scale(void) { return FMNIST_MODEL_OUTPUT_SCALE; }
int fmnist_output_zero_point(void) { return FMNIST_MODEL_OUTPUT_ZERO_POINT; }
int fmnist_input_size(void) { return FMNIST_MODEL_INPUT_SIZE; }
int fmnist_output_size(void) { return FMNIST_MODEL_OUTPUT_SIZE; }
void fmnist_batch(const int8_t *inputs, int8_t *outputs, int count) {
  int i;
  for (i = 0; i < count; ++i)
    FMNIST_MODEL_INVOKE(inputs + i * FMNIST_MODEL_INPUT_SIZE, outputs + i * FMNIST_MODEL_OUTPUT_SIZE);
}
"""
HOST_LATENCY = "the generated C on this host's CPU (cc -O2): not a microcontroller's latency"


def compiler_version() -> str:
    done = subprocess.run([COMPILER, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else COMPILER


def invoke_symbol(folder: Path) -> str:
    found = re.search(r"#define FMNIST_MODEL_INVOKE (\w+)", (Path(folder) / "model.h").read_text())
    if not found:
        raise ValueError(f"{folder / 'model.h'} names no FMNIST_MODEL_INVOKE: not a C export")
    return found.group(1)


def build(folder: Path) -> Path:
    """The shared library of a C export, compiled once per content (cached in the temp folder)."""
    folder = Path(folder)
    sources = [(folder / name).read_bytes() for name in ("model.h", "model.c")]
    key = hashlib.sha256(b"\0".join([*sources, DRIVER.encode(), " ".join(FLAGS).encode(),
                                     compiler_version().encode()])).hexdigest()[:20]
    cache = Path(tempfile.gettempdir()) / "fmnist-c-host"
    library = cache / f"{key}.so"
    if library.exists():
        return library
    cache.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        (Path(work) / "driver.c").write_text(DRIVER)
        built = Path(work) / "model.so"
        done = subprocess.run([COMPILER, *FLAGS, "-I", str(folder), str(Path(work) / "driver.c"),
                               str(folder / "model.c"), "-o", str(built)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{COMPILER} failed on {folder / 'model.c'}: "
                               f"{(done.stderr.strip().splitlines() or ['no message'])[0]}")
        os.replace(built, library)  # atomic: a concurrent build of the same key writes the same bytes
    return library


class CModel:
    """A loaded C export: quantize, run, and read back int8 outputs."""

    def __init__(self, folder: Path):
        self.lib = ctypes.CDLL(str(build(folder)))
        for name, kind in (("fmnist_input_scale", ctypes.c_float), ("fmnist_output_scale", ctypes.c_float)):
            getattr(self.lib, name).restype = kind
        self.input = {"dtype": np.int8, "shape": (1, 28, 28),
                      "quantization": (float(self.lib.fmnist_input_scale()), int(self.lib.fmnist_input_zero_point()))}
        self.output = {"dtype": np.int8, "quantization": (float(self.lib.fmnist_output_scale()),
                                                          int(self.lib.fmnist_output_zero_point()))}
        self.input_size, self.output_size = self.lib.fmnist_input_size(), self.lib.fmnist_output_size()
        self.invoke_one = getattr(self.lib, invoke_symbol(folder))

    def quantize(self, images: np.ndarray) -> np.ndarray:
        from fmnist.runtimes.litert import quantize
        return np.ascontiguousarray(quantize(images, self.input).reshape(len(images), self.input_size))

    def run(self, quantized: np.ndarray) -> np.ndarray:
        """int8 outputs of int8 inputs (n, input size), one invoke per image."""
        quantized = np.ascontiguousarray(quantized, np.int8)
        outputs = np.empty((len(quantized), self.output_size), np.int8)
        self.lib.fmnist_batch(quantized.ctypes.data_as(ctypes.c_void_p), outputs.ctypes.data_as(ctypes.c_void_p),
                              ctypes.c_int(len(quantized)))
        return outputs


class CSession(Session):
    def __init__(self, path: Path):
        self.model = CModel(Path(path).parent)

    def bind(self, images):
        self.inputs = self.model.quantize(images)
        self.outputs = np.empty((len(images), self.model.output_size), np.int8)
        if len(images) == 1:  # the harness times this: the model's own invoke, arguments bound already
            self.invoke = functools.partial(self.model.invoke_one, ctypes.c_void_p(self.inputs.ctypes.data),
                                            ctypes.c_void_p(self.outputs.ctypes.data))
        else:
            self.invoke = self._all

    def _all(self):
        self.outputs = self.model.run(self.inputs)

    def result(self):
        from fmnist.runtimes.litert import dequantize
        return dequantize(self.outputs, self.model.output)


class CHost(Runtime):
    name = "c"
    formats = ("c",)
    device = "cpu (host, generated C)"
    takes_threads = False
    edge = True
    microcontroller = True
    single_threaded = True
    latency_scope = HOST_LATENCY
    derived_throughput = "1e6 / mean batch-1 latency: the C model takes one image per call"

    def import_library(self) -> None:
        """Nothing to import: the compiled model is loaded per artifact."""

    def unavailable(self):
        return None if shutil.which(COMPILER) else f"no C compiler: install gcc (the `{COMPILER}` command)"

    def load(self, path, fmt, threads=None):
        return CSession(path)

    def describe(self):
        return {"runtime": self.name, "version": compiler_version(), "provider": f"{COMPILER} {' '.join(FLAGS[:2])}",
                "device": self.device}


from fmnist.runtimes import register_runtime  # noqa: E402

register_runtime(CHost())
