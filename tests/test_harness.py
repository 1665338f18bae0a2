"""The benchmark harness on the session's tiny exported models: every runtime, the figures, the writers."""
import dataclasses
import json

import numpy as np
import pytest

from fmnist import harness, metrics, report
from fmnist.runtimes.base import Session
from fmnist.jobs import collect_jobs
from fmnist.export import get_format
from fmnist.runtimes import get_runtime, list_runtimes
from fmnist.resultsdir import MARKER
from fmnist.storage import model_dir

from conftest import CONTRACT, QUICK


@pytest.mark.parametrize("runtime", [r for r in list_runtimes() if not get_runtime(r).unavailable()
                                     and get_runtime(r).kind == "measured"])
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
    samples = metrics.time_calls(call, min_calls=100, min_seconds=0, max_calls=100)
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


def crash_on_int8(name, data_dir, settings, job):
    """A measuring process that dies (as a segfaulting runtime's does) on int8 files."""
    import os
    if job.format == "tflite-int8":
        os._exit(11)
    return harness.measure_one(name, data_dir, settings, job)


def test_a_crashing_process_costs_only_the_artifact_that_crashed_it(exported, session_exports):
    jobs = collect_jobs([model_dir(session_exports, "mlp128")], ["tflite", "tflite-int8", "tflite-fp16"],
                        ["litert"])["litert"]
    rows = harness.run_isolated("litert", jobs, None, QUICK, progress=False, task=crash_on_int8)
    assert [(r["format"], r["status"]) for r in rows] == [(j.format, "error" if j.format == "tflite-int8" else "ok")
                                                           for j in jobs]
    assert "process crashed on this artifact" in next(r["error"] for r in rows if r["status"] == "error")


def test_a_cached_figure_is_never_reused_for_an_altered_file(exported, session_exports, tmp_path):
    """The real case: the file changes under a row measured before (same manifest, same key)."""
    import shutil
    shutil.copytree(model_dir(session_exports, "mlp128"), tmp_path / "mlp128")
    jobs = collect_jobs([tmp_path / "mlp128"], ["tflite"], ["litert"])["litert"]
    settings = dataclasses.replace(QUICK, reuse_figures=True)
    first = harness.run_runtime("litert", jobs, None, settings, progress=False)[0]
    again = harness.run_runtime("litert", jobs, None, settings, progress=False)[0]
    assert first["status"] == again["status"] == "ok" and not first["reused"] and again["reused"]
    assert again["latency_us"] == first["latency_us"] and (again["top1"] == first["top1"]).all()
    artifact = tmp_path / "mlp128" / "tflite" / "model.tflite"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    altered = harness.run_runtime("litert", jobs, None, settings, progress=False)[0]
    assert altered["status"] == "error" and "does not match its manifest" in altered["error"]


def test_the_batch_one_memory_is_read_before_any_larger_batch_runs(exported, session_exports, monkeypatch):
    """peak_rss_mb is the footprint of loading and running one image: the reading that gives it
    comes before the first bind of more than one image in the process."""
    events = []
    runtime = get_runtime("litert")
    original_load, original_rss = runtime.load, harness._rss_mb

    class Logged:
        def __init__(self, session):
            self.session = session

        def bind(self, images):
            events.append(("bind", len(images)))
            self.session.bind(images)

        def __getattr__(self, name):
            return getattr(self.session, name)

        def predict(self, images, batch_size=256):
            return Session.predict(self, images, batch_size)

    def rss(field):
        value = original_rss(field)
        events.append(("read", field, value))
        return value
    monkeypatch.setattr(type(runtime), "load", lambda self, *a, **k: Logged(original_load(*a, **k)))
    monkeypatch.setattr(harness, "_rss_mb", rss)
    job = collect_jobs([model_dir(session_exports, "cnn32_64")], ["tflite"], ["litert"])["litert"][0]
    images, labels = harness._test_set(None)
    from fmnist import data
    figures = harness.measure(runtime, job, data.normalise(images[:300]), labels[:300], QUICK)
    first_large = next(i for i, e in enumerate(events) if e[0] == "bind" and e[1] > 1)
    batch_one = [e for e in events[:first_large] if e[:2] == ("read", "VmHWM")]
    assert batch_one and figures["peak_rss_mb"] == batch_one[-1][2]
    assert figures["peak_rss_mb_large_batches"] >= figures["peak_rss_mb"]
    assert not [e for e in events[:first_large] if e[0] == "bind" and e[1] != 1]


