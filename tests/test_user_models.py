"""Your own model through the whole toolkit: Keras 3 and tf_keras files, factories, plugins, ONNX,
the input contract, and the refusals (README: "Bring your own model")."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fmnist import cli, data, storage

HERE = Path(__file__).parent
ROOT = HERE.parent
MEAN, STD = 0.2860, 0.3530  # the ONNX model's normalisation (Fashion-MNIST's pixel mean and std)
QUICK = ["--quiet", "--min-calls", "5", "--min-seconds", "0.001", "--no-qat", "--no-prune"]


@pytest.fixture(scope="module")
def keras3_files(tmp_path_factory, dataset):
    """Model files saved by Keras 3 in a process of its own (no fmnist, no legacy switch)."""
    out = tmp_path_factory.mktemp("keras3")
    np.savez(out / "train.npz", images=data.normalise(dataset.train_images[:3000]), labels=dataset.train_labels[:3000])
    np.save(out / "test.npy", data.normalise(dataset.test_images[:500]))
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run([sys.executable, str(HERE / "user_models_keras3.py"), str(out), str(out / "marker")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def _nchw_onnx(path: Path, dataset, inputs: int = 1) -> None:
    """A logistic regression fitted by least squares (no torch, no TensorFlow), as an NCHW ONNX
    graph that expects (pixels - MEAN) / STD and returns logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    x = (data.normalise(dataset.train_images[:5000]) - np.float32(MEAN)) / np.float32(STD)
    x = np.hstack([x.reshape(len(x), -1), np.ones((len(x), 1), np.float32)])
    weights, *_ = np.linalg.lstsq(x, np.eye(10, dtype=np.float32)[dataset.train_labels[:5000]], rcond=None)
    names = [f"image{i}" for i in range(inputs)]
    nodes = [helper.make_node("Flatten", [names[0]], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["logits"])]
    graph = helper.make_graph(nodes, "lstsq", [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 1, 28, 28])
                                               for n in names],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(weights[:-1].astype(np.float32), "w"),
                               numpy_helper.from_array(weights[-1].astype(np.float32), "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _rows(results: Path, model: str) -> list[dict]:
    return [r for r in json.loads((results / "benchmark.json").read_text())["records"] if r.get("model") == model]


def test_a_keras3_file_gets_every_format_and_runtime_the_zoo_gets(keras3_files, tmp_path, capsys):
    exports, results = tmp_path / "exports", tmp_path / "results"
    path = keras3_files / "k3_user.keras"
    assert cli.bench_main(["--model", str(path), "--exports", str(exports), "--results", str(results), *QUICK]) == 0
    rows = _rows(results, "k3_user")
    from fmnist.export import get_format, list_formats
    from fmnist.runtimes import list_runtimes
    made = {(r["format"], r["runtime"]) for r in rows if r["status"] in ("ok", "estimated")}
    for fmt in list_formats():
        assert any(f == fmt for f, _ in made), (fmt, sorted(made))
    assert {"keras", "litert", "onnxruntime", "tflm", "openvino"} <= {r for _, r in made}
    assert all(r["source"] == "user" and r["origin"] == str(path) for r in rows)
    record = storage.read_record(exports / "k3_user")
    assert record["origin"]["saved_by"] == "Keras 3" and record["origin"]["sha256"] == storage.file_sha256(path)
    assert record["origin"]["input_contract"]["output"] == "logits"  # detected, and a softmax added
    # rebuilt in tf_keras, it answers what Keras 3 answers with the file (softmax added to its logits)
    own = np.load(keras3_files / "k3_user_probabilities.npy")
    np.testing.assert_allclose(storage.reference_probabilities(exports / "k3_user")[:500], own, atol=1e-5)
    assert next(r for r in rows if r["runtime"] == "keras")["max_abs_diff"] < 1e-5
    assert set(list_runtimes()) >= {r for _, r in made}
    assert get_format("tflm").microcontroller


def test_export_of_a_keras_file_to_int8_and_tflm_compiles(keras3_files, tmp_path):
    exports = tmp_path / "exports"
    path = keras3_files / "k3_user.keras"
    assert cli.export_main(["--model", str(path), "--format", "tflite-int8", "tflm", "--exports", str(exports),
                            "--quiet"]) == 0
    done = subprocess.run(["cc", "-c", str(exports / "k3_user" / "tflm" / "model_data.cc"), "-o",
                           str(tmp_path / "model_data.o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_nchw_onnx_file_with_mean_and_std_matches_an_independent_loop(dataset, tmp_path):
    import onnxruntime as ort
    path, exports, results = tmp_path / "lstsq.onnx", tmp_path / "exports", tmp_path / "results"
    _nchw_onnx(path, dataset)
    assert cli.bench_main(["--model", str(path), "--input-mean", str(MEAN), "--input-std", str(STD),  # variants too
                           "--exports", str(exports), "--results", str(results), *QUICK[:-2]]) == 0
    rows = {r["format"]: r for r in _rows(results, "lstsq") if r["runtime"] == "onnxruntime"}
    assert rows["onnx"]["status"] == rows["onnx-int8"]["status"] == "ok"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = ((data.normalise(dataset.test_images) - np.float32(MEAN)) / np.float32(STD))[:, None]
    independent = np.mean(session.run(None, {"image0": x})[0].argmax(1) == dataset.test_labels)
    assert rows["onnx"]["accuracy"] == pytest.approx(independent, abs=1e-12)
    assert 0.1 < rows["onnx-int8"]["accuracy"] <= 1 and rows["onnx-int8"]["images"] == len(dataset.test_labels)
    record = storage.read_record(exports / "lstsq")
    assert record["origin"]["input_contract"]["layout"] == "NCHW"
    not_made = json.loads((results / "benchmark.json").read_text())["not_made"]
    assert any(s["format"] == "tflite" and "onnx2tf" in s["reason"] for s in not_made)
    assert any(s["variant"] == "qat" and "no Keras model for tfmot" in s["reason"] for s in not_made)


def test_a_factory_is_trained_by_the_pipeline_and_cached(tmp_path):
    exports = tmp_path / "exports"
    argv = ["--model", "examples.mobile_cnn:mobile_cnn", "--epochs", "1", "--subset", "2000", "--exports",
            str(exports), "--results", str(tmp_path / "results"), "--quiet"]
    assert cli.train_main(argv) == 0
    record = storage.read_record(exports / "mobile_cnn")
    assert record["source"] == "user" and record["origin"]["kind"] == "factory" and record["epochs_run"] == 1
    assert record["recipe"]["learning_rate"] == 2e-3  # the module's RECIPE, not the defaults
    written = (exports / "mobile_cnn" / storage.RECORD_FILE).stat().st_mtime_ns
    assert cli.train_main(argv) == 0
    assert (exports / "mobile_cnn" / storage.RECORD_FILE).stat().st_mtime_ns == written  # cached


@pytest.mark.parametrize("name, message", [
    ("wrong_shape.keras", "input shape (32, 32, 1) is not a 28x28 grey image"),
    ("five_outputs.keras", "the output has 5 values per image"),
    ("two_inputs.keras", "the model has 2 inputs"),
    ("text.keras", "not a Keras model file"),
    ("lambda.keras", "layer 'writes_a_marker' is a Lambda: it carries Python code"),
])
def test_a_model_that_misses_the_contract_is_one_line_and_exit_1(keras3_files, tmp_path, capsys, name, message):
    exports, results = tmp_path / "exports", tmp_path / "results"
    code = cli.bench_main(["--model", str(keras3_files / name), "--exports", str(exports), "--results", str(results),
                           *QUICK])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and message in err, err
    assert not list(exports.glob("*")) and not (results / "benchmark.json").exists()  # nothing written
    assert not (keras3_files / "marker").exists()  # the Lambda never ran


def test_onnx_files_that_fail_the_checker_or_the_contract_are_refused(dataset, tmp_path, capsys):
    import onnx
    two = tmp_path / "two.onnx"
    _nchw_onnx(two, dataset, inputs=2)
    broken = onnx.load(str(two))
    broken.graph.node[0].input[0] = "nowhere"  # a node reading a tensor nothing makes
    onnx.save(broken, str(tmp_path / "broken.onnx"))
    for path, message in ((two, "the model has 2 inputs"), (tmp_path / "broken.onnx", "fails onnx.checker")):
        assert cli.bench_main(["--model", str(path), "--exports", str(tmp_path / "x"), *QUICK]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_logits_are_detected_and_probabilities_left_alone(keras3_files):
    from fmnist import user
    assert user.resolve(str(keras3_files / "no_softmax_ok.keras")).origin["input_contract"]["output"] == "logits"
    spec = user.from_factory("fmnist.models:mlp128")  # a registry function returns a ModelSpec: kept as it is
    assert spec.source == "user" and spec.layers


def test_a_plugin_package_registers_a_model_by_entry_point(tmp_path):
    """A tiny distribution on sys.path whose entry point registers a model: listed, and trained."""
    site = tmp_path / "site"
    (site / "fmnist_demo_plugin").mkdir(parents=True)
    (site / "fmnist_demo_plugin" / "__init__.py").write_text(
        "import tf_keras as keras\n\n"
        "def tiny_mlp():\n"
        "    return keras.Sequential([keras.layers.InputLayer(input_shape=(28, 28)), keras.layers.Flatten(),\n"
        "                             keras.layers.Dense(16, activation='relu'), keras.layers.Dense(10, 'softmax')])\n")
    info = site / "fmnist_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fmnist-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fmnist_edge.models]\ntiny_mlp = fmnist_demo_plugin:tiny_mlp\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    train = [sys.executable, "-c", "import sys; from fmnist.cli import train_main; sys.exit(train_main())"]
    listed = subprocess.run([*train, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert listed.returncode == 0 and "tiny_mlp" in listed.stdout, listed.stderr[-1000:]
    trained = subprocess.run([*train, "tiny_mlp", "--epochs", "1", "--subset",
                              "1000", "--exports", str(tmp_path / "exports"), "--results", str(tmp_path / "results"),
                              "--quiet"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    record = storage.read_record(tmp_path / "exports" / "tiny_mlp")
    assert record["source"] == "user" and record["origin"] == {**record["origin"], "kind": "plugin"}
    assert record["test_accuracy"] > 0.15  # beyond guessing (10%) after one short epoch


def test_a_trusted_tf_keras_lambda_loads_and_answers_as_saved(tmp_path):
    import tf_keras as keras

    from fmnist import models, user
    model = keras.Sequential([keras.layers.InputLayer(input_shape=(28, 28)),
                              keras.layers.Lambda(lambda x: x * 2.0, name="double"), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "doubled.h5")
    with pytest.raises(user.ModelError, match="layer 'double' is a Lambda"):
        user.resolve(str(tmp_path / "doubled.h5"))
    spec = user.resolve(str(tmp_path / "doubled.h5"), user.Options(trust_code=True))
    assert spec.origin["trusted_code"] and spec.origin["saved_by"] == "tf_keras"
    models.adopt(spec)
    rebuilt = models.create_model("doubled")
    rebuilt.set_weights(model.get_weights())
    images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(rebuilt.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_the_input_contract_reads_flags_then_a_sidecar_then_defaults(tmp_path):
    from fmnist.user import contract
    model = tmp_path / "net.onnx"
    assert contract.scaling_for(model, None, None, None) == contract.Scaling()
    (tmp_path / "net.input.json").write_text('{"scale": 255}')
    assert contract.scaling_for(model, None, None, None).scale == 255
    assert contract.scaling_for(model, None, 0.5, 0.25) == contract.Scaling(1.0, 0.5, 0.25)  # flags win
    pixels = np.array([[0.0, 1.0]], np.float32)
    np.testing.assert_array_equal(contract.Scaling(1.0, 0.5, 0.25).apply(pixels), [[-2.0, 2.0]])
    with pytest.raises(contract.ContractError, match="together"):
        contract.scaling_for(model, None, 0.5, None)
    with pytest.raises(contract.ContractError, match=r"input shape \(3, 28, 28\)"):
        contract.layout_of((3, 28, 28), "net")
    assert contract.returns_logits(np.array([[2.0, -1.0] + [0.0] * 8]), "m")
    assert not contract.returns_logits(np.full((3, 10), 0.1), "m")


def test_a_user_model_goes_to_a_device_in_the_bundle(keras3_files, tmp_path):
    exports, path = tmp_path / "exports", str(keras3_files / "k3_user.keras")
    assert cli.export_main(["--model", path, "--format", "tflite-int8", "--exports", str(exports), "--quiet"]) == 0
    assert cli.bench_main(["pack", "--model", path, "--format", "tflite-int8", "--exports", str(exports), "--out",
                           str(tmp_path / "bundle.pyz")]) == 0
    done = subprocess.run([sys.executable, str(tmp_path / "bundle.pyz"), "--out", str(tmp_path / "device.json"),
                           "--label", "box", "--runtime", "litert", "--quiet"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "device.json").read_text())["records"]
    assert [(r["model"], r["source"], r["origin"], r["status"]) for r in rows] == [("k3_user", "user", path, "ok")]
