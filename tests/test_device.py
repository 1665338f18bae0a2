"""Benchmark on a device: pack a bundle, run it where TensorFlow is not installed, merge it back."""
import json
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest

from fmnist import bundle, cli, harness, report
from fmnist.jobs import collect_jobs
from fmnist.storage import model_dir

DEVICE_PACKAGES = ("numpy", "ai-edge-litert", "onnxruntime", "openvino")  # tflite-micro left out: a runtime a
#                                                                          device lacks


def installed_closure(names) -> dict:
    """The installed distributions `names` need, theirs included (extras and other platforms' left out)."""
    from packaging.requirements import Requirement
    found, todo = {}, list(names)
    while todo:
        try:
            dist = metadata.distribution(todo.pop())
        except metadata.PackageNotFoundError:
            continue
        if dist.metadata["Name"].lower() in found:
            continue
        found[dist.metadata["Name"].lower()] = dist
        todo += [r.name for r in map(Requirement, dist.requires or []) if not r.marker or r.marker.evaluate({"extra": ""})]
    return found


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory):
    """A device's Python: a venv holding only numpy, ai-edge-litert, onnxruntime and openvino (and
    what they need), linked from this environment's installed packages: no network, no TensorFlow."""
    where = tmp_path_factory.mktemp("device-venv")
    venv.create(where, with_pip=False)
    python = where / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    dists = installed_closure(DEVICE_PACKAGES)
    assert "tensorflow" not in dists
    for dist in dists.values():
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}:
            if not (site / top).exists():
                (site / top).symlink_to(dist.locate_file(top))
    assert subprocess.run([str(python), "-c", "import numpy, onnxruntime, openvino, ai_edge_litert.interpreter"]
                          ).returncode == 0
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
    assert not [n for n in names if n.startswith(tuple(f"fmnist/{m}" for m in bundle.HOST_ONLY))]
    assert "fmnist/harness.py" in names and not [n for n in names if n.startswith("fmnist/report/")]
    assert not [n for n in names if n.endswith(".h5")]  # no weights: a device runs artifacts only


def test_the_runner_measures_every_artifact_without_tensorflow(device_run, exported, session_exports, dataset):
    result, _ = device_run
    assert result["tensorflow_imported"] is False and result["machine"]["label"] == "test-device"
    ok = [r for r in result["records"] if r["status"] == "ok"]
    assert {(r["model"], r["format"], r["runtime"]) for r in ok} == {
        (m, f, runtime) for m in ("mlp128", "cnn32_64") for f in ("tflite", "tflite-int8", "onnx", "onnx-int8")
        for runtime in ("litert" if f.startswith("tflite") else "onnxruntime", "openvino")}
    precision = {(r["model"], r["format"]): r["openvino"]["compute_precision"] for r in ok if r["runtime"] == "openvino"}
    assert all(p == "float32" for (_, f), p in precision.items() if not f.endswith("int8"))
    assert all(p == "int8" or p.startswith("mixed: ") and "int8" in p  # an AMX Xeon keeps some convs in float32
               for (_, f), p in precision.items() if f.endswith("int8"))
    unavailable = {r["runtime"]: r["error"] for r in result["records"] if r["status"] == "unavailable"}
    assert "tflite_micro is not installed" in unavailable["tflm"]
    # the same harness on the host gives the same accuracy on the same file
    jobs = collect_jobs([model_dir(session_exports, "mlp128")], ["tflite-int8"], ["litert"])["litert"]
    host = harness.run_runtime("litert", jobs, None, harness.Settings(min_seconds=0.01), progress=False)[0]
    device = next(r for r in ok if (r["model"], r["format"]) == ("mlp128", "tflite-int8"))
    assert device["accuracy"] == host["accuracy"] and device["agreement"] == host["agreement"]
    assert device["latency_us"]["n"] >= 25 and device["single_thread"]["throughput_ips"] > 0


def _host_results(measured, folder):
    host = [r for rows in measured.values() for r in rows]
    document = {"schema": 1, "environment": {"cpu": "x", "cores": 2, "machine": "x86_64", "python": "3.11",
                                             "versions": {}, "seed": 42, "date": "today"},
                "machines": {"host": {"label": "host", "cpu": "x", "architecture": "x86_64", "cores": 2, "os": "x",
                                      "python": "3.11"}},
                "settings": harness.Settings().__dict__, "not_made": [], "records": host}
    report.publish_benchmark(document, folder)