def test_writers_produce_the_documented_fields(measured, tmp_path, session_exports):
    records = [r for rows in measured.values() for r in rows]
    document = {"schema": 1, "environment": {"cpu": "x", "cores": 2, "machine": "x86_64", "python": "3.11",
                                             "versions": {"numpy": "2"}, "seed": 42, "date": "today"},
                "settings": harness.Settings().__dict__, "not_made": [], "records": records}
    report.publish_benchmark(document, tmp_path)
    written = json.loads((tmp_path / "benchmark.json").read_text())
    assert written["schema"] == 1
    for record in (r for r in written["records"] if r["status"] == "ok"):
        assert set(CONTRACT) <= set(record)
        assert set(record["latency_us"]) == {"p50", "p90", "p99", "mean", "std", "n"}
    import csv
    csv_rows = list(csv.DictReader((tmp_path / "benchmark.csv").open()))
    assert len(csv_rows) == len(written["records"])
    assert {"latency_us.p50", "model", "runtime", "status", "size_gzip_bytes"} <= set(csv_rows[0])
    headline = (tmp_path / "README.md").read_text()
    assert "| mlp128 " in headline and "| cnn32_64 " in headline
    assert ("onnxruntime-cuda" in headline) == (measured["onnxruntime-cuda"][0]["status"] == "unavailable")
    for page in ("accuracy.md", "latency.md", "size.md"):
        assert "| mlp128 " in (tmp_path / page).read_text()
    for plot in ("accuracy_vs_latency.png", "latency_by_runtime.png"):
        assert (tmp_path / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != MARKER]  # no temp left


def test_pareto_front_keeps_only_undominated_points():
    from fmnist.metrics import pareto_front
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


def _links_resolve(folder):
    import re
    for page in folder.glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)", page.read_text()):
            assert (folder / target).exists(), f"{page.name} links {target}, which is not there"


@pytest.mark.parametrize("subset", SUBSETS)
def test_any_subset_of_rows_gives_a_coherent_report_and_no_stale_page(measured, tmp_path, subset):
    everything = [r for rows in measured.values() for r in rows]
    document = {"schema": 1, "environment": {"cpu": "x", "cores": 2, "machine": "x86_64", "python": "3.11",
                                             "versions": {"numpy": "2"}, "seed": 42, "date": "today"},
                "settings": harness.Settings().__dict__, "not_made": [], "records": everything}
    report.publish_benchmark(document, tmp_path)
    assert (tmp_path / "micro.md").is_file()  # the full run measured TFLM
    records = [r for r in everything if SUBSETS[subset](r)]
    report.publish_benchmark({**document, "records": records}, tmp_path)
    assert json.loads((tmp_path / "benchmark.json").read_text())["records"] == json.loads(json.dumps(records))
    assert (tmp_path / "micro.md").exists() == any(r["runtime"] == "tflm" for r in records)
    _links_resolve(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    models_measured = {r["model"] for r in records if r["status"] == "ok"}
    for model in models_measured:
        assert f"| {model} " in readme
    if not models_measured:
        assert report.pages.NO_DATA in (tmp_path / "accuracy.md").read_text()
        assert not (tmp_path / "plots" / "accuracy_vs_latency.png").exists()
    else:
        assert (tmp_path / "plots" / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"


def test_tflm_agreement_comes_from_litert_rows_of_the_same_file(measured):
    """Every file TFLM runs, LiteRT runs too (the fixed-batch tflm export one image per call): the
    agreement is read from LiteRT's row of that very file, and no predictions reach the results."""
    tflm = [r for r in measured["tflm"] if r["status"] == "ok"]
    litert = {r["artifact_sha256"]: r for r in measured["litert"] if r["status"] == "ok"}
    assert tflm and all("top1" not in r for r in tflm + list(litert.values()))
    for r in tflm:
        assert r["artifact_sha256"] in litert
        assert 0.95 <= r["tflm"]["agreement_with_litert"] <= 1, r  # one integer graph, two interpreters
    fixed = [r for r in litert.values() if r["format"] == "tflm"]
    assert fixed and all(r["throughput_scope"].startswith("measured, one call per image") for r in fixed)
