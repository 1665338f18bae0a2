"""ONNX Runtime: the CPU execution provider, and CUDA's when the installed build has it."""
from __future__ import annotations

import functools
from importlib import metadata

import numpy as np

from fmnist.runtimes.base import Runtime, Session


class ORTSession(Session):
    """Inputs and outputs go through an IOBinding, so `invoke` times the run alone."""

    def __init__(self, path, threads, provider):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ORT's default, one per core
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=[provider])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.binding = self.session.io_binding()
        self.invoke = functools.partial(self.session.run_with_iobinding, self.binding)  # no wrapper frame

    def bind(self, images):
        self.images = np.ascontiguousarray(images, dtype=np.float32)  # kept alive while bound
        self.binding.bind_cpu_input(self.input_name, self.images)
        self.binding.bind_output(self.output_name)

    def result(self):
        return self.binding.copy_outputs_to_cpu()[0].astype(np.float32)


class OnnxRuntime(Runtime):
    package = "onnxruntime"
    edge = True
    formats = ("onnx", "onnx-int8")

    def __init__(self, name, provider, device):
        self.name, self.provider, self.device = name, provider, device

    def unavailable(self):
        missing = super().unavailable()
        if missing:
            return missing
        import onnxruntime as ort
        if self.provider not in ort.get_available_providers():
            return (f"{self.provider} is not in this onnxruntime build "
                    f"(has: {', '.join(ort.get_available_providers())})")
        return None

    def load(self, path, fmt, threads=None):
        return ORTSession(path, threads, self.provider)

    def describe(self):
        return {"runtime": self.name, "version": metadata.version("onnxruntime"),
                "provider": self.provider, "device": self.device}


from fmnist.runtimes import register_runtime  # noqa: E402

register_runtime(OnnxRuntime("onnxruntime", "CPUExecutionProvider", "cpu"))
register_runtime(OnnxRuntime("onnxruntime-cuda", "CUDAExecutionProvider", "gpu"))
