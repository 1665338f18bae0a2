"""LiteRT (ai_edge_litert), for every TFLite variant, with an explicit thread count."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import numpy as np

from fmnist.runtimes.base import Runtime, Session
from fmnist.runtimes.profile import tflite_macs


def quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if not scale:
        return values.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(detail["dtype"])


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


class LiteRTSession(Session):
    def __init__(self, path, threads):
        from ai_edge_litert.interpreter import Interpreter

        from fmnist import stderr_muted
        with stderr_muted():  # "INFO: Created TensorFlow Lite XNNPACK delegate" on every load
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.path, self.threads = path, threads
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = None
        # a graph converted at a fixed batch of 1 (the tflm export) cannot be resized: it takes a
        # batch as one call per image, which its rows' throughput_scope says
        self.one_image_per_call = list(self.input.get("shape_signature", [-1]))[:1] != [-1]
        if self.one_image_per_call:
            with stderr_muted():
                self.interpreter.allocate_tensors()
        self.invoke = self.interpreter.invoke  # the bound C++ call itself: no wrapper in the timed loop

    def bind(self, images):
        if self.one_image_per_call:
            self.images, self.outputs = quantize(images, self.input), None
            self.interpreter.set_tensor(self.input["index"], self.images[:1])
            self.invoke = self.interpreter.invoke if len(images) == 1 else self._each
            return
        if len(images) != self.batch:  # an interpreter is fixed to one shape until resized
            from fmnist import stderr_muted
            with stderr_muted():  # the delegate announces itself here
                self.interpreter.resize_tensor_input(self.input["index"], (len(images), *images.shape[1:]))
                self.interpreter.allocate_tensors()
            self.batch = len(images)
        self.interpreter.set_tensor(self.input["index"], quantize(images, self.input))

    def _each(self):
        outputs = []
        for image in self.images:
            self.interpreter.set_tensor(self.input["index"], image[None])
            self.interpreter.invoke()
            outputs.append(self.interpreter.get_tensor(self.output["index"]))
        self.outputs = np.concatenate(outputs)

    def result(self):
        raw = self.outputs if self.one_image_per_call and self.outputs is not None else \
            self.interpreter.get_tensor(self.output["index"])
        return dequantize(raw, self.output)

    def delegated(self) -> bool:
        """Whether the default delegate (XNNPACK) took the graph: a 16x8 graph, for one, runs on
        the builtin kernels instead."""
        return any(op["op_name"] == "DELEGATE" for op in self.interpreter._get_ops_details())

    def predict(self, images, batch_size=256):
        """On builtin kernels (no delegate), the images are split between `threads` interpreters run
        side by side: the 16x8 kernels are single-threaded, so one interpreter would leave the other
        cores idle through a 10,000-image accuracy pass (`invoke` releases the GIL). Same outputs,
        same total batch in memory, half the time on two cores."""
        shards = self.threads or 1
        if shards == 1 or len(images) < shards or self.delegated() or self.one_image_per_call:
            return super().predict(images, batch_size)
        sessions = [self] + [LiteRTSession(self.path, 1) for _ in range(shards - 1)]
        size = max(1, batch_size // shards)
        with ThreadPoolExecutor(shards) as pool:
            parts = pool.map(lambda session, part: Session.predict(session, part, size),
                             sessions, np.array_split(images, shards))
            return np.concatenate(list(parts))

    def extras(self, images, probabilities):
        """Whether XNNPACK took the graph, and the graph's MACs per op (LiteRT's Python API has no
        per-op profiler)."""
        return {"delegated": self.delegated(), "op_profile": tflite_macs(self.path)}


class LiteRT(Runtime):
    package = "ai_edge_litert"
    library = "ai_edge_litert.interpreter"
    edge = True
    name = "litert"
    formats = ("tflite", "tflite-fp16", "tflite-dynamic", "tflite-int8", "tflite-int16x8", "tflite-int8-mixed", "tflm")

    def load(self, path, fmt, threads=None):
        return LiteRTSession(path, threads)

    def describe(self):
        return {"runtime": self.name, "version": metadata.version("ai-edge-litert"),
                "provider": "XNNPACK/builtin", "device": self.device}


from fmnist.runtimes import register_runtime  # noqa: E402

register_runtime(LiteRT())