def test_merge_adds_the_device_once_and_refuses_altered_or_foreign_files(device_run, measured, session_exports,
                                                                         tmp_path, capsys):
    result, path = device_run
    _host_results(measured, tmp_path)
    argv = ["merge", str(path), "--results", str(tmp_path), "--exports", str(session_exports)]
    assert cli.bench_main(argv) == 0 and cli.bench_main(argv) == 0
    merged = json.loads((tmp_path / "benchmark.json").read_text())
    assert sum(r.get("machine") == "test-device" for r in merged["records"]) == len(result["records"])
    assert "test-device" in merged["machines"]
    csv_lines = (tmp_path / "benchmark.csv").read_text().strip().count("\n")
    assert csv_lines == len(merged["records"])  # the CSV holds every row the JSON holds, device rows too
    devices = (tmp_path / "devices.md").read_text()
    assert "| mlp128 " in devices and "test-device" in devices and "as reported by that machine" in devices
    assert (tmp_path / "plots" / "devices.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    records = result["records"]
    ok = next(i for i, r in enumerate(records) if r["status"] == "ok")

    def edited(i, **changes):
        rows = [dict(r) for r in records]
        rows[i].update(changes)
        return {**result, "records": rows, "records_sha256": bundle.records_digest(rows)}
    cases = {
        "altered": ({**result, "records": records[:-1]}, "do not match their SHA-256"),
        "foreign": ({**result, "bundle": {**result["bundle"], "version": 99}}, "made by bundle version 99"),
        "escaping": ({**result, "machine": {**result["machine"], "label": "../../../p1/pwned"}}, "label"),
        "host": ({**result, "machine": {**result["machine"], "label": "host"}}, "is the host's own label"),
        "other file": (edited(ok, artifact_sha256="1" * 64), "not an artifact this host packed"),
        "nan": (edited(ok, accuracy=float("nan")), "accuracy is nan, not a finite figure"),
        "negative": (edited(ok, latency_us={**records[ok]["latency_us"], "p50": -3}), "latency_us.p50 -3"),
        "new field": (edited(ok, rogue=1), "unknown field 'rogue'"),
        "relabelled row": (edited(ok, machine="other"), "is not the file's"),
    }
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for name, (bad, message) in cases.items():
        (tmp_path.parent / "bad.json").write_text(json.dumps(bad))
        code = cli.bench_main(["merge", str(tmp_path.parent / "bad.json"), "--results", str(tmp_path),
                               "--exports", str(session_exports)])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and message in err, (name, err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, inside results/ or out
    assert not (tmp_path.parent.parent / "p1").exists()


@pytest.mark.parametrize("argv, message", [
    (["--label", ""], "a label is a plain name"), (["--label", "../x"], "a label is a plain name"),
    (["--label", "host"], "is the host's own label"), (["--min-seconds", "nan"], "must be between"),
    (["--threads", "-3"], "must be between 1 and 1,024"), (["--out", "/proc/r.json"], "cannot write in /proc"),
    (["--out", "."], "is a folder"),
])
def test_the_runner_checks_every_argument_before_any_work(packed, tmp_path, argv, message):
    args = {"--out": str(tmp_path / "r.json"), "--label": "dev", **dict(zip(argv[::2], argv[1::2]))}
    done = subprocess.run([sys.executable, str(packed), *[x for kv in args.items() for x in kv], "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "r.json").exists()


def test_a_damaged_bundle_is_one_line(packed, tmp_path):
    """A flipped byte inside a member is caught by the bundle's own start (one line, exit 1). A cut
    file is no zip any more: Python itself refuses it before any code of ours runs (its own message;
    pack prints the SHA-256 to check a copy against). Neither writes a result."""
    import zipfile
    data = bytearray(packed.read_bytes())
    info = zipfile.ZipFile(packed).getinfo("bundle/test_set.npz")  # a deflated member, in the middle
    data[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0xFF
    flipped, cut = tmp_path / "flipped.pyz", tmp_path / "cut.pyz"
    flipped.write_bytes(bytes(data))
    cut.write_bytes(packed.read_bytes()[:len(data) // 2])
    argv = ["--out", str(tmp_path / "r.json"), "--label", "dev"]
    done = subprocess.run([sys.executable, str(flipped), *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "damaged bundle" in done.stderr, done.stderr
    done = subprocess.run([sys.executable, str(cut), *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert not (tmp_path / "r.json").exists()


def test_a_machine_is_named_with_its_vector_extensions(tmp_path):
    """Two CPUs with one name can differ tenfold in int8 speed: figures measured on one must not be
    reused on the other, and results must say which it was."""
    from fmnist import environment
    from fmnist.report.pages import environment_lines
    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni\n")
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp crc32\n")
    assert environment.cpu_features(str(x86)) == ["avx2", "fma", "avx512f", "avx512_vnni"]
    assert environment.cpu_features(str(arm)) == ["asimd", "asimddp"]
    assert environment.cpu_features(str(tmp_path / "missing")) == []
    env = {**environment.describe(), "cpu_features": environment.cpu_features(str(x86))}
    assert "with avx2, fma, avx512f, avx512_vnni)" in environment_lines(env)[2]
    assert environment.machine("host")["cpu_features"] == environment.cpu_features()
