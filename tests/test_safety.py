"""Nothing a user owns is deleted, nothing untrusted is published, every failure is one line."""
import copy
import json
import math
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fmnist import bundle, cli, lock, resultsdir, user, validation
from fmnist.errors import FmnistError, UsageError, one_line
from fmnist.harness import unsound_as_error
from fmnist.report import publish
from fmnist.user.contract import ContractError, scaling_for

COMMITTED = Path(__file__).parent.parent / "results"
DEVICE_FILE = next((COMMITTED / "devices").glob("*.json"))


# --- the results folder: only what the tool wrote is ever replaced -----------------------------------
@pytest.mark.parametrize("where", ["exports", "inside-exports", "around-exports", "git-root", "unmarked"])
def test_a_results_folder_the_tool_does_not_own_is_refused_before_any_work(tmp_path, capsys, where):
    exports = tmp_path / "exports"
    (exports / "mlp4x2").mkdir(parents=True)
    (exports / "mlp4x2" / "model.weights.h5").write_text("weights")
    target = {"exports": exports, "inside-exports": exports / "r", "around-exports": tmp_path,
              "git-root": tmp_path / "repo", "unmarked": tmp_path / "mine"}[where]
    if where == "git-root":
        (target / ".git").mkdir(parents=True)
    if where == "unmarked":
        target.mkdir()
        (target / "thesis.tex").write_text("years of work")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exit_:
        cli.bench_main(["--model", "mlp4x2", "--exports", str(exports), "--results", str(target)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--results" in err, err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.name != lock.LOCK_FILE)
    assert after == before


def test_a_publish_replaces_only_what_the_tool_wrote(tmp_path):
    results = tmp_path / "results"
    with resultsdir.replace(results) as tmp:
        (tmp / "old.md").write_text("a page of the last run")
    for name, text in ((".gitignore", "*.png\n"), ("notes.md", "mine"), (".private/key", "secret")):
        (results / name).parent.mkdir(exist_ok=True)
        (results / name).write_text(text)
    with resultsdir.replace(results) as tmp:
        (tmp / "new.md").write_text("this run's page")
    assert not (results / "old.md").exists() and (results / "new.md").read_text() == "this run's page"
    assert (results / ".gitignore").read_text() == "*.png\n" and (results / "notes.md").read_text() == "mine"
    assert (results / ".private" / "key").read_text() == "secret"
    assert resultsdir.owned(results) == {"new.md"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no temp folder beside it


def test_a_failed_publish_leaves_the_old_results_exactly_as_they_were(tmp_path):
    results = tmp_path / "results"
    with resultsdir.replace(results) as tmp:
        (tmp / "page.md").write_text("before")
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    with pytest.raises(RuntimeError):
        with resultsdir.replace(results) as tmp:
            (tmp / "page.md").write_text("half")
            raise RuntimeError("the report crashed")
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_the_committed_results_are_marked_as_the_tools():
    assert resultsdir.owned(COMMITTED) >= {"README.md", "benchmark.json"}
    resultsdir.check(COMMITTED)


# --- device files: one validation, at merge and at every publish ------------------------------------
def _device():
    return json.loads(DEVICE_FILE.read_text())


def _known(result):
    return {(r["model"], r["variant"], r["format"]): r["artifact_sha256"] for r in result["records"] if "model" in r}


def test_the_committed_device_file_passes_and_each_hostile_edit_is_refused():
    result = _device()
    hashes = _known(result)
    assert validation.device_result_problem(result, hashes) is None
    ok = next(i for i, r in enumerate(result["records"]) if r["status"] == "ok")
    edits = {"negative latency": ("latency_us", {"p50": -42.0, "p90": 1.0, "p99": 1.0}),
             "accuracy 750%": ("accuracy", 7.5), "NaN mean": ("latency_us", {"p50": 1, "p90": 1, "p99": 1,
                                                                            "mean": float("nan")}),
             "inf single thread": ("single_thread", {"throughput_ips": float("inf")}),
             "delta past 1": ("accuracy_delta", -3.0), "status": ("status", "great"),
             "markup": ("runtime", "<img src=x onerror=alert(1)>"), "wrong type": ("accuracy", "0.9"),
             "bool figure": ("latency_us", {"p50": True, "p90": 1.0, "p99": 1.0}),
             "script": ("device", "<script>alert(1)</script>"), "link": ("provider", "[x](javascript:alert(1))"),
             "tag in a list": ("variant_flags", ["<img src=x>"]), "formula": ("device", '=HYPERLINK("http://x","y")')}
    for what, (field, value) in edits.items():
        edited = copy.deepcopy(result)
        edited["records"][ok][field] = value
        assert validation.device_result_problem(edited, hashes), what
    twice = copy.deepcopy(result)
    twice["records"].append(copy.deepcopy(twice["records"][ok]))
    assert "second row" in validation.device_result_problem(twice, hashes)
    html = copy.deepcopy(result)
    html["machine"]["cpu"] = "<script>alert(1)</script> | x"
    assert "plain name" in validation.device_result_problem(html, hashes)


def test_a_device_file_copied_in_by_hand_or_junk_is_left_out_with_one_warning(tmp_path, capsys):
    results, exports = tmp_path / "results", tmp_path / "exports"
    exports.mkdir()
    with resultsdir.replace(results) as tmp:
        (tmp / "devices").mkdir()
        edited = _device()
        edited["records"][3]["accuracy"] = 7.5
        (tmp / "devices" / "edited.json").write_text(json.dumps(edited))
        (tmp / "devices" / "junk.json").write_text('{"garbage": true}')
        (tmp / "devices" / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
        (tmp / "devices" / "traversal.json").write_text(json.dumps({**_device(), "bundle": {
            "version": bundle.BUNDLE_VERSION, "sha256": "../../etc/passwd"}}))
    assert publish.device_results(results, exports) == []
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 4 and all(w.startswith("warning: ") and "left out" in w for w in warnings)


def test_merge_of_a_bundle_path_outside_exports_is_one_line(tmp_path):
    path = tmp_path / "device.json"
    path.write_text(json.dumps({**_device(), "bundle": {"version": bundle.BUNDLE_VERSION, "sha256": "../../x"}}))
    with pytest.raises(bundle.BundleError) as e:
        bundle.read_device_result(path, tmp_path)
    assert "\n" not in str(e.value)


FIGURE_PATHS = ["accuracy", "agreement", "max_abs_diff", "accuracy_delta", "load_ms", "throughput_ips",
                "peak_rss_mb", "size_bytes", "latency_us.p50", "latency_us.mean", "latency_us.std",
                "single_thread.throughput_ips", "per_class_accuracy_delta.3", "export_validation.agreement"]
hostile = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.text(max_size=30), st.booleans(), st.none(), st.lists(st.integers(), max_size=3),
                    st.dictionaries(st.text(max_size=5), st.floats(), max_size=3))


def _sane(record) -> bool:
    """An independent reading of what a published row may hold: every number finite; fractions in
    [0, 1]; deltas in [-1, 1]; everything else not negative."""
    def walk(path, value):
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return True
        if isinstance(value, (int, float)):
            leaf = path.split(".")[-1]
            if not math.isfinite(value):
                return False
            if "delta" in path:
                return -1 <= value <= 1
            return 0 <= value <= 1 if leaf in ("accuracy", "agreement", "max_abs_diff") else value >= 0
        if isinstance(value, dict):
            return all(walk(f"{path}.{k}", v) for k, v in value.items())
        if isinstance(value, list):
            return all(walk(path, v) for v in value)
        return False
    return all(walk(k, v) for k, v in record.items())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 60), field=st.sampled_from(FIGURE_PATHS + ["status", "model", "machine", "extra"]),
       value=hostile)
def test_no_hostile_device_record_is_published_out_of_range_or_ends_in_a_traceback(index, field, value):
    result = _device()
    hashes = _known(result)
    record = result["records"][index % len(result["records"])]
    head, _, leaf = field.partition(".")
    if leaf:
        record[head] = {**record[head], leaf: value} if isinstance(record.get(head), dict) else {leaf: value}
    else:
        record[head] = value
    problem = validation.device_result_problem(result, hashes)  # never raises
    if problem is None:
        assert all(_sane(r) for r in result["records"]), (field, value)


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=8) | st.integers(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=20))
def test_any_json_as_a_device_file_is_a_problem_not_a_traceback(junk):
    assert validation.device_result_problem(junk, {}) is not None
    assert validation.row_problem(junk) is not None or _sane(junk)


