"""The C export: bit-identical to TFLM on real test images (an MLP and a CNN), a static memory plan
smaller than TFLM's arena, the host runtime, and one model built and counted on an emulated core."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from fmnist import export
from fmnist.boards import BOARDS
from fmnist.config import RunConfig
from fmnist.export.c import STRICT, tflm_equality
from fmnist.export.cgen import UnsupportedGraph, generate, parse
from fmnist.export.cgen.arith import quantize_multiplier
from fmnist.export.cgen.plan import build, scratch_key
from fmnist.export.pipeline import export_model
from fmnist.runtimes import get_runtime
from fmnist.runtimes.cortex_m import INSTALL, CortexM

MODELS = ("mlp128", "micro_cnn")


@pytest.fixture(scope="module")
def c_exports(trained, dataset, tmp_path_factory):
    """{model: (tflm manifest, c manifest, c folder)} for an MLP and a CNN, in exports of its own (the
    session's keep the 1,000-image check the other tests read)."""
    made, before = {}, os.environ.get("FMNIST_C_CHECK_IMAGES")
    os.environ["FMNIST_C_CHECK_IMAGES"] = "10000"  # every test image, here
    exports = tmp_path_factory.mktemp("c-exports")
    for model in MODELS:
        folder = exports / model
        shutil.copytree(trained(model), folder, ignore=shutil.ignore_patterns("c", "tflm"))
        manifests, failures = export_model(folder, [export.get_format("tflm"), export.get_format("c")], dataset,
                                           RunConfig(epochs=1))
        assert not failures, failures
        tflm, c = manifests
        made[model] = (tflm, c, folder / "c")
    os.environ["FMNIST_C_CHECK_IMAGES"] = before or "10000"
    return made


@pytest.mark.parametrize("model", MODELS)
def test_c_outputs_equal_tflm_on_every_test_image(c_exports, model):
    _, manifest, folder = c_exports[model]
    equality = manifest["details"]["tflm_equality"]
    assert equality == {**equality, "images": 10_000, "identical": 10_000, "passed": True,
                        "first_differing_image": None}
    text = (folder / "model.c").read_text()
    assert "malloc" not in text and "tflite" not in text.split("*/", 1)[1]  # no allocator, no interpreter


def test_the_check_counts_a_differing_image(c_exports, dataset, tmp_path):
    """A model.c whose one requantization constant is off by one is caught, by image."""
    _, _, folder = c_exports["mlp128"]
    tflm = (folder.parent / "tflm" / "model.tflite").read_bytes()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.h").write_text((folder / "model.h").read_text())
    text = (folder / "model.c").read_text()
    start = text.index("l1_bias[10] = {\n  ") + len("l1_bias[10] = {\n  ")
    end = text.index(",", start)
    (broken / "model.c").write_text(text[:start] + str(int(text[start:end]) + 40_000) + text[end:])
    equality = tflm_equality(tflm, broken, dataset.test_images[:300])
    assert not equality["passed"] and equality["identical"] < 300
    assert equality["first_differing_image"] is not None


@pytest.mark.parametrize("model", MODELS)
def test_model_c_is_strict_c99(c_exports, model, tmp_path):
    folder = c_exports[model][2]
    done = subprocess.run(["cc", *STRICT, "-c", str(folder / "model.c"), "-o", str(tmp_path / "model.o")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_cnn_needs_at_most_70_percent_of_tflms_arena(c_exports):
    tflm, c, _ = c_exports["micro_cnn"]
    assert c["details"]["arena_bytes"] <= 0.7 * tflm["details"]["arena_bytes_min"]


@pytest.mark.parametrize("model", MODELS)
def test_buffers_alive_at_once_never_share_bytes(c_exports, model):
    _, _, folder = c_exports[model]
    plan = build(parse((folder.parent / "tflm" / "model.tflite").read_bytes()))
    last_read = {t.index: k for k, step in enumerate(plan.steps) for t in step.inputs}
    lives = [(step.output.index, step.output.size, k, last_read.get(step.output.index, len(plan.steps)))
             for k, step in enumerate(plan.steps) if step.output.index in plan.offsets]
    lives += [(scratch_key(k), step.scratch, k, k) for k, step in enumerate(plan.steps) if step.scratch]
    assert plan.arena_bytes == max(plan.offsets[key] + size for key, size, _, _ in lives)
    for a, a_size, a_start, a_end in lives:
        for b, b_size, b_start, b_end in lives:
            if a != b and a_start <= b_end and b_start <= a_end:
                a_at, b_at = plan.offsets[a], plan.offsets[b]
                assert a_at + a_size <= b_at or b_at + b_size <= a_at, (a, b)


def test_depthwise_add_mean_and_average_pool_equal_tflm(dataset, tmp_path):
    """The ops the zoo's graphs lack but users' do (a MobileNet-style block), on an untrained net:
    stride-2 SAME conv, depthwise conv, 1x1 conv, residual ADD, average pool, global mean."""
    from types import SimpleNamespace

    import tensorflow as tf

    from fmnist.data import CLASS_NAMES, normalise
    from fmnist.export.tflm import batch1_int8
    layers = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((28, 28))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(layers.Reshape((28, 28, 1))(inputs))
    y = layers.Conv2D(8, 1)(layers.DepthwiseConv2D(3, padding="same", activation="relu")(x))
    x = layers.AveragePooling2D(2)(layers.Add()([x, y]))
    outputs = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    model = tf.keras.Model(inputs, outputs)
    flatbuffer = batch1_int8(model, SimpleNamespace(memo={}, calibration=normalise(dataset.train_images[:100])))
    files, facts = generate(flatbuffer, "mobile_block", CLASS_NAMES)
    assert {"DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "MEAN"} <= {layer["type"] for layer in facts["layers"]}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    equality = tflm_equality(flatbuffer, tmp_path, dataset.test_images[:500])
    assert equality["passed"], equality


def test_an_unsupported_op_is_refused_in_one_line(c_exports):
    """The MLP's softmax turned into TANH: refused, naming the op."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    _, _, folder = c_exports["mlp128"]
    model = schema.ModelT.InitFromPackedBuf(bytearray((folder.parent / "tflm" / "model.tflite").read_bytes()), 0)
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.SOFTMAX:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.TANH
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(UnsupportedGraph, match=r"^op TANH has no kernel in the C export") as raised:
        generate(bytes(builder.Output()), "mlp128", [str(n) for n in range(10)])
    assert "\n" not in str(raised.value)


def test_quantize_multiplier_follows_tflite():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)   # below 2**-31: flushed to zero, as TFLite does
    assert quantize_multiplier(0.0) == (0, 0)


@pytest.mark.parametrize("model", MODELS)
def test_the_host_runtime_gives_tflms_probabilities(c_exports, dataset, model):
    _, manifest, folder = c_exports[model]
    images = dataset.test_images[:64].astype(np.float32) / 255
    ours = get_runtime("c").load(folder / "model.c", "c").predict(images)
    theirs = get_runtime("tflm").load(folder.parent / "tflm" / "model.tflite", "tflm").predict(images)
    assert np.array_equal(ours, theirs)
    session = get_runtime("c").load(folder / "model.c", "c")
    session.bind(images[:1])
    session.invoke()
    assert np.array_equal(session.result(), theirs[:1])


@pytest.fixture(scope="module")
def cortex_m4():
    runtime = get_runtime("cortex-m4")
    why = runtime.unavailable()
    if why:
        pytest.skip(f"cortex-m4 estimate unavailable here: {why}")
    return runtime


def test_one_model_built_and_counted_on_an_emulated_core(c_exports, cortex_m4):
    tflm, c, folder = c_exports["micro_cnn"]
    first = cortex_m4.estimate(folder / "model.c", "c")
    figures = first["cortex_m"]
    assert figures["equal_outputs"] == 20 and figures["estimated"]
    assert figures["macs"] == sum(layer["macs"] for layer in c["details"]["layers"]) > 0
    layers = sum(layer["instructions"] for layer in figures["layers"])
    assert 0.99 * figures["instructions"] <= layers <= figures["instructions"]
    assert figures["instructions"] > figures["macs"]  # at least one instruction per multiply-accumulate
    assert figures["flash_weights_bytes"] == c["details"]["weight_bytes"]
    assert figures["ram_activation_bytes"] >= c["details"]["arena_bytes"]
    assert 0 < figures["stack_bytes"] < 2048
    assert figures["ram_bytes"] <= 0.7 * tflm["details"]["arena_bytes_min"]
    assert first["op_profile"]["unit"] == "instructions"
    zero = next(b for b in BOARDS if b.name == "Arduino Zero")  # the smallest board: 32 KiB of RAM
    assert zero.fits_firmware(figures["firmware_flash_bytes"], figures["ram_bytes"])
    assert figures["flash_bytes"] < figures["firmware_flash_bytes"] < figures["flash_bytes"] + 4096
    again = cortex_m4.estimate(folder / "model.c", "c")["cortex_m"]
    assert again["instructions"] == figures["instructions"]  # QEMU's count is deterministic
    assert [layer["instructions"] for layer in again["layers"]] == \
        [layer["instructions"] for layer in figures["layers"]]


@pytest.mark.parametrize("core, fast, without", [("cortex-m4", "dsp", "FMNIST_NO_DSP"),
                                                  ("cortex-m55", "mve", "FMNIST_NO_MVE")])
def test_the_fast_paths_count_fewer_instructions_with_the_same_outputs(c_exports, core, fast, without):
    """The DSP (M4) and Helium (M55) inner loops against the path without them: each build passes
    the 20-image equality check (estimate raises otherwise), and the fast one takes fewer."""
    runtime = get_runtime(core)
    if runtime.unavailable():
        pytest.skip(f"{core} estimate unavailable here: {runtime.unavailable()}")
    folder = c_exports["micro_cnn"][2]
    quick = runtime.estimate(folder / "model.c", "c")["cortex_m"]
    slow = CortexM(runtime.core, (without,)).estimate(folder / "model.c", "c")["cortex_m"]
    assert quick["fast_path"] == fast and slow["fast_path"] != fast
    assert quick["instructions"] < 0.9 * slow["instructions"]


def test_a_core_whose_outputs_differ_is_an_error_naming_the_image(c_exports, cortex_m4, monkeypatch):
    from fmnist.runtimes import c_host
    run = c_host.CModel.run

    def off_by_one_on_image_3(self, quantized):
        outputs = run(self, quantized)
        outputs[3, 0] ^= 1
        return outputs
    monkeypatch.setattr(c_host.CModel, "run", off_by_one_on_image_3)
    with pytest.raises(RuntimeError, match="cortex-m4: the outputs of test image 3 differ from the host C's"):
        cortex_m4.estimate(c_exports["mlp128"][2] / "model.c", "c")


def test_missing_tools_make_the_cores_unavailable_in_one_line(monkeypatch):
    from fmnist.runtimes import cortex_m
    monkeypatch.setattr(cortex_m.shutil, "which", lambda tool: None)
    assert get_runtime("cortex-m55").unavailable() == INSTALL
    assert "\n" not in INSTALL
