"""ONNX Runtime: the CPU execution provider, and CUDA's when the installed build has it."""
from __future__ import annotations

import functools
import json
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import numpy as np

from fmnist.runtimes.base import Runtime, Session
from fmnist.runtimes.profile import PROFILE_CALLS, summary


class ORTSession(Session):
    """Inputs and outputs go through an IOBinding, so `invoke` times the run alone."""

    def __init__(self, path, threads, provider, profile_prefix: str | None = None):
        import onnxruntime as ort
        self.path, self.provider = path, provider
        options = ort.SessionOptions()
        if profile_prefix:
            options.enable_profiling, options.profile_file_prefix = True, profile_prefix
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

    def extras(self, images, probabilities):
        """A per-op profile: ONNX Runtime's session profiler (each node's kernel time, microseconds)
        summed over PROFILE_CALLS batch-1 calls after a warm-up call, on one thread (no thread
        pool's hand-offs blur whose time it is), in a second session with profiling on (it costs
        time, so the timed session runs without it)."""
        import tempfile
        with tempfile.TemporaryDirectory() as folder:
            profiled = ORTSession(self.path, 1, self.provider, profile_prefix=f"{folder}/ort")
            profiled.bind(images[:1])
            profiled.invoke()
            start = time.perf_counter()
            for _ in range(PROFILE_CALLS):
                profiled.invoke()
            wall_us = (time.perf_counter() - start) / PROFILE_CALLS * 1e6
            events = json.loads(Path(profiled.session.end_profiling()).read_text())
        times = defaultdict(list)
        for event in sorted(events, key=lambda e: e.get("ts", 0)):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                times[(event["name"].removesuffix("_kernel_time"), event["args"]["op_name"])].append(event["dur"])
        per_op = {node: sum(durations[1:]) for node, durations in times.items()}  # the first call warms up
        return {"op_profile": summary(per_op, "µs", "ONNX Runtime session profiling, per node kernel time",
                                      PROFILE_CALLS, wall_us, threads=1)}


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
