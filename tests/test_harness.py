"""The benchmark harness on the session's tiny exported models: every runtime, the figures, the writers."""
import dataclasses
import json

import numpy as np
import pytest

from fmnist import harness, metrics, report
from fmnist.jobs import collect_jobs
from fmnist.export import get_format
from fmnist.runtimes import get_runtime, list_runtimes
from fmnist.storage import model_dir

from conftest import CONTRACT, QUICK


@pytest.mark.parametrize("runtime", [r for r in list_runtimes() if not get_runtime(r).unavailable()])
def test_every_available_runtime_runs_every_format_it_supports(measured, runtime):
    records = measured[runtime]
    formats = {r["format"] for r in records}
    assert formats == set(get_runtime(runtime).formats)
    for r in records:
        assert r["status"] == "ok", r["error"]
        # one-epoch models have many near-ties (int8, 16x8 and QAT rows agree 96-100% with Keras);
        # an adapter that garbles inputs or outputs agrees by chance only
        assert 0.3 < r["accuracy"] <= 1 and r["agreement"] >= 0.9
        assert r["latency_us"]["n"] >= QUICK.min_calls and r["latency_us"]["p50"] > 0
        assert r["throughput_ips"] > 0 and r["peak_rss_mb"] > 0


def test_adapters_return_probabilities_of_the_right_shape(exported, session_exports, dataset):
    images = dataset.test_images[:5].astype(np.float32) / 255
    for fmt in ("tflite-int8", "onnx-int8", "savedmodel", "tflite-fp16"):
        folder = model_dir(session_exports, "cnn32_64") / fmt
        manifest = json.loads((folder / "manifest.json").read_text())
        runtime = get_runtime(get_format(fmt).runtime)
        probs = runtime.load(folder / manifest["artifact"], fmt, threads=1).predict(images, batch_size=2)
        assert probs.shape == (5, 10) and probs.dtype == np.float32
        assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1, atol=0.02)


def test_a_graph_on_builtin_kernels_is_split_across_interpreters_with_the_same_outputs(
        exported, session_exports, dataset, monkeypatch):
    """LiteRT runs a 16x8 graph on builtin, single-threaded kernels: its accuracy pass is shared
    between `threads` interpreters. The split must not change a single output."""
    from fmnist.runtimes import litert
    images = dataset.test_images[:101].astype(np.float32) / 255  # odd: the shards differ in size
    path = model_dir(session_exports, "cnn32_64") / "tflite-int16x8" / "model.tflite"
    opened = []
    original = litert.LiteRTSession.__init__
    monkeypatch.setattr(litert.LiteRTSession, "__init__",
                        lambda self, path, threads: (opened.append(threads), original(self, path, threads))[1])
    outputs = {}
    for threads in (1, 2):
        session = litert.LiteRTSession(path, threads)
        session.bind(images[:1])
        assert not session.delegated()
        outputs[threads] = session.predict(images, batch_size=10)
    assert opened == [1, 2, 1]  # with two threads, a second one-thread interpreter took half
    np.testing.assert_array_equal(outputs[1], outputs[2])


def test_gpu_runtimes_are_reported_not_dropped(measured):
    import onnxruntime
    cuda = measured["onnxruntime-cuda"]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert all(r["status"] == "ok" for r in cuda)
    else:
        assert cuda == [{"runtime": "onnxruntime-cuda", "device": "gpu", "status": "unavailable",
                         "error": cuda[0]["error"], "formats": ["onnx", "onnx-int8"]}]
        assert "CUDAExecutionProvider" in cuda[0]["error"]
    import tensorflow as tf
    assert (measured["tensorflow-gpu"][0]["status"] == "unavailable") == (not tf.config.list_physical_devices("GPU"))


def test_parity_counts_disagreements_against_the_source_not_the_labels():
    labels = np.repeat(np.arange(10), 10)
    reference = np.eye(10, dtype=np.float32)[(labels + 1) % 10]   # the source is always wrong
    same_mistakes = reference + 0.001
    figures = metrics.parity(reference, same_mistakes, labels)
    assert figures["agreement"] == 1 and figures["accuracy"] == 0 and figures["accuracy_delta"] == 0
    assert figures["max_abs_diff"] == pytest.approx(0.001, rel=1e-3) and metrics.flags(figures) == []


def test_a_perturbed_artifact_is_flagged():
    labels = np.repeat(np.arange(10), 50)
    reference = np.eye(10, dtype=np.float32)[labels] * 0.9 + 0.01  # always right, 90% confident
    perturbed = reference.copy()
    perturbed[:20] = np.roll(perturbed[:20], 1, axis=1)  # 20 of 500 now wrong: 96% agreement
    figures = metrics.parity(reference, perturbed, labels)
    assert figures["agreement"] == pytest.approx(0.96) and figures["accuracy_delta"] == pytest.approx(-0.04)
    assert figures["max_abs_diff"] == pytest.approx(0.9)
    assert figures["per_class_accuracy_delta"][0] == pytest.approx(-0.4) and figures["per_class_accuracy_delta"][5] == 0
    assert metrics.flags(figures) == ["accuracy -4.00 pts", "agreement 96.00%"]


