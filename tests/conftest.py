"""Shared fixtures: the real data set, and tiny models trained once per session on a small subset."""
import os

import pytest

os.environ.setdefault("FMNIST_C_CHECK_IMAGES", "1000")  # the session's C exports; test_c_export checks all 10,000

import fmnist  # noqa: F401  (tf_keras before TensorFlow)
from fmnist import data, harness, models, variants
from fmnist.config import RunConfig
from fmnist.export import list_formats
from fmnist.jobs import collect_jobs
from fmnist.runtimes import list_runtimes
from fmnist.storage import model_dir

SUBSET = 4000      # training images for the quick models: enough to beat chance in one epoch
MODELS = models.list_models()     # every registered model is exported to every format
VARIANT_MODELS = ["mlp128", "cnn32_64"]   # an MLP and the CNN also get every variant
VARIANTS = [variants.get_variant(v) for v in ("pruned-50", "qat", "pruned-50-qat")]


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
        return train.train(name, session_exports, dataset, RunConfig(epochs=1, subset=SUBSET), progress=False)
    return get


@pytest.fixture(scope="session")
def exported(dataset, session_exports):
    """Every model exported to every format, and VARIANT_MODELS' VARIANTS too, once per session:
    (manifests by (model, variant, format), failures, skipped)."""
    from fmnist import export
    from fmnist.schedule import export_all
    formats = [export.get_format(f) for f in export.list_formats()]
    results = [export_all(MODELS if not chosen else VARIANT_MODELS, formats, chosen, session_exports, dataset,
                          RunConfig(finetune_epochs=1, epochs=1, subset=SUBSET), progress=False) for chosen in ([], VARIANTS)]
    manifests = {(m["model"], m["variant"], m["format"]): m for r in results for m in r[0]}
    return manifests, [f for r in results for f in r[1]], [s for r in results for s in r[2]]


QUICK = harness.Settings(warmup_calls=2, min_calls=5, min_seconds=0.001, max_calls=50, throughput_batch=32,
                         throughput_seconds=0.001, test_images=500, reuse_figures=False)
CONTRACT = ["model", "source", "variant", "format", "runtime", "device", "provider", "threads", "status",
            "accuracy", "accuracy_delta", "agreement", "max_abs_diff", "flagged", "latency_us", "load_ms",
            "first_inference_ms", "throughput_ips", "throughput_batch", "size_bytes", "size_gzip_bytes", "params",
            "macs", "peak_rss_mb", "artifact_sha256"]


@pytest.fixture(scope="session")
def measured(exported, session_exports):
    """Every runtime on the base and QAT mlp128/cnn32_64 artifacts, measured in this process."""
    from fmnist.harness import finish_rows
    folders = [model_dir(session_exports, m, v) for m in ("mlp128", "cnn32_64") for v in ("base", "qat")]
    jobs = collect_jobs(folders, ["keras", *list_formats()], list_runtimes())
    rows = finish_rows([r for name in list_runtimes()
                        for r in harness.run_runtime(name, jobs.get(name, []), None, QUICK, progress=False)])
    return {name: [r for r in rows if r["runtime"] == name] for name in list_runtimes()}