# --- no NaN is ever published -------------------------------------------------------------------------
def test_a_row_with_a_non_finite_figure_becomes_an_error_row():
    record = {"model": "m", "variant": "base", "format": "onnx", "runtime": "onnxruntime", "status": "ok",
              "accuracy": 0.1, "max_abs_diff": float("nan"), "latency_us": {"p50": 1.0, "p90": 1.0, "p99": 1.0}}
    made = unsound_as_error(record)
    assert made["status"] == "error" and "max_abs_diff" in made["error"] and "accuracy" not in made


def test_benchmark_json_is_strict_json(tmp_path):
    text = publish._document_json({"schema": 1, "run_cost": {"x": float("inf")}, "records": [{"a": float("nan")}]})
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in benchmark.json"))


def test_an_onnx_model_with_nan_weights_is_refused_in_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    weights = numpy_helper.from_array(np.full((784, 10), np.nan, np.float32), "w")
    graph = helper.make_graph([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
                              "nan", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])], [weights])
    path = tmp_path / "nan.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    with pytest.raises(ContractError, match="not finite") as e:
        user.resolve(str(path))
    assert "\n" not in str(e.value)


# --- user inputs, strictly ----------------------------------------------------------------------------
@pytest.mark.parametrize("sidecar, message", [({"std": 0, "mean": 0.5}, "positive"), ({"scael": 255}, "unknown key"),
                                              ({"scale": "255"}, "finite number"), ([255], "JSON object"),
                                              ({"mean": float("nan"), "std": 1}, "finite number")])
