"""pytest-benchmark regression suite over the exported artifacts (run `fmnist-export` first; the
`regression` tox env does). Parametrized from the manifests on disk, so every artifact is covered."""
from pathlib import Path

import pytest

import fmnist  # noqa: F401  (tf_keras before TensorFlow)
from fmnist import storage
from fmnist.jobs import NATIVE_FORMAT, collect_jobs
from fmnist.export import list_formats
from fmnist.runtimes import get_runtime, list_runtimes

EXPORTS = storage.DEFAULT_EXPORTS


def _jobs():
    runtimes = [r for r in list_runtimes() if not get_runtime(r).unavailable()]
    jobs = collect_jobs(storage.trained_folders(EXPORTS), [NATIVE_FORMAT, *list_formats()], runtimes)
    return [job for name in runtimes for job in jobs.get(name, [])]


def pytest_generate_tests(metafunc):
    """`job`: every artifact on every runtime; `timed_job`: the same without microcontroller
    runtimes (their host latency is not an MCU's: nothing to regress); `tflite_job`: each base
    model's float TFLite file. With no artifacts the tests get None and fail loudly, rather than
    pass by running nothing."""
    for name, keep in (("job", lambda j: True),
                       ("timed_job", lambda j: not get_runtime(j.runtime).microcontroller),
                       ("tflite_job", lambda j: j.format == "tflite" and j.meta["variant"] == "base")):
        if name in metafunc.fixturenames:
            jobs = [j for j in _jobs() if keep(j)]
            ids = [f"{j.meta['model']}-{j.meta['variant']}-{j.format}-{j.runtime}" for j in jobs]
            metafunc.parametrize(name, jobs or [None], ids=ids or ["no-artifacts"])


@pytest.fixture(scope="session")
def test_set():
    from fmnist import data
    ds = data.load()
    return data.normalise(ds.test_images), ds.test_labels


def require(job):
    if job is None:
        pytest.fail(f"no exported artifacts under {EXPORTS}/: run `fmnist-export --format all --qat --prune 0.5`")
    return job


def load(job, threads=1):
    require(job)
    path = storage.verified_path(Path(job.folder), job.artifact, job.sha256)
    return get_runtime(job.runtime).load(path, job.format, threads=threads)
