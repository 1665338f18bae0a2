"""Benchmark on a device: pack a bundle, run it where TensorFlow is not installed, merge it back."""
import json
import subprocess
import venv
from importlib import metadata

import pytest

from fmnist import bundle, cli, harness, report
from fmnist.jobs import collect_jobs
from fmnist.storage import model_dir

DEVICE_PACKAGES = [f"{name}=={metadata.version(name)}" for name in ("numpy", "ai-edge-litert", "onnxruntime")]


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory):
    """A venv holding only numpy, ai-edge-litert and onnxruntime: a device's Python."""
    where = tmp_path_factory.mktemp("device-venv")
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           *DEVICE_PACKAGES], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True).returncode != 0
    return python


@pytest.fixture(scope="session")
def packed(exported, session_exports, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "fmnist-bundle.pyz"
    code = cli.bench_main(["pack", "--model", "mlp128", "cnn32_64", "--exports", str(session_exports),
                           "--out", str(out)])
    assert code == 0 and out.is_file()
    return out


@pytest.fixture(scope="session")
def device_run(packed, bare_python, tmp_path_factory):
    out = tmp_path_factory.mktemp("device") / "device.json"
    done = subprocess.run([str(bare_python), str(packed), "--out", str(out), "--label", "test-device",
                           "--min-seconds", "0.01", "--quiet"], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), out


def test_the_bundle_holds_the_chosen_artifacts_and_no_host_only_code(packed):
    import zipfile
    names = zipfile.ZipFile(packed).namelist()
    manifests = sorted(n for n in names if n.endswith("/manifest.json"))
    assert manifests == sorted(f"bundle/exports/{m}/{f}/manifest.json" for m in ("mlp128", "cnn32_64")
                               for f in ("tflite", "tflite-int8", "onnx", "onnx-int8"))
    assert "bundle/test_set.npz" in names and "__main__.py" in names and "fmnist/runner.py" in names
    assert not {f"fmnist/{m}" for m in bundle.HOST_ONLY} & set(names)
    assert not [n for n in names if n.endswith(".h5")]  # no weights: a device runs artifacts only


def test_the_runner_measures_every_artifact_without_tensorflow(device_run, exported, session_exports, dataset):
    result, _ = device_run
    assert result["tensorflow_imported"] is False and result["machine"]["label"] == "test-device"
    ok = [r for r in result["records"] if r["status"] == "ok"]
    assert {(r["model"], r["format"], r["runtime"]) for r in ok} == {
        (m, f, "litert" if f.startswith("tflite") else "onnxruntime")
        for m in ("mlp128", "cnn32_64") for f in ("tflite", "tflite-int8", "onnx", "onnx-int8")}
    unavailable = {r["runtime"]: r["error"] for r in result["records"] if r["status"] == "unavailable"}
    assert "tflite_micro is not installed" in unavailable["tflm"]
    # the same harness on the host gives the same accuracy on the same file
    jobs = collect_jobs([model_dir(session_exports, "mlp128")], ["tflite-int8"], ["litert"])["litert"]
    host = harness.run_runtime("litert", jobs, None, harness.Settings(min_seconds=0.01), progress=False)[0]
    device = next(r for r in ok if (r["model"], r["format"]) == ("mlp128", "tflite-int8"))
    assert device["accuracy"] == host["accuracy"] and device["agreement"] == host["agreement"]
    assert device["latency_us"]["n"] >= 25 and device["single_thread"]["throughput_ips"] > 0


def test_merge_adds_the_device_once_and_refuses_altered_or_foreign_files(device_run, measured, session_exports,
                                                                         tmp_path, capsys):
    result, path = device_run
    host = [r for rows in measured.values() for r in rows]
    document = {"schema": 1, "environment": {"cpu": "x", "cores": 2, "machine": "x86_64", "python": "3.11",
                                             "versions": {}, "seed": 42, "date": "today"},
                "settings": harness.Settings().__dict__, "not_made": [], "records": host}
    report.write_benchmark(document, tmp_path, session_exports)
    argv = ["merge", str(path), "--results", str(tmp_path), "--exports", str(session_exports)]
    assert cli.bench_main(argv) == 0 and cli.bench_main(argv) == 0
    merged = json.loads((tmp_path / "benchmark.json").read_text())
    assert sum(r.get("machine") == "test-device" for r in merged["records"]) == len(result["records"])
    assert "test-device" in merged["machines"]
    devices = (tmp_path / "devices.md").read_text()
    assert "| mlp128 " in devices and "test-device" in devices
    assert (tmp_path / "plots" / "devices.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps({**result, "records": result["records"][:-1]}))
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({**result, "bundle": {**result["bundle"], "version": 99}}))
    for bad, message in ((altered, "do not match their SHA-256"), (foreign, "made by bundle version 99")):
        assert cli.bench_main(["merge", str(bad), "--results", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err


def test_a_machine_is_named_with_its_vector_extensions(tmp_path):
    """Two CPUs with one name can differ tenfold in int8 speed: figures measured on one must not be
    reused on the other, and results must say which it was."""
    from fmnist import environment, report
    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni\n")
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp crc32\n")
    assert environment.cpu_features(str(x86)) == ["avx2", "fma", "avx512f", "avx512_vnni"]
    assert environment.cpu_features(str(arm)) == ["asimd", "asimddp"]
    assert environment.cpu_features(str(tmp_path / "missing")) == []
    here = environment.machine("host")
    assert here["cpu_features"] == environment.cpu_features()
    assert f"{', '.join(here['cpu_features'])})" in report.environment_lines(environment.describe())[0]
