"""The registry's layer vocabulary: small frozen descriptions that a test can count parameters from
without Keras, and the one place that turns them into tf_keras layers.

Besides the seed READMEs' layers (Flatten, Dense, Conv, Dropout, MaxPool) it has the blocks edge
models are made of: depthwise and depthwise-separable convolutions, global average pooling, and
`Residual(...)`, whose layers' output is added to its input (MobileNet-v2's skip connection).
"""
from __future__ import annotations

from dataclasses import dataclass

INPUT_SHAPE = (28, 28)
NUM_CLASSES = 10


@dataclass(frozen=True)
class Flatten:
    pass


@dataclass(frozen=True)
class AddChannel:
    """(28, 28) -> (28, 28, 1): README 002's input layer that reshapes the image for convolutions."""


@dataclass(frozen=True)
class Dense:
    units: int
    activation: str = "relu"


@dataclass(frozen=True)
class Conv:
    """A 3x3 (by default) convolution; with `batchnorm`, conv (no bias) -> BatchNorm -> activation,
    which every converter folds back into one conv with a bias."""
    filters: int
    kernel: int = 3
    activation: str = "relu"
    padding: str = "valid"
    batchnorm: bool = False


@dataclass(frozen=True)
class DepthwiseConv:
    """One 3x3 (by default) filter per channel: k*k*c weights instead of a conv's k*k*c*c."""
    kernel: int = 3
    activation: str = "relu"
    padding: str = "same"
    batchnorm: bool = False


@dataclass(frozen=True)
class SeparableConv:
    """Depthwise then 1x1 pointwise convolution (MobileNet's block), as one Keras layer."""
    filters: int
    kernel: int = 3
    activation: str = "relu"
    padding: str = "same"
    batchnorm: bool = False


@dataclass(frozen=True)
class GlobalAvgPool:
    """(h, w, c) -> (c,): the mean of each channel, the classifier head of most edge CNNs."""


@dataclass(frozen=True)
class Residual:
    """x + f(x), f being `layers` (their output has x's shape)."""
    layers: tuple


@dataclass(frozen=True)
class Dropout:
    rate: float


@dataclass(frozen=True)
class MaxPool:
    size: int = 2


def _normalised(conv, activation: str, batchnorm: bool) -> list:
    """conv -> [BatchNorm ->] activation. BatchNorm momentum 0.9 (PyTorch's default) rather than
    Keras' 0.99: the moving statistics settle in tens of steps, so short fine-tunes and quick runs
    evaluate sensibly too."""
    from tf_keras import layers as kl
    if not batchnorm:
        return [conv]
    return [conv, kl.BatchNormalization(momentum=0.9), kl.Activation(activation)]


def keras_layers(layer) -> list:
    """The tf_keras layers one description stands for (not Residual: see `build_model`)."""
    from tf_keras import layers as kl
    if isinstance(layer, Flatten):
        return [kl.Flatten()]
    if isinstance(layer, AddChannel):
        return [kl.Reshape((*INPUT_SHAPE, 1))]
    if isinstance(layer, Dense):
        return [kl.Dense(layer.units, activation=layer.activation)]
    if isinstance(layer, Conv):
        activation = None if layer.batchnorm else layer.activation
        return _normalised(kl.Conv2D(layer.filters, layer.kernel, padding=layer.padding, activation=activation,
                                     use_bias=not layer.batchnorm), layer.activation, layer.batchnorm)
    if isinstance(layer, DepthwiseConv):
        activation = None if layer.batchnorm else layer.activation
        return _normalised(kl.DepthwiseConv2D(layer.kernel, padding=layer.padding, activation=activation,
                                              use_bias=not layer.batchnorm), layer.activation, layer.batchnorm)
    if isinstance(layer, SeparableConv):
        activation = None if layer.batchnorm else layer.activation
        return _normalised(kl.SeparableConv2D(layer.filters, layer.kernel, padding=layer.padding,
                                              activation=activation, use_bias=not layer.batchnorm),
                           layer.activation, layer.batchnorm)
    if isinstance(layer, GlobalAvgPool):
        return [kl.GlobalAveragePooling2D()]
    if isinstance(layer, MaxPool):
        return [kl.MaxPooling2D(layer.size)]
    if isinstance(layer, Dropout):
        return [kl.Dropout(layer.rate)]
    raise TypeError(f"no Keras layer for {layer!r}")


def _applied(layers, x):
    from tf_keras import layers as kl
    for layer in layers:
        if isinstance(layer, Residual):
            x = kl.Add()([x, _applied(layer.layers, x)])
        else:
            for keras_layer in keras_layers(layer):
                x = keras_layer(x)
    return x


def build_model(layers: tuple, name: str):
    """The untrained tf_keras model of a tuple of descriptions, taking (N, 28, 28) in [0, 1]:
    Sequential when it is a chain, functional when a Residual branches."""
    import tf_keras as keras
    if not any(isinstance(layer, Residual) for layer in layers):
        return keras.Sequential([keras.layers.InputLayer(input_shape=INPUT_SHAPE),
                                 *(k for layer in layers for k in keras_layers(layer))], name=name)
    inputs = keras.Input(INPUT_SHAPE)
    return keras.Model(inputs, _applied(layers, inputs), name=name)


def count_macs(model) -> int:
    """Multiply-accumulates for one image: dense in*out; convolution out_h*out_w*k*k*c_in*c_out;
    depthwise out_h*out_w*k*k*c; separable its depthwise part plus out_h*out_w*c_in*c_out."""
    import tf_keras as keras
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            macs += int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
        elif isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
            _, h, w, _ = layer.output_shape
            pointwise = getattr(layer, "pointwise_kernel", None)
            macs += h * w * int(layer.depthwise_kernel.shape.num_elements())
            macs += h * w * int(pointwise.shape.num_elements()) if pointwise is not None else 0
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, _ = layer.output_shape
            macs += h * w * int(layer.kernel.shape.num_elements())
    return macs
