"""TensorFlow Lite for Microcontrollers (the `tflite-micro` package's Python interpreter): the
runtime a microcontroller runs our int8 and 16x8 files with, here on the host.

What a firmware author needs from it: does every op have a TFLM kernel, does it give the same
answers (parity with the Keras source, top-1 agreement with LiteRT on the same file), how much
RAM (tensor arena) and flash (the model's bytes) it takes. The arena is found twice: what TFLM's
recording allocator reports, and the smallest arena that still runs (a binary search). Latency
here is TFLM's reference kernels on an x86-64 host: it says nothing about an MCU's.
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from fmnist.runtimes.base import Runtime, Session
from fmnist.runtimes.litert import dequantize, quantize

HOST_LATENCY = "TFLM reference kernels on this host: not a microcontroller's latency"


def _details(detail: dict) -> dict:
    """TFLM's tensor details in LiteRT's shape, so one quantize/dequantize serves both."""
    q = detail["quantization_parameters"]
    scale = float(q["scales"][0]) if len(q["scales"]) else 0.0
    zero_point = int(q["zero_points"][0]) if len(q["zero_points"]) else 0
    return {"dtype": detail["dtype"], "shape": detail["shape"], "quantization": (scale, zero_point)}


def op_names(path: Path) -> list[str]:
    """The builtin ops of a TFLite file, in graph order (read with LiteRT, no delegate)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from fmnist import stderr_muted
    with stderr_muted():
        interpreter = Interpreter(model_path=str(path),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return [op["op_name"] for op in interpreter._get_ops_details()]


def interpreter(data: bytes, arena_size: int | None = None):
    from tflite_micro.python.tflite_micro import runtime

    from fmnist import stderr_muted
    with stderr_muted():  # TFLM logs failed allocations to stderr; the exception says enough
        return runtime.Interpreter.from_bytes(data, arena_size=arena_size)


# Probing arenas in this process is unsafe: TFLM (this build) sometimes segfaults instead of failing
# in an arena that is too small (seen at 3,000 bytes for a CNN that fails cleanly at 2,048 and
# 4,096; and for an MLP at 10,069 bytes, above the 7,312 its recording allocator reported). So each
# probe runs in a worker process. It answers "ok", "too small" (TFLM's own allocation failure, or
# the worker dying: this build's other way of failing in a small arena) or "error: ..." (anything
# else, which stops the search); the search also stops at ARENA_CAP.
PROBE_WORKER = """
import os, sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
for line in sys.stdin:
    try:
        micro = runtime.Interpreter.from_bytes(data, arena_size=int(line))
        detail = micro.get_input_details(0)
        micro.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
        micro.invoke()
        print("ok", flush=True)
    except RuntimeError as e:
        print("too small" if "allocate" in str(e) else f"error: {e}", flush=True)
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}".splitlines()[0], flush=True)
"""
ARENA_CAP = 64 << 20  # no microcontroller has more: a model that needs more is an error, not a search


class ArenaError(RuntimeError):
    """The arena search failed for another reason than a too-small arena, or passed its cap."""


class _ArenaProbe:
    """Asks a worker process whether the model runs in an arena of a given size."""

    def __init__(self, path: Path):
        self.path, self.worker = path, None

    def runs(self, size: int) -> bool:
        import subprocess
        if self.worker is None or self.worker.poll() is not None:
            self.worker = subprocess.Popen([sys.executable, "-c", PROBE_WORKER, str(self.path)], text=True,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self.worker.stdin.write(f"{size}\n")
            self.worker.stdin.flush()
            answer = self.worker.stdout.readline().strip()
        except BrokenPipeError:
            answer = ""
        if not answer:  # the worker crashed on this size
            self.worker.wait()
            self.worker = None
            return False
        if answer.startswith("error"):
            raise ArenaError(f"arena probe at {size:,} bytes: {answer}")
        return answer == "ok"

    def close(self):
        if self.worker is not None:
            self.worker.stdin.close()
            self.worker.wait()


def recorded_arena(micro) -> int | None:
    """The arena total TFLM's recording allocator reports after an invoke."""
    from fmnist import captured_output
    for line in captured_output(micro.print_allocations, fds=(2,))[1].splitlines():
        if "Arena allocation total" in line:
            return int(line.split("total")[1].split()[0])
    return None


def arena_sizes(path: Path) -> tuple[int, int | None]:
    """(the smallest arena in which the model loads and runs an image, found by binary search,
    what TFLM's recording allocator reports in a roomy arena)."""
    data = Path(path).read_bytes()
    roomy = interpreter(data, max(len(data) * 10, 1 << 16))
    detail = roomy.get_input_details(0)
    roomy.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
    roomy.invoke()
    recorded = recorded_arena(roomy)
    probe = _ArenaProbe(Path(path))
    try:
        high = recorded or len(data)
        while not probe.runs(high):
            if high >= ARENA_CAP:
                raise ArenaError(f"the model does not run in a {ARENA_CAP >> 20} MiB arena (the search's cap)")
            high = min(2 * high, ARENA_CAP)
        low = 1
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if probe.runs(middle) else (middle + 1, high)
    finally:
        probe.close()
    return low, recorded


# A model's tflite-int8 and tflm files run the same integer network (one converted at a dynamic
# batch, one at batch 1): TFLM's full-test pass is run once per distinct network. A pass whose
# outputs on the first TWIN_CHECK_IMAGES images are bit-identical to an earlier file's (in this
# process: the benchmark hands one model's files to one process) reuses that file's outputs for the
# rest, and its row says so. Keyed by the images and those outputs, so nothing else can match.
TWIN_CHECK_IMAGES = 1000
_OUTPUTS: dict[tuple[str, str], tuple[np.ndarray, dict]] = {}


def _digest(array: np.ndarray) -> str:
    import hashlib
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


class TFLMSession(Session):
    """One image per invoke: a microcontroller's interpreter is built for batch 1."""

    def __init__(self, path):
        self.twin = None
        self.path, self.data = Path(path), Path(path).read_bytes()
        self.micro = interpreter(self.data)
        self.input = _details(self.micro.get_input_details(0))
        self.output = _details(self.micro.get_output_details(0))
        if tuple(self.input["shape"])[0] != 1:
            raise ValueError(f"TFLM needs a batch-1 input, this file has {tuple(self.input['shape'])}")

    def bind(self, images):
        self.images = quantize(images, self.input)[:, None]
        self.outputs = None
        if len(images) == 1:
            self.micro.set_input(self.images[0], 0)
            self.invoke = self.micro.invoke  # the bound C++ call itself, as the harness times it
        else:
            self.invoke = self._each

    def _each(self):
        outputs = []
        for image in self.images:
            self.micro.set_input(image, 0)
            self.micro.invoke()
            outputs.append(self.micro.get_output(0))
        self.outputs = np.concatenate(outputs)

    def result(self):
        raw = self.outputs if self.outputs is not None else self.micro.get_output(0)
        return dequantize(raw, self.output)

    def predict(self, images, batch_size=256):
        """All of `images`' outputs, or (after the first TWIN_CHECK_IMAGES) an earlier file's, when
        that file gave bit-identical outputs on those images (see _OUTPUTS)."""
        if len(images) <= TWIN_CHECK_IMAGES:
            return super().predict(images, batch_size)
        probe = super().predict(images[:TWIN_CHECK_IMAGES], batch_size)
        key = (_digest(images), _digest(probe))
        if key in _OUTPUTS:
            outputs, self.twin = _OUTPUTS[key]
            return outputs
        outputs = np.concatenate([probe, super().predict(images[TWIN_CHECK_IMAGES:], batch_size)])
        _OUTPUTS[key] = (outputs, {"file": f"{self.path.parent.name}/{self.path.name}",
                                   "sha256": _digest(np.frombuffer(self.data, np.uint8))})
        return outputs

    def extras(self, images, probabilities):
        """The arena and flash a firmware needs, and the ops. Agreement with LiteRT on the same file
        is added by the caller from LiteRT's own row (harness.agreements): no LiteRT pass here."""
        smallest, recorded = arena_sizes(self.path)
        return {"tflm": {"arena_bytes_min": smallest, "arena_bytes_recorded": recorded, "flash_bytes": len(self.data),
                         "ops": sorted(set(op_names(self.path))), "agreement_with_litert": None,
                         "latency_scope": HOST_LATENCY, "outputs_from": self.twin}}


class TFLM(Runtime):
    name = "tflm"
    formats = ("tflite-int8", "tflite-int16x8", "tflm")
    device = "cpu (host, TFLM reference kernels)"
    takes_threads = False
    edge = True
    microcontroller = True
    single_threaded = True

    package = "tflite_micro"
    library = "tflite_micro.python.tflite_micro.runtime"
    latency_scope = HOST_LATENCY
    derived_throughput = "1e6 / mean batch-1 latency: the interpreter takes one image per call"
    agrees_with = ("litert",)  # the same int8 file on LiteRT: do the two interpreters give the same answers
    twins = True  # one model's files share a process, so a repeated network's pass is reused (_OUTPUTS)

    def load(self, path, fmt, threads=None):
        return TFLMSession(path)

    def describe(self):
        return {"runtime": self.name, "version": metadata.version("tflite-micro"),
                "provider": "TFLM reference kernels", "device": self.device}


from fmnist.runtimes import register_runtime  # noqa: E402

register_runtime(TFLM())