def test_a_sidecar_with_a_bad_value_or_unknown_key_is_refused(tmp_path, sidecar, message):
    model = tmp_path / "net.keras"
    (tmp_path / "net.input.json").write_text(json.dumps(sidecar))
    with pytest.raises(ContractError, match=message):
        scaling_for(model, None, None, None)


def _keras_file(path: Path, config, metadata=None) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
        archive.writestr("metadata.json", json.dumps(metadata or {"keras_version": "3.0"}))
    return str(path)


@pytest.mark.parametrize("case", ["config-list", "version-abc", "deep", "h5-list", "h5-junk", "custom-op",
                                  "factory-raises", "json-loads"])
def test_every_malformed_model_is_one_line_naming_it(tmp_path, case):
    import h5py
    if case == "config-list":
        reference = _keras_file(tmp_path / "m.keras", [1, 2])
    elif case == "version-abc":
        reference = _keras_file(tmp_path / "m.keras", {"class_name": "Sequential", "config": {"layers": []}},
                                {"keras_version": "abc"})
    elif case == "deep":
        reference = _keras_file(tmp_path / "m.keras", "[" * 200_000 + "]" * 200_000)
    elif case.startswith("h5"):
        reference = str(tmp_path / "m.h5")
        with h5py.File(reference, "w") as f:
            f.attrs["model_config"] = "[1, 2]" if case == "h5-list" else "{not json"
    elif case == "custom-op":
        import onnx
        from onnx import TensorProto, helper
        graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], domain="com.example")], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 28, 28])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])])
        reference = str(tmp_path / "m.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                          helper.make_opsetid("com.example", 1)], ir_version=8), reference)
    elif case == "factory-raises":
        (tmp_path / "broken_factory.py").write_text("def make():\n    raise RuntimeError('no GPU here')\n")
        sys.path.insert(0, str(tmp_path))
        reference = "broken_factory:make"
    else:
        reference = "json:loads"
    try:
        with pytest.raises(FmnistError) as e:
            user.resolve(reference)
    finally:
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
    assert "\n" not in str(e.value) and reference.split(":")[0].split("/")[-1] in str(e.value)


# --- exits and messages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("error, expected", [(KeyError(), "KeyError"), (AssertionError(), "AssertionError"),
                                             (ValueError("\n\nsecond line\nthird"), "ValueError: second line"),
                                             (UsageError("plain"), "plain")])
