"""LiteRT (ai_edge_litert), for every TFLite variant, with an explicit thread count."""
from __future__ import annotations

from importlib import metadata

import numpy as np

from fmnist.runtimes.base import Runtime, Session


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
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = None
        self.invoke = self.interpreter.invoke  # the bound C++ call itself: no wrapper in the timed loop

    def bind(self, images):
        if len(images) != self.batch:  # an interpreter is fixed to one shape until resized
            from fmnist import stderr_muted
            with stderr_muted():  # the delegate announces itself here
                self.interpreter.resize_tensor_input(self.input["index"], (len(images), *images.shape[1:]))
                self.interpreter.allocate_tensors()
            self.batch = len(images)
        self.interpreter.set_tensor(self.input["index"], quantize(images, self.input))

    def result(self):
        return dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)

    def extras(self, images, probabilities):
        """Whether the default delegate (XNNPACK) took the graph: a 16x8 graph, for one, runs on
        the builtin kernels instead."""
        return {"delegated": any(op["op_name"] == "DELEGATE" for op in self.interpreter._get_ops_details())}


class LiteRT(Runtime):
    package = "ai_edge_litert"
    edge = True
    name = "litert"
    formats = ("tflite", "tflite-fp16", "tflite-dynamic", "tflite-int8", "tflite-int16x8", "tflite-int8-mixed")

    def load(self, path, fmt, threads=None):
        return LiteRTSession(path, threads)

    def describe(self):
        return {"runtime": self.name, "version": metadata.version("ai-edge-litert"),
                "provider": "XNNPACK/builtin", "device": self.device}


from fmnist.runtimes import register_runtime  # noqa: E402

register_runtime(LiteRT())
