"""TensorFlow SavedModel with a serving signature for a float32 (N, 28, 28) batch."""
from __future__ import annotations

from fmnist.export import register_format
from fmnist.export.base import Format
from fmnist.metrics import FLOAT_TOLERANCE


class SavedModel(Format):
    name, filename, runtime = "savedmodel", "saved_model", "tensorflow"
    tolerance = FLOAT_TOLERANCE

    def convert(self, model, target, ctx):
        import tensorflow as tf
        signature = tf.function(lambda images: {"probabilities": model(images, training=False)},
                                input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name="images")])
        tf.saved_model.save(model, str(target), signatures={"serving_default": signature})
        return {"inputs": {"images": "float32 [N, 28, 28]"}, "outputs": {"probabilities": "float32 [N, 10]"}}


register_format(SavedModel())
