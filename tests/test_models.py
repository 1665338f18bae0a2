"""Every registered model, tested the same way (timm style): a new registration needs no new test."""
import numpy as np
import pytest

from fmnist import models
from fmnist.storage import read_record


def implied_params(layers) -> int:
    """Parameter count worked out from the layer descriptions alone, independently of Keras."""
    shape, total = models.INPUT_SHAPE, 0
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
        elif isinstance(layer, models.Dropout):
            pass
        elif isinstance(layer, models.MaxPool):
            shape = (shape[0] // layer.size, shape[1] // layer.size, shape[2])
        else:
            raise AssertionError(f"test does not know layer {layer!r}")
    assert shape == (models.NUM_CLASSES,), "the network must end in the 10 class outputs"
    return total


@pytest.mark.parametrize("name", models.list_models())
def test_builds_with_the_parameter_count_its_layers_imply(name):
    model = models.create_model(name)
    assert model.count_params() == implied_params(models.get_spec(name).layers)
    assert tuple(model.input_shape) == (None, *models.INPUT_SHAPE)
    assert tuple(model.output_shape) == (None, models.NUM_CLASSES)


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