def test_one_line_is_never_empty(error, expected):
    assert one_line(error) == expected


def test_one_line_survives_a_broken_str():
    class Broken(Exception):
        def __str__(self):
            raise RuntimeError("no")
    assert one_line(Broken()) == "Broken"


def test_a_second_run_on_the_same_exports_refuses_with_no_wait(tmp_path, capsys):
    (tmp_path / "e").mkdir()
    with lock.exclusive(tmp_path / "e"):
        assert cli.train_main(["mlp4x2", "--exports", str(tmp_path / "e"), "--results", str(tmp_path / "r"),
                               "--no-wait"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "in use by another fmnist run" in err


def _run_until(tmp_path, marker: str | None, delay: float):
    """fmnist-train in a process of its own, Ctrl-C once `marker` shows on stderr (or after `delay`)."""
    command = [sys.executable, "-c", "import sys; from fmnist.cli import train_main; sys.exit(train_main())",
               "mlp128", "--epochs", "3", "--subset", "30000", "--exports", str(tmp_path / "e"),
               "--results", str(tmp_path / "r")]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, bufsize=1,
                               env={**os.environ, "FMNIST_PROGRESS": "1"})  # the bar says when training runs
    seen = ""
    if marker:
        while marker not in seen:
            char = process.stderr.read(1)
            assert char, f"ended before {marker!r}: {seen[-300:]}"
            seen += char
    else:
        import time
        time.sleep(delay)
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    return process.wait(timeout=60), seen + rest


@pytest.mark.parametrize("marker, delay", [(None, 1.0), ("| 0/3", 0), ("| 1/3", 0)])
def test_ctrl_c_at_any_moment_exits_130_without_a_traceback(tmp_path, marker, delay):
    code, stderr = _run_until(tmp_path, marker, delay)
    assert code == 130, stderr[-500:]
    assert "Traceback" not in stderr
    assert "interrupted: finished outputs are kept" in stderr
    results = tmp_path / "r"
    assert not results.exists() or not any(results.iterdir()) or resultsdir.owned(results)  # nothing half-written


def test_baseline_compare_with_nothing_saved_fails_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "bench", "--baseline-compare",
                           "--baseline-dir", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode != 0 and "no baseline kept" in done.stdout + done.stderr


def test_a_run_writes_nothing_in_home_and_leaves_no_temp_files(tmp_path, exported, session_exports):
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(), temp.mkdir()
    environment = {**os.environ, "HOME": str(home), "TMPDIR": str(temp), "FMNIST_DATA_DIR": str(Path(
        "/usr/share/datasets/fashion-mnist")) if not os.environ.get("FMNIST_DATA_DIR") else os.environ["FMNIST_DATA_DIR"]}
    done = subprocess.run([sys.executable, "-c", "import sys; from fmnist.cli import bench_main; sys.exit(bench_main())",
                           "--model", "mlp128", "--format", "tflite", "onnx", "--runtime", "litert", "onnxruntime",
                           "openvino", "--no-qat", "--no-prune", "--quiet", "--exports", str(session_exports),
                           "--results", str(tmp_path / "results"), "--min-calls", "5", "--min-seconds", "0.01"],
                          capture_output=True, text=True, timeout=600, env=environment)
    assert done.returncode == 0, done.stderr[-800:]
    assert list(home.iterdir()) == [] and list(temp.iterdir()) == []
