"""Shared fixtures: the real data set, and tiny models trained once per session on a small subset."""
import pytest

import fmnist  # noqa: F401  (tf_keras before TensorFlow)
from fmnist import data

SUBSET = 4000      # training images for the quick models: enough to beat chance in one epoch
MODELS = ["mlp128", "cnn32_64"]   # an MLP and the CNN for export and benchmark tests
VARIANTS = ["pruned-50", "qat", "pruned-50-qat"]


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


@pytest.fixture(scope="session")
def exported(dataset, session_exports):
    """MODELS and their VARIANTS exported to every format once per session: (manifests, failures, skipped)."""
    from fmnist import export
    from fmnist.export.pipeline import export_all
    formats = [export.get_format(f) for f in export.list_formats()]
    manifests, failures, skipped = export_all(MODELS, formats, VARIANTS, session_exports, dataset,
                                              finetune_epochs=1, epochs=1, subset=SUBSET, progress=False)
    return {(m["model"], m["variant"], m["format"]): m for m in manifests}, failures, skipped
