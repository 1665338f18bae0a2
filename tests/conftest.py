"""Shared fixtures: the real data set, and tiny models trained once per session on a small subset."""
import pytest

import fmnist  # noqa: F401  (tf_keras before TensorFlow)
from fmnist import data

SUBSET = 4000      # training images for the quick models: enough to beat chance in one epoch


@pytest.fixture(scope="session")
def dataset():
    return data.load()


@pytest.fixture(scope="session")
def session_exports(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def trained(dataset, session_exports):
    """trained(name) -> model folder: one epoch on SUBSET images, trained once per session."""
    from fmnist import train

    def get(name):
        return train.train(name, session_exports, dataset, epochs=1, subset=SUBSET, progress=False)
    return get
