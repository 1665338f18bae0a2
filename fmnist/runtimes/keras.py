"""The seeds' own way to run a model: the tf_keras model called directly, and `model.predict`.
The reference every speed-up is measured against; the artifact is the trained model's weights file."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from fmnist.runtimes.base import Runtime, Session


class KerasSession(Session):
    def __init__(self, path, use_predict):
        from fmnist.models import load_trained
        self.model = load_trained(Path(path).parent)  # rebuilt from the registry: no code from the file
        self.use_predict = use_predict

    def bind(self, images):
        import tensorflow as tf
        # model.predict takes numpy and batches it itself; the direct call gets a tensor made here,
        # so the timed call does not convert its input
        self.inputs = images if self.use_predict else tf.constant(images)

    def invoke(self):
        if self.use_predict:
            self.outputs = self.model.predict(self.inputs, batch_size=len(self.inputs), verbose=0)
        else:
            self.outputs = self.model(self.inputs, training=False)

    def result(self):
        return self.outputs if self.use_predict else self.outputs.numpy()


class Keras(Runtime):
    package = "tf_keras"
    formats = ("keras",)
    takes_threads = False

    def __init__(self, name, use_predict):
        self.name, self.use_predict = name, use_predict
        if use_predict:
            self.latency_scope = "model.predict on a numpy batch: Keras' own batching and conversion included"
        # predict's cost is Keras' per-call machinery, the same for every variant: the base model shows it
        self.base_only = use_predict

    def load(self, path, fmt, threads=None):
        return KerasSession(path, self.use_predict)

    def describe(self):
        return {"runtime": self.name, "version": metadata.version("tf-keras"),
                "provider": "model.predict" if self.use_predict else "model call (eager)",
                "device": self.device}


from fmnist.runtimes import register_runtime  # noqa: E402

register_runtime(Keras("keras", use_predict=False))
register_runtime(Keras("keras-predict", use_predict=True))
