"""OpenVINO on the CPU (Intel edge boxes): every ONNX and TFLite artifact, read as it is, no
conversion step.

What the row adds: the precision each compute op's kernel actually ran at (OpenVINO picks kernels
when it compiles: a 16x8 TFLite file runs in float32 inside, a QDQ ONNX file in int8), so "int8" is
a measured fact, not a file name; and a per-op profile from OpenVINO's performance counters.
Inference precision is pinned to f32: on CPUs with bfloat16 units OpenVINO would otherwise run
float models in bf16 and change their answers.
"""
from __future__ import annotations

import functools
import json
import time
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path

import numpy as np

from fmnist.runtimes.base import Runtime, Session
from fmnist.runtimes.litert import dequantize, quantize
from fmnist.runtimes.profile import PROFILE_CALLS, summary

COMPUTE_OPS = {"Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution"}
# the kernel name ends in the type it computes in ('brgconv_avx512_I8', 'brgemm_avx512_f32'); the
# node's runtimePrecision names its weights' type, which is int8 for float kernels on 16x8 files
KERNEL_TYPES = {"i8": "int8", "u8": "int8", "f32": "float32", "bf16": "bfloat16", "f16": "float16"}
CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


def kernel_precision(primitive: str) -> str:
    """'brgconv_avx512_I8' -> 'int8', 'gemm_mlas_f32' -> 'float32'; the name itself when unknown."""
    return KERNEL_TYPES.get(primitive.rsplit("_", 1)[-1].lower(), primitive)


def executed_precision(compiled) -> dict:
    """What the compiled graph's compute ops run at: each op's kernel, and the whole graph's
    compute precision ("int8", "float32", or "mixed: ..." when its ops differ)."""
    kernels = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str)
        if kind in COMPUTE_OPS:
            primitive = info["primitiveType"].astype(str)
            kernels.append({"op": kind, "kernel": primitive, "precision": kernel_precision(primitive)})
    counts = Counter(k["precision"] for k in kernels)
    overall = (next(iter(counts)) if len(counts) == 1 else
               "mixed: " + ", ".join(f"{n} {p}" for p, n in counts.most_common()) if counts else "no compute ops")
    return {"compute_precision": overall, "kernels": kernels}


def quantization(path: Path) -> dict | None:
    """An integer-input TFLite file's input and output scale and zero point, from its manifest
    (OpenVINO shows the integer types but not their scales)."""
    manifest = Path(path).parent / "manifest.json"
    if not manifest.exists():
        return None
    io = json.loads(manifest.read_text())["details"].get("io")
    return {side: {"dtype": np.dtype(io[side]["dtype"]), "quantization": (io[side]["scale"], io[side]["zero_point"])}
            for side in ("input", "output")} if io else None


class OpenVINOSession(Session):
    def __init__(self, path, threads, profiling: bool = False):
        import openvino as ov
        core = ov.Core()
        config = {**CONFIG, "PERF_COUNT": profiling, **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
        self.path = Path(path)
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.tensor = ov.Tensor
        element = self.compiled.input(0).get_element_type()
        self.io = quantization(path) if element.is_integral() else None
        if element.is_integral() and self.io is None:
            raise ValueError(f"{self.path.name} takes {element} inputs, and no manifest gives their scale")
        # a fixed-batch graph (the tflm export) takes a batch as one call per image
        self.one_image_per_call = not self.compiled.input(0).get_partial_shape()[0].is_dynamic
        # the C++ call itself: the Python wrapper's `infer` also builds a dict of every output
        self.call = functools.partial(ov._pyopenvino.InferRequest.infer, self.request, {}, True, False)
        self.invoke, self.outputs = self.call, None

    def _set(self, images):
        self.request.set_input_tensor(self.tensor(images))

    def bind(self, images):
        self.images = quantize(images, self.io["input"]) if self.io else images
        self.outputs = None
        self.invoke = self._each if self.one_image_per_call and len(images) > 1 else self.call
        if self.invoke is self.call:
            self._set(self.images)

    def _each(self):
        outputs = []
        for image in self.images:
            self._set(image[None])
            self.call()
            outputs.append(self.request.get_output_tensor(0).data.copy())
        self.outputs = np.concatenate(outputs)

    def result(self):
        raw = self.outputs if self.outputs is not None else self.request.get_output_tensor(0).data.copy()
        return dequantize(raw, self.io["output"]) if self.io else raw.astype(np.float32)

    def extras(self, images, probabilities):
        """The executed precision, and a per-op profile: OpenVINO's performance counters (per node,
        microseconds) summed over PROFILE_CALLS batch-1 calls on one thread, in a second compiled
        model with the counters on (they cost time, so the timed model runs without them)."""
        profiled = OpenVINOSession(self.path, 1, profiling=True)
        profiled.bind(images[:1])
        profiled.invoke()
        per_op, wall = defaultdict(float), 0.0
        for _ in range(PROFILE_CALLS):
            start = time.perf_counter()
            profiled.invoke()
            wall += time.perf_counter() - start
            for node in profiled.request.get_profiling_info():  # the last call's counters
                per_op[(node.node_name, node.node_type)] += node.real_time.total_seconds() * 1e6
        source = "OpenVINO performance counters (PERF_COUNT), per node, 1 µs resolution"
        return {"openvino": {**executed_precision(self.compiled), "inference_precision_hint": CONFIG[
                    "INFERENCE_PRECISION_HINT"], "agreement_with_onnxruntime": None, "agreement_with_litert": None},
                "op_profile": summary(per_op, "µs", source, PROFILE_CALLS, wall / PROFILE_CALLS * 1e6, threads=1)}


class OpenVINO(Runtime):
    name = "openvino"
    package = "openvino"
    edge = True
    formats = ("onnx", "onnx-int8", "tflite", "tflite-fp16", "tflite-dynamic", "tflite-int8", "tflite-int16x8",
               "tflite-int8-mixed", "tflm")
    latency_scope = ("InferRequest.infer (the C++ call): inputs are set before the timed loop and outputs read "
                     "after it, so int8 quantize/dequantize and input copies are excluded")
    agrees_with = ("onnxruntime", "litert")  # the same file on the runtime it was made for

    def load(self, path, fmt, threads=None):
        return OpenVINOSession(path, threads)

    def describe(self):
        return {"runtime": self.name, "version": metadata.version("openvino"),
                "provider": "CPU plugin (f32 inference precision)", "device": self.device}


from fmnist.runtimes import register_runtime  # noqa: E402

register_runtime(OpenVINO())
