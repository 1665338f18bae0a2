"""The pipeline on a Dask cluster over loopback: a scheduler, a training worker from this
environment, and two device workers (labels a and b) from a TensorFlow-free venv built here
from the packages already installed (no network), one run with its faults on purpose (the training
worker killed in the middle of a job, a device worker stopped); TLS; refusals; verdict reuse."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from pathlib import Path

import psutil
import pytest
from packaging.requirements import Requirement

from fmnist.lock import LOCK_FILE
from fmnist.resultsdir import MARKER

DEVICE_PACKAGES = ["numpy", "ai-edge-litert", "onnxruntime", "distributed"]  # README's device install
SMALL = ["--epochs", "1", "--subset", "1000", "--no-qat", "--no-prune", "--format", "keras", "tflite", "tflite-int8",
         "onnx", "--runtime", "keras", "litert", "onnxruntime", "--min-seconds", "0.01", "--quiet"]


def _closure(names: list[str]) -> dict[str, metadata.Distribution]:
    """These distributions and everything they require (extras aside), as installed here."""
    found, todo = {}, list(names)
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def tf_free_venv(where: Path) -> Path:
    """A venv holding only the device packages and what they need, linked from this environment's
    site-packages: its python is a device's. Returns that python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    dists = _closure(DEVICE_PACKAGES)
    assert "tensorflow" not in dists and "tf-keras" not in dists
    here = Path(sysconfig.get_paths()["purelib"]).resolve()
    for dist in dists.values():
        for file in dist.files or []:
            top = file.parts[0]
            source = Path(dist.locate_file(top)).resolve()
            if top != ".." and source.parent == here and not (site / top).exists():
                (site / top).symlink_to(source)
    return python


@pytest.fixture(scope="module")
def device_python(tmp_path_factory):
    python = tf_free_venv(tmp_path_factory.mktemp("device-venv"))
    assert subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True).returncode != 0
    subprocess.run([str(python), "-c", "import numpy, ai_edge_litert, onnxruntime, distributed"], check=True)
    return python


