"""The edge targets beyond the first five runtimes, on the session's tiny exported models: OpenVINO
(measured, with the precision its kernels ran at), Arm Ethos-U (Vela's estimates), and the per-op
profiles every runtime gives."""
import numpy as np
import pytest

from fmnist.export import get_format
from fmnist.report import analysis
from fmnist.runtimes import get_runtime, list_runtimes
from fmnist.runtimes.profile import PROFILE_CALLS

ESTIMATES = [r for r in list_runtimes() if get_runtime(r).kind == "estimate" and get_runtime(r).package == "ethosu"]
# (the Cortex-M estimates have their own: tests/test_c_export.py)


def test_openvino_records_the_precision_its_kernels_ran_at(measured):
    """int8 files run on int8 kernels, float and 16x8 files on float32 ones (16x8 is float inside
    OpenVINO), and a file with one float layer is mixed: read from the compiled graph, not the name.
    A quantization-aware model's float files carry its fake-quantization ops, which OpenVINO runs on
    int8 kernels: only the int8 files' precision is asserted there."""
    rows = {(r["model"], r["variant"], r["format"]): r for r in measured["openvino"]}
    assert {f for _, _, f in rows} == set(get_runtime("openvino").formats)
    for (model, variant, fmt), r in rows.items():
        precision = r["openvino"]["compute_precision"]
        if "qat" in variant:
            assert precision == "int8" or not get_format(fmt).full_integer or fmt == "tflite-int16x8", (fmt, precision)
        elif fmt == "tflite-int8-mixed":
            assert precision.startswith("mixed: ") and "int8" in precision and "float32" in precision, r
        elif get_format(fmt).full_integer and fmt != "tflite-int16x8":  # int8, or mixed where the CPU's plugin
            # keeps some ops in float32 (an AMX Xeon ran cnn32_64's int8 convolutions on brgconv f32 kernels)
            assert precision == "int8" or (precision.startswith("mixed: ") and "int8" in precision), \
                (model, variant, fmt, r["openvino"]["kernels"])
        else:
            assert precision == "float32", (model, variant, fmt, r["openvino"]["kernels"])
        assert all(k["kernel"] and k["op"] for k in r["openvino"]["kernels"])


def test_openvino_agrees_with_the_runtime_each_file_was_made_for(measured):
    for r in measured["openvino"]:
        mine = r["openvino"]
        made_for = "agreement_with_onnxruntime" if r["format"].startswith("onnx") else "agreement_with_litert"
        other = ({"agreement_with_onnxruntime", "agreement_with_litert"} - {made_for}).pop()
        assert mine[made_for] >= 0.98 and mine[other] is None, (r["format"], mine)


@pytest.mark.parametrize("runtime", ESTIMATES)
def test_an_estimate_runtime_compiles_every_format_it_takes_and_runs_nothing(measured, runtime):
    rows = measured[runtime]
    if get_runtime(runtime).unavailable():
        pytest.fail(f"{runtime}: {get_runtime(runtime).unavailable()} (ethos-u-vela is a pinned dependency)")
    assert {r["format"] for r in rows} == set(get_runtime(runtime).formats)
    for r in rows:
        assert r["status"] == "estimated" and r["kind"] == "estimate", r.get("error")
        assert "accuracy" not in r and "latency_us" not in r  # nothing ran: no measured figure
        e = r["ethos_u"]
        assert e["estimated"] and e["accelerator"] == runtime and e["clock_hz"] > 0
        assert 0 < e["cycles_npu"] <= e["cycles_total"]
        assert e["inference_us"] == pytest.approx(e["cycles_total"] / e["clock_hz"] * 1e6, rel=0.01)
        assert e["sram_bytes"] > 0 and e["flash_bytes"] + e["dram_bytes"] > 0 and e["npu_ops"] > 0
        assert e["layers"] and r["op_profile"]["unit"] == "cycles"
        assert 0 < r["op_profile"]["total"] <= e["cycles_total"]


def test_the_estimates_are_kept_out_of_every_measured_choice(measured):
    records = [r for rows in measured.values() for r in rows]
    estimates = analysis.estimate_rows(records)
    assert estimates and not [r for r in analysis.ok_rows(records) if r["status"] == "estimated"]
    for head in analysis.headlines(records):
        assert get_runtime(head.fastest["runtime"]).kind == "measured"


def test_profilers_time_every_op_and_the_graph_counts_its_macs(measured):
    """ONNX Runtime's and OpenVINO's profiles are per-call times summed over PROFILE_CALLS calls;
    LiteRT's MACs, counted op by op from the TFLite graph, add up to the MACs the model's record
    counted from the Keras layers."""
    for runtime in ("onnxruntime", "openvino"):
        for r in measured[runtime]:
            profile = r["op_profile"]
            assert profile["unit"] == "µs" and profile["calls"] == PROFILE_CALLS and profile["threads"] == 1
            assert profile["total"] > 0 and profile["profiled_wall_us_mean"] > 0
            assert sum(profile["by_type"].values()) == pytest.approx(1)
            assert sum(op["value"] for op in profile["ops"]) == pytest.approx(profile["total"])
    for r in measured["litert"]:
        assert r["op_profile"]["unit"] == "MACs" and r["op_profile"]["total"] == r["macs"], r["format"]


@pytest.mark.parametrize("op, family", [("QLinearConv", "convolution"), ("CONV_2D", "convolution"),
                                        ("FullyConnectedQuantizedLegacy", "fully connected / matmul"),
                                        ("QGemm", "fully connected / matmul"), ("Convert", "quantize / convert"),
                                        ("DequantizeLinear", "quantize / convert"), ("MaxPool", "pooling"),
                                        ("Reorder", "layout (reshape, transpose, copy)"), ("Unknown", "other")])
def test_every_runtime_s_op_names_fall_into_one_vocabulary(op, family):
    assert analysis.op_family(op) == family


def test_the_openvino_session_quantizes_with_the_file_s_own_scale(exported, session_exports, dataset):
    """An int8 TFLite file takes int8 images: OpenVINO shows the type, the manifest gives the scale.
    Same images, same classes as LiteRT on the same file, a batch or one image at a time."""
    from fmnist.storage import model_dir
    images = dataset.test_images[:64].astype(np.float32) / 255
    for fmt in ("tflite-int8", "tflm"):
        path = model_dir(session_exports, "cnn32_64") / fmt / "model.tflite"
        ours = get_runtime("openvino").load(path, fmt, threads=1).predict(images, batch_size=16)
        theirs = get_runtime("litert").load(path, fmt, threads=1).predict(images, batch_size=16)
        assert ours.shape == (64, 10) and np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.98
        assert np.abs(ours - theirs).max() < 0.05
