"""Every registered model, tested the same way (timm style): a new registration needs no new test."""
import numpy as np
import pytest

from fmnist import models
from fmnist.storage import read_record


def implied(layers, shape) -> tuple[int, tuple]:
    """Parameter count and output shape worked out from the layer descriptions alone, independently
    of Keras."""
    total = 0
    for layer in layers:
        if isinstance(layer, models.AddChannel):
            shape = (*shape, 1)
        elif isinstance(layer, models.Flatten):
            shape = (int(np.prod(shape)),)
        elif isinstance(layer, models.Dense):
            total += (shape[0] + 1) * layer.units
            shape = (layer.units,)
        elif isinstance(layer, models.Conv):
            h, w, c = shape
            # batchnorm: no conv bias, and gamma, beta, moving mean and variance per filter
            total += (layer.kernel * layer.kernel * c + (4 if layer.batchnorm else 1)) * layer.filters
            shrink = 0 if layer.padding == "same" else layer.kernel - 1
            shape = (h - shrink, w - shrink, layer.filters)
        elif isinstance(layer, models.DepthwiseConv):
            h, w, c = shape  # one k x k filter per channel; batchnorm: no bias, 4 per channel
            total += (layer.kernel * layer.kernel + (4 if layer.batchnorm else 1)) * c
        elif isinstance(layer, models.SeparableConv):
            h, w, c = shape  # depthwise k x k x c (no bias), then pointwise c x filters
            total += layer.kernel * layer.kernel * c + (c + (4 if layer.batchnorm else 1)) * layer.filters
            shape = (h, w, layer.filters)
        elif isinstance(layer, models.GlobalAvgPool):
            shape = (shape[-1],)
        elif isinstance(layer, models.Residual):
            inner, inner_shape = implied(layer.layers, shape)
            assert inner_shape == shape, "a residual block's output has its input's shape"
            total += inner
        elif isinstance(layer, models.Dropout):
            pass
        elif isinstance(layer, models.MaxPool):
            shape = (shape[0] // layer.size, shape[1] // layer.size, shape[2])
        else:
            raise AssertionError(f"test does not know layer {layer!r}")
    return total, shape


def implied_params(layers) -> int:
    total, shape = implied(layers, models.INPUT_SHAPE)
    assert shape == (models.NUM_CLASSES,), "the network must end in the 10 class outputs"
    return total


@pytest.mark.parametrize("name", models.list_models())
def test_builds_with_the_parameter_count_its_layers_imply(name):
    model = models.create_model(name)
    assert model.count_params() == implied_params(models.get_spec(name).layers)
    assert tuple(model.input_shape) == (None, *models.INPUT_SHAPE)
    assert tuple(model.output_shape) == (None, models.NUM_CLASSES)


# The edge blocks of the vocabulary (no registered model uses them all): MobileNet-style.
MOBILE = (models.AddChannel(), models.Conv(16, padding="same", batchnorm=True),
          models.Residual((models.DepthwiseConv(batchnorm=True), models.Conv(16, kernel=1, padding="same"))),
          models.MaxPool(2), models.SeparableConv(32, batchnorm=True),
          models.Residual((models.SeparableConv(32),)), models.DepthwiseConv(kernel=5, padding="valid"),
          models.GlobalAvgPool(), models.Dropout(0.1), models.Dense(10, "softmax"))


def test_the_edge_blocks_build_with_the_parameter_count_they_imply():
    model = models.build_model(MOBILE, "mobile")
    assert model.count_params() == implied_params(MOBILE)
    assert tuple(model.output_shape) == (None, models.NUM_CLASSES)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"DepthwiseConv2D", "SeparableConv2D", "Add", "GlobalAveragePooling2D"} <= kinds
    assert models.count_macs(model) == (28 * 28 * 9 * 16                    # conv 3x3, 1 -> 16
                                        + 28 * 28 * 9 * 16 + 28 * 28 * 16 * 16  # residual: depthwise, 1x1 conv
                                        + 14 * 14 * (9 * 16 + 16 * 32)          # separable 16 -> 32
                                        + 14 * 14 * (9 * 32 + 32 * 32)          # residual separable 32 -> 32
                                        + 10 * 10 * 25 * 32 + 32 * 10)          # depthwise 5x5 valid, dense


@pytest.mark.parametrize("name", models.list_models())
def test_one_epoch_on_a_subset_beats_chance_on_held_out_images(name, trained):
    record = read_record(trained(name))
    assert record["epochs_run"] == 1 and record["subset"] > 0
    # on the 10,000 test images, none of which it trained on, guessing scores 10% +- 0.3% (one sd);
    # the 4-unit nets learn slowly, so the bar is 15%: far beyond guessing, reachable in one short epoch
    assert record["test_accuracy"] > 0.15, record["test_accuracy"]
    assert record["train_loss"] < np.log(models.NUM_CLASSES)  # below the loss of a uniform guess


@pytest.mark.parametrize("name", models.list_models())
def test_recipe_is_complete(name):
    spec = models.get_spec(name)
    assert spec.source in {"000", "001", "002", "003", "004", "own"}
    assert spec.recipe.optimizer in {"adam", "sgd"} and spec.recipe.epochs >= 1
    assert spec.recipe.validation in {"none", "test", "holdout"}
    assert (spec.recipe.validation == "holdout") == (spec.recipe.holdout_size > 0)
    assert spec.recipe.lr_schedule in {"constant", "cosine"}
    assert all(0 < v < 1 for v in spec.reported.values())


def test_every_seed_architecture_is_registered():
    sources = {models.get_spec(n).source for n in models.list_models()}
    assert {"000", "001", "002", "003", "004"} <= sources


def test_unknown_model_error_lists_the_known_ones():
    with pytest.raises(models.UnknownModel) as err:
        models.create_model("resnet50")
    assert "resnet50" in str(err.value) and "mlp128" in str(err.value) and "cnn32_64" in str(err.value)


def test_count_macs_matches_the_architecture():
    cnn = models.create_model("cnn32_64")
    # conv1 26x26x(3x3x1)x32, conv2 11x11x(3x3x32)x64, dense 1600x64, dense 64x10
    assert models.count_macs(cnn) == 26 * 26 * 9 * 32 + 11 * 11 * 9 * 32 * 64 + 1600 * 64 + 64 * 10
    assert models.count_macs(models.create_model("mlp128")) == 784 * 128 + 128 * 10