def test_latency_statistics_for_a_synthetic_timer(monkeypatch):
    durations = iter(range(1000, 101_000, 1000))  # 1..100 µs, in ns
    now = [0]

    def call():
        now[0] += next(durations)
    monkeypatch.setattr(harness.time, "perf_counter_ns", lambda: now[0])
    samples = harness.time_calls(call, min_calls=100, min_seconds=0, max_calls=100)
    assert samples == list(range(1000, 101_000, 1000))
    stats = metrics.latency_stats(samples)
    assert stats == {"p50": 50.5, "p90": pytest.approx(90.1), "p99": pytest.approx(99.01), "mean": 50.5,
                     "std": pytest.approx(28.866, abs=1e-3), "n": 100}


def test_a_tampered_artifact_becomes_an_error_row_and_the_rest_go_on(exported, session_exports):
    folders = [model_dir(session_exports, "mlp128")]
    jobs = collect_jobs(folders, ["tflite", "tflite-int8"], ["litert"])["litert"]
    bad = dataclasses.replace(jobs[0], sha256="0" * 64)
    records = harness.run_runtime("litert", [bad, jobs[1]], None, QUICK, progress=False)
    assert records[0]["status"] == "error" and "does not match its manifest" in records[0]["error"]
    assert records[1]["status"] == "ok"


def test_writers_produce_the_documented_fields(measured, tmp_path, session_exports):
    records = [r for rows in measured.values() for r in rows]
    document = {"schema": 1, "environment": {"cpu": "x", "cores": 2, "machine": "x86_64", "python": "3.11",
                                             "versions": {"numpy": "2"}, "seed": 42, "date": "today"},
                "settings": harness.Settings().__dict__, "not_made": [], "records": records}
    report.write_benchmark(document, tmp_path, session_exports)
    written = json.loads((tmp_path / "benchmark.json").read_text())
    assert written["schema"] == 1
    for record in (r for r in written["records"] if r["status"] == "ok"):
        assert set(CONTRACT) <= set(record)
        assert set(record["latency_us"]) == {"p50", "p90", "p99", "mean", "std", "n"}
    header = (tmp_path / "benchmark.csv").read_text().splitlines()[0].split(",")
    assert {"latency_us.p50", "model", "runtime", "status", "size_gzip_bytes"} <= set(header)
    headline = (tmp_path / "README.md").read_text()
    assert "| mlp128 " in headline and "| cnn32_64 " in headline
    assert ("onnxruntime-cuda" in headline) == (measured["onnxruntime-cuda"][0]["status"] == "unavailable")
    for page in ("accuracy.md", "latency.md", "size.md"):
        assert "| mlp128 " in (tmp_path / page).read_text()
    for plot in ("accuracy_vs_latency.png", "latency_by_runtime.png"):
        assert (tmp_path / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_pareto_front_keeps_only_undominated_points():
    from fmnist.plots import pareto_front
    points = [(1, 80), (2, 85), (3, 84), (4, 90), (5, 90), (0.5, 70)]
    assert sorted(pareto_front(points)) == [0, 1, 3, 5]


SUBSETS = {
    "edge runtimes only": lambda r: r["runtime"] in ("litert", "onnxruntime"),
    "litert only": lambda r: r["runtime"] == "litert",
    "keras only": lambda r: r["runtime"] == "keras",
    "one model, onnxruntime": lambda r: r.get("model") == "mlp128" and r["runtime"] == "onnxruntime",
    "an unavailable runtime only": lambda r: r["runtime"] == "onnxruntime-cuda",
    "nothing": lambda r: False,
}


@pytest.mark.parametrize("subset", SUBSETS)
def test_any_subset_of_rows_gives_a_coherent_report(measured, tmp_path, session_exports, subset):
    records = [r for rows in measured.values() for r in rows if SUBSETS[subset](r)]
    document = {"schema": 1, "environment": {"cpu": "x", "cores": 2, "machine": "x86_64", "python": "3.11",
                                             "versions": {"numpy": "2"}, "seed": 42, "date": "today"},
                "settings": harness.Settings().__dict__, "not_made": [], "records": records}
    report.write_benchmark(document, tmp_path, session_exports)
    assert json.loads((tmp_path / "benchmark.json").read_text())["records"] == json.loads(json.dumps(records))
    readme = (tmp_path / "README.md").read_text()
    models_measured = {r["model"] for r in records if r["status"] == "ok"}
    for model in models_measured:
        assert f"| {model} " in readme
    if not models_measured:
        assert report.NO_DATA in (tmp_path / "accuracy.md").read_text()
        assert not (tmp_path / "plots" / "accuracy_vs_latency.png").exists()
    else:
        assert (tmp_path / "plots" / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"
