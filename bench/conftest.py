"""pytest-benchmark regression suite over the exported artifacts (run `fmnist-export` first; the
`regression` tox env does). Parametrized from the manifests on disk, so every artifact is covered.

`--baseline-save` keeps every timed artifact (content-addressed, under --baseline-dir) beside
pytest-benchmark's saved data; `--baseline-compare` times each artifact against its kept baseline in
interleaved rounds and fails on a confident slowdown (fmnist.regression), whatever the machine's
drift between the two runs."""
import json
import shutil
import time
from pathlib import Path

import pytest

import fmnist  # noqa: F401  (tf_keras before TensorFlow)
from fmnist import storage
from fmnist.jobs import NATIVE_FORMAT, collect_jobs
from fmnist.export import list_formats
from fmnist.runtimes import get_runtime, list_runtimes

EXPORTS = storage.DEFAULT_EXPORTS


def pytest_addoption(parser):
    group = parser.getgroup("fmnist regression")
    group.addoption("--baseline-save", action="store_true",
                    help="keep every timed artifact as the baseline (content-addressed, in --baseline-dir)")
    group.addoption("--baseline-compare", action="store_true",
                    help="time every artifact against its kept baseline, interleaved; fail on a confident slowdown")
    group.addoption("--baseline-dir", default=".benchmarks/artifacts", help="where baseline artifacts are kept")
    group.addoption("--inject-slowdown", metavar="RUNTIME=FACTOR", default=None,
                    help="test-only: make RUNTIME's call FACTOR times slower (shows the check failing)")


def pytest_sessionstart(session):
    """--baseline-compare with no baseline kept fails at once: a gate that skips every test would
    always pass."""
    config = session.config
    folder = Path(config.getoption("--baseline-dir"))
    if config.getoption("--baseline-compare") and not Baseline(folder).index:
        pytest.exit(f"--baseline-compare: no baseline kept in {folder}; save one first on the same artifacts "
                    f"with `tox -e regression -- --baseline-save`", returncode=1)


def job_id(job) -> str:
    return f"{job.meta['model']}-{job.meta['variant']}-{job.format}-{job.runtime}"


class Baseline:
    """Baseline artifacts kept by content: <dir>/<sha256>/<the artifact's files>, and index.json
    mapping each job to the artifact it timed."""

    def __init__(self, folder: Path):
        self.folder, self.index_path = Path(folder), Path(folder) / "index.json"
        self.index = json.loads(self.index_path.read_text()) if self.index_path.is_file() else {}

    def _files(self, job) -> list[str]:
        if job.format == NATIVE_FORMAT:  # the trained model: weights, record, reference probabilities
            return [storage.MODEL_FILE, storage.RECORD_FILE, storage.PROBABILITIES_FILE]
        # the manifest too: a runtime may read what the file does not say (OpenVINO: an integer
        # input's scale and zero point)
        return [*(job.files or {job.artifact: None}), storage.MANIFEST_FILE]

    def save(self, job) -> None:
        where = self.folder / job.sha256
        if not where.is_dir():
            from fmnist.atomic import atomic_dir
            with atomic_dir(where) as tmp:
                for name in self._files(job):
                    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                    source = Path(job.folder) / name
                    (shutil.copytree if source.is_dir() else shutil.copy2)(source, tmp / name)
        self.index[job_id(job)] = {"sha256": job.sha256, "artifact": job.artifact, "format": job.format}
        from fmnist.atomic import write_json
        write_json(self.index_path, self.index)

    def load(self, job):
        """A session of the baseline's artifact of this job, or None when none was kept."""
        kept = self.index.get(job_id(job))
        if not kept or not (self.folder / kept["sha256"]).is_dir():
            return None
        path = storage.verified_path(self.folder / kept["sha256"], kept["artifact"], kept["sha256"])
        return get_runtime(job.runtime).load(path, kept["format"], threads=1)


@pytest.fixture(scope="session")
def baseline(request):
    return Baseline(Path(request.config.getoption("--baseline-dir")))


def slowed(call, factor: float):
    """`call`, made `factor` times slower by spinning after it (the injected regression)."""
    clock = time.perf_counter_ns

    def slow_call():
        start = clock()
        call()
        until = start + (clock() - start) * factor
        while clock() < until:
            pass
    return slow_call


@pytest.fixture
def injected(request):
    """(runtime, factor) of --inject-slowdown, or None."""
    option = request.config.getoption("--inject-slowdown")
    if not option:
        return None
    runtime, factor = option.split("=")
    return runtime, float(factor)


def _jobs():
    runtimes = [r for r in list_runtimes() if not get_runtime(r).unavailable() and get_runtime(r).kind == "measured"]
    jobs = collect_jobs(storage.trained_folders(EXPORTS), [NATIVE_FORMAT, *list_formats()], runtimes)
    return [job for name in runtimes for job in jobs.get(name, [])]


def pytest_generate_tests(metafunc):
    """`job`: every artifact on every runtime that runs it (an estimate runs nothing); `timed_job`:
    the same without microcontroller runtimes (their host latency is not an MCU's: nothing to
    regress); `tflite_job`: each base
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
