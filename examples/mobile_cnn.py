"""A MobileNet-style Fashion-MNIST classifier, written as a user writes one (Keras 3's `import keras`):
depthwise-separable blocks, a residual add, global average pooling, and a head that returns logits
(fmnist sees them and adds the softmax).

    fmnist-bench --model examples.mobile_cnn:mobile_cnn     # trained by the pipeline, by RECIPE
    python examples/make_mobile_cnn.py                      # trains it here and saves a .keras file
"""
import keras
from keras import layers

from fmnist.models import Recipe

# The recipe the pipeline trains the factory's model by (without one: Adam 1e-3, batch 32, 5 epochs).
RECIPE = Recipe(learning_rate=2e-3, lr_schedule="cosine", epochs=6, augment=True)


def _separable(x, filters: int, strides: int = 1):
    """Depthwise 3x3 then pointwise 1x1, each batch-normalised (MobileNet's block)."""
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2D(filters, 1, use_bias=False)(x)
    return layers.BatchNormalization()(x)


def mobile_cnn():
    inputs = keras.Input((28, 28, 1), name="images")                      # NHWC, pixels in [0, 1]
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)   # 14x14x16
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Add()([x, _separable(x, 16)])                               # residual block
    x = layers.ReLU()(_separable(x, 32, strides=2))                        # 7x7x32
    x = layers.Add()([x, _separable(x, 32)])
    x = layers.ReLU()(_separable(x, 64, strides=2))                        # 4x4x64
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="mobile_cnn")
