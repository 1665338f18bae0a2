"""TensorFlow running a SavedModel through its serving signature, on the CPU or a GPU if present."""
from __future__ import annotations

from importlib import metadata

from fmnist.runtimes.base import Runtime, Session


class SavedModelSession(Session):
    def __init__(self, path, device):
        import tensorflow as tf
        self.tf, self.device = tf, device
        with tf.device(device):
            self.loaded = tf.saved_model.load(str(path))  # keep the object: it owns the variables
            self.signature = self.loaded.signatures["serving_default"]
        self.input_name = next(iter(self.signature.structured_input_signature[1]))
        self.output_name = next(iter(self.signature.structured_outputs))

    def bind(self, images):
        with self.tf.device(self.device):
            self.inputs = self.tf.constant(images)

    def invoke(self):
        with self.tf.device(self.device):
            self.outputs = self.signature(**{self.input_name: self.inputs})

    def result(self):
        return self.outputs[self.output_name].numpy()


class TensorFlow(Runtime):
    package = "tensorflow"
    formats = ("savedmodel",)
    takes_threads = False  # TensorFlow's thread pools are fixed at start-up; it uses every core

    def __init__(self, name, device):
        self.name, self.device = name, device

    def unavailable(self):
        missing = super().unavailable()
        if missing:
            return missing
        if self.device == "gpu":
            import tensorflow as tf
            if not tf.config.list_physical_devices("GPU"):
                return "TensorFlow sees no GPU on this machine"
        return None

    def load(self, path, fmt, threads=None):
        return SavedModelSession(path, "/GPU:0" if self.device == "gpu" else "/CPU:0")

    def describe(self):
        return {"runtime": self.name, "version": metadata.version("tensorflow"),
                "provider": "TensorFlow", "device": self.device}


from fmnist.runtimes import register_runtime  # noqa: E402

register_runtime(TensorFlow("tensorflow", "cpu"))
register_runtime(TensorFlow("tensorflow-gpu", "gpu"))