class Cluster:
    """A scheduler and workers on loopback, each a process of its own."""

    def __init__(self, where: Path, device_python: Path):
        self.file, self.processes = where / "scheduler.json", {}
        self._start("scheduler", sys.executable, "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                    "--port", "0", "--no-dashboard", "--scheduler-file", str(self.file))
        deadline = time.monotonic() + 60
        while not self.file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        self._start("trainer", sys.executable, "distributed.cli.dask_worker", "--nthreads", "1",
                    "--resources", "fmnist=1", "--name", "trainer")
        for label in ("a", "b"):
            self._start(f"device-{label}", str(device_python), "distributed.cli.dask_worker", "--nthreads", "1",
                        "--no-nanny", "--resources", f"device-{label}=1", "--name", f"device-{label}")
        from distributed import Client
        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(3, timeout=60)

    def _start(self, name, python, module, *args):
        worker = () if name == "scheduler" else ("--scheduler-file", str(self.file), "--no-dashboard")
        self.processes[name] = subprocess.Popen([python, "-m", module, *args, *worker],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def trainer_worker(self) -> psutil.Process | None:
        """The training worker's process (the nanny's child), once it runs."""
        children = [c for c in psutil.Process(self.processes["trainer"].pid).children()
                    if "spawn_main" in " ".join(c.cmdline())]  # not multiprocessing's resource tracker
        return children[0] if children else None

    def close(self):
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=5)  # a nanny waits on its worker's shutdown: nothing here to keep
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def cluster(tmp_path, device_python):
    running = Cluster(tmp_path, device_python)
    yield running
    running.close()


def _bench(cluster, tmp_path, *extra) -> subprocess.Popen:
    command = [sys.executable, "-c", "import sys; from fmnist.cli import bench_main; sys.exit(bench_main())",
               "--cluster", cluster.address, "--model", "mlp4x2", "micro_cnn", *SMALL, *extra,
               "--exports", str(tmp_path / "exports"), "--results", str(tmp_path / "results")]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _leftovers(*folders: Path) -> list[Path]:
    """Hidden files a run left, but the tool's own marks (the results marker, the exports lock)."""
    return [p for folder in folders for p in folder.rglob(".*") if p.name not in (MARKER, LOCK_FILE)]


def test_a_cluster_run_trains_on_its_worker_survives_its_death_and_measures_on_devices(cluster, tmp_path):
    """One run, its faults on purpose: the training worker is killed while it trains (TensorFlow
    loaded) and device b is stopped; the job is taken again by the worker the nanny restarts, device
    a measures without TensorFlow, b's rows say it left, and every host row is measured."""
    run = _bench(cluster, tmp_path, "--devices", "a", "b")
    killed, deadline = None, time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and run.poll() is None:
        worker = cluster.trainer_worker()
        if worker and worker.memory_info().rss > 400e6:  # TensorFlow imported: a training job is running
            cluster.processes["device-b"].terminate()
            worker.kill()
            killed = worker.pid
        time.sleep(0.2)
    assert killed, "the training worker never started a job"
    out, err = run.communicate(timeout=900)
    assert run.returncode == 0, err
    assert "Traceback" not in err
    assert cluster.trainer_worker().pid != killed  # the nanny started a new worker, which took the job again
    document = json.loads((tmp_path / "results" / "benchmark.json").read_text())
    training = [j for j in document["jobs"] if j["job"].startswith("train+export") and j["status"] == "ok"]
    assert {j["job"] for j in training} == {"train+export mlp4x2", "train+export micro_cnn"}
    assert {j["worker"] for j in training} == {"trainer"}
    host = [r for r in document["records"] if r["machine"] == "host"]
    assert host and all(r["status"] == "ok" for r in host)
    assert {r["model"] for r in host} == {"mlp4x2", "micro_cnn"}
    a = json.loads((tmp_path / "results" / "devices" / "a.json").read_text())
    assert a["tensorflow_imported"] is False
    ok = [r for r in a["records"] if r["status"] == "ok"]
    assert {(r["model"], r["runtime"]) for r in ok} >= {("mlp4x2", "litert"), ("micro_cnn", "onnxruntime")}
    b = json.loads((tmp_path / "results" / "devices" / "b.json").read_text())
    assert b["records"] and all(r["status"] == "unavailable" and "worker left" in r["error"] for r in b["records"])
    assert re.search(r"\ba\b", (tmp_path / "results" / "devices.md").read_text())
    assert not _leftovers(tmp_path / "exports", tmp_path / "results")


def test_an_unreachable_or_insecure_cluster_is_one_line_and_exit_1(tmp_path):
    for address, message in (("tcp://127.0.0.1:9", "cannot reach the cluster"),
                             ("tcp://192.0.2.1:8786", "refusing a cluster beyond this machine without TLS")):
        done = subprocess.run([sys.executable, "-c", "import sys; from fmnist.cli import bench_main; sys.exit(bench_main())",
                               "--cluster", address, "--model", "mlp4x2", "--exports", str(tmp_path / "exports"),
                               "--results", str(tmp_path / "results"), "--quiet"],
                              capture_output=True, text=True, timeout=120, env={**os.environ})
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().count("\n") == 0 and message in done.stderr
        assert not (tmp_path / "exports" / "mlp4x2").exists()


def test_a_cluster_over_tls_runs_with_distributed_security_settings(tmp_path):
    """README's TLS commands on loopback: a scheduler and a training worker with a certificate, and
    fmnist-bench given the same through distributed's settings (environment variables)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tls = ["--tls-ca-file", str(cert), "--tls-cert", str(cert), "--tls-key", str(key)]
    file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--protocol", "tls",
                                   "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(file),
                                   *tls], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        assert address.startswith("tls://")
        processes.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                           str(file), "--nthreads", "1", "--resources", "fmnist=1", "--no-dashboard",
                                           *tls], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        env = {**os.environ, "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(cert),
               "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(cert), "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(key)}
        done = subprocess.run([sys.executable, "-c", "import sys; from fmnist.cli import bench_main; sys.exit(bench_main())",
                               "--cluster", address, "--model", "mlp4x2", "--epochs", "1", "--subset", "500", "--no-qat",
                               "--no-prune", "--format", "tflite", "--runtime", "litert", "--min-seconds", "0.01",
                               "--quiet", "--exports", str(tmp_path / "exports"), "--results", str(tmp_path / "results")],
                              capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr
        document = json.loads((tmp_path / "results" / "benchmark.json").read_text())
        assert [r["status"] for r in document["records"]] == ["ok"]
        assert any(j["job"] == "train+export mlp4x2" and j["worker"] != "this process" for j in document["jobs"])
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def test_an_unchanged_model_is_not_sent_to_a_worker_again(tmp_path, dataset):
    """A model's training-and-export verdict is kept by content (its folders' files, what it was
    asked, the code): a warm run sends it to no worker; a changed file sends it again."""
    from fmnist import export, schedule, storage
    from fmnist.config import RunConfig
    from fmnist.plan import Plan
    plan = Plan(["mlp4x2"], [export.get_format("tflite")], [], [], [], tmp_path, RunConfig(epochs=1, subset=500))
    first, _ = schedule.execute(plan, dataset, progress=False)
    second, _ = schedule.execute(plan, dataset, progress=False)
    assert [j["status"] for j in first.jobs] == ["ok"] and [j["status"] for j in second.jobs] == ["reused"]
    assert second.manifests == first.manifests
    artifact = tmp_path / "mlp4x2" / "tflite" / first.manifests[0]["artifact"]
    artifact.write_bytes(b"not a model")
    third, _ = schedule.execute(plan, dataset, progress=False)
    assert [j["status"] for j in third.jobs] == ["ok"]
    manifest = third.manifests[0]
    assert artifact.read_bytes() != b"not a model"  # exported again, and the file is the one its manifest describes
    storage.verified_path(artifact.parent, manifest["artifact"], manifest["sha256"], manifest["files"])


def test_a_cluster_without_a_training_worker_is_one_line_and_one_that_loses_it_gives_error_rows(tmp_path):
    """The scheduler alone: no worker trains, one line, exit 1. Then a training worker with no nanny,
    killed while it trains: no worker offers `fmnist` any more, so the model's job is given up after
    cluster.LEFT_AFTER_SECONDS and the run says so in its rows, one per runtime asked for."""
    file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        command = [sys.executable, "-c", "import sys; from fmnist.cli import bench_main; sys.exit(bench_main())",
                   "--cluster", json.loads(file.read_text())["address"], "--model", "mlp4x2", *SMALL,
                   "--exports", str(tmp_path / "exports"), "--results", str(tmp_path / "results")]
        alone = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert alone.returncode == 1 and alone.stderr.strip().count("\n") == 0, alone.stderr
        assert "no worker in the cluster trains" in alone.stderr
        processes.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                           str(file), "--nthreads", "1", "--no-nanny", "--resources", "fmnist=1",
                                           "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        worker, deadline = psutil.Process(processes[-1].pid), time.monotonic() + 300
        while worker.memory_info().rss < 400e6 and time.monotonic() < deadline:  # until TensorFlow is loaded
            time.sleep(0.2)
        worker.kill()
        out, err = run.communicate(timeout=600)
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)
    assert "Traceback" not in err, err
    assert run.returncode == 1 and "rows could not be produced" in err, (run.returncode, err)  # the rows kept
    assert (tmp_path / "results" / "benchmark.json").is_file(), (run.returncode, err)
    records = json.loads((tmp_path / "results" / "benchmark.json").read_text())["records"]
    assert {r["runtime"] for r in records} == {"keras", "litert", "onnxruntime"}
    assert all(r["status"] == "error" and "training and export of mlp4x2 did not finish" in r["error"] and
               "worker left" in r["error"] for r in records), records


def test_the_default_local_cluster_refuses_a_client_without_this_runs_credentials():
    from distributed import Client
    from distributed.security import Security

    from fmnist.cluster import connect
    with connect(None, workers=1) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:") and client.submit(lambda: 6 * 7).result() == 42
        port = client.scheduler_info()["services"].get("dashboard")
        if port:  # Dask always listens for HTTP: on loopback, and nothing answers there
            import urllib.error
            import urllib.request
            for route in ("/health", "/status", "/metrics", "/info/main/workers.html"):
                with pytest.raises(urllib.error.HTTPError):
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=5)
        for attempt in (lambda: Client(address, timeout=3),
                        lambda: Client(address, timeout=3, security=Security.temporary()),
                        lambda: Client(address.replace("tls://", "tcp://"), timeout=3)):
            with pytest.raises(Exception):  # noqa: B017  (refused by TLS, whichever way it says so)
                attempt().run(lambda: __import__("os").getuid())
        workers = list(client.scheduler_info()["workers"])
        assert workers and all(w.startswith("tls://127.0.0.1:") for w in workers)
