"""The report's analysis on hand-made rows: best rows, the Pareto front, targets met and missed.
No model runs here: every figure is made up to put one rule on either side of its bound."""
import pytest

from fmnist.metrics import Direction, Target, at_least, at_most
from fmnist.report import analysis


def row(model="m", variant="base", fmt="tflite", runtime="litert", accuracy=0.9, p50=10.0, size=1000, **extra):
    return {"model": model, "source": "own", "variant": variant, "format": fmt, "runtime": runtime, "status": "ok",
            "accuracy": accuracy, "source_accuracy": 0.9, "accuracy_delta": accuracy - 0.9, "agreement": 1.0,
            "flagged": False, "flag_reasons": [], "latency_us": {"p50": p50}, "size_bytes": size, **extra}


KERAS = row(fmt="keras", runtime="keras", p50=2000.0, size=300_000)


def test_a_target_knows_its_direction():
    assert at_least("keras_accuracy", 0.9).met(0.9) and not at_least("keras_accuracy", 0.9).met(0.899)
    assert at_most("int8_bytes", 100).met(100) and not at_most("int8_bytes", 100).met(101)
    assert Target("p50_us", 50, Direction.AT_MOST) == at_most("p50_us", 50)


@pytest.mark.parametrize("bound,met", [(0.85, True), (0.95, False)])
def test_the_int8_target_reads_the_best_8_bit_edge_row(bound, met):
    rows = [KERAS, row(fmt="tflite-int8", accuracy=0.9, size=400),
            row(fmt="tflite-int16x8", accuracy=0.93, size=500),  # 16-bit activations: not "int8"
            row(fmt="tflite-int8", runtime="tflm", accuracy=0.99)]  # a microcontroller's interpreter: not edge
    verdict, = analysis.verdicts((at_least("int8_accuracy", bound),), rows, None)
    assert verdict.value == 0.9 and verdict.met is met and "tflite-int8 · litert" in verdict.what


@pytest.mark.parametrize("p50,met", [(40.0, True), (60.0, False)])
def test_the_latency_target_reads_the_fastest_sound_edge_row(p50, met):
    rows = [KERAS, row(p50=p50), row(fmt="tflite-int8", p50=1.0, accuracy=0.8),  # fast but 10 points down
            row(fmt="onnx", runtime="onnxruntime", p50=5.0, flagged=True)]  # fast but flagged
    verdict, = analysis.verdicts((at_most("p50_us", 50),), rows, None)
    assert verdict.value == p50 and verdict.met is met


def test_a_target_this_run_did_not_measure_says_so():
    verdicts = analysis.verdicts((at_most("tflm_arena_bytes", 16384), at_most("train_seconds", 600)), [KERAS], None)
    assert [v.value for v in verdicts] == [None, None] and [v.met for v in verdicts] == [None, None]
    arena = row(fmt="tflm", runtime="tflm", tflm={"arena_bytes_min": 20000, "flash_bytes": 9})
    verdict, = analysis.verdicts((at_most("tflm_arena_bytes", 16384),), [KERAS, arena], {"train_seconds": 1})
    assert verdict.value == 20000 and verdict.met is False


def test_headline_picks_the_fastest_sound_edge_row_and_judges_the_zoo_targets():
    rows = [KERAS, row(p50=40.0), row(fmt="onnx", runtime="onnxruntime", p50=10.0, size=900),
            row(fmt="tflite-int8", p50=5.0, accuracy=0.8, size=400)]  # the fastest, but not sound
    head, = analysis.headlines(rows)
    assert head.fastest["runtime"] == "onnxruntime" and head.speedup == 200
    assert head.best_shrink == pytest.approx(1000 / 400)  # tflite's file over tflite-int8's
    assert [t.metric for t in head.missed] == ["int8_shrink"]  # 200x meets 100x; 2.5x misses 3.5x


def test_the_pareto_front_leaves_out_a_microcontroller_interpreter_on_the_host():
    rows = [row(p50=10.0, accuracy=0.90), row(fmt="onnx", runtime="onnxruntime", p50=20.0, accuracy=0.95),
            row(fmt="onnx", runtime="onnxruntime", p50=30.0, accuracy=0.92),  # dominated
            row(fmt="tflm", runtime="tflm", p50=5.0, accuracy=0.99)]  # host latency of an MCU interpreter
    assert [(r["runtime"], r["latency_us"]["p50"]) for r in analysis.front_rows(rows)] == \
        [("litert", 10.0), ("onnxruntime", 20.0)]


ENVIRONMENT = {"cpu": "x", "cores": 2, "machine": "x86_64", "python": "3.11", "versions": {}, "seed": 42,
               "date": "today"}


def estimate(model="m", runtime="ethos-u55-128", sram=30_000, flash=100_000):
    return {"model": model, "source": "own", "variant": "base", "format": "tflm", "runtime": runtime,
            "status": "estimated", "kind": "estimate", "artifact_sha256": "a" * 64,
            "ethos_u": {"system_config": "Ethos_U55_High_End_Embedded", "memory_mode": "Shared_Sram",
                        "system": "an MCU", "clock_hz": 5e8, "cycles_total": 1000, "cycles_npu": 900,
                        "inference_us": 2.0, "inferences_per_second": 5e5, "sram_bytes": sram,
                        "flash_bytes": flash, "dram_bytes": 0, "weights_in": "Off-chip Flash", "npu_ops": 5,
                        "cpu_ops": 0},
            "op_profile": {"source": "Vela", "unit": "cycles", "total": 1000.0, "by_type": {"Conv2D": 1.0},
                           "ops": [{"name": "conv", "type": "Conv2D", "value": 1000.0, "share": 1.0}]}}


def test_an_estimate_is_shown_beside_the_microcontroller_rows_and_never_chosen(tmp_path):
    from fmnist.report import topics
    fast_estimate = {**estimate(), "latency_us": {"p50": 0.001}}  # even with a figure, it is not measured
    rows = [KERAS, row(p50=40.0), fast_estimate, estimate(sram=13824 * 1024)]
    head, = analysis.headlines(rows)
    assert head.fastest["runtime"] == "litert" and len(analysis.estimate_rows(rows)) == 2
    page = topics.micro_page({"records": rows, "environment": ENVIRONMENT}, tmp_path)
    npu = page[page.index("## Arm Ethos-U NPUs"):]
    assert "estimates, not measurements" in npu and "Ethos_U55_High_End_Embedded" in npu
    lines = [line for line in npu.splitlines() if line.startswith("| m ")]
    assert len(lines) == 2 and "| ✓ " in lines[0] and "| ✗ " in lines[1]  # 13.5 MB of SRAM is no board's 75%


def test_the_profile_page_draws_every_profiled_row_and_sets_timed_ones_against_their_latency(tmp_path):
    from fmnist.report import profile
    (tmp_path / "plots").mkdir()
    timed = row(fmt="onnx", runtime="onnxruntime", p50=30.0, threads=2, single_thread={"latency_us": {"p50": 50.0}},
                op_profile={"source": "ORT", "unit": "µs", "total": 40.0, "profiled_wall_us_mean": 60.0,
                            "by_type": {"Conv": 0.75, "Reshape": 0.25},
                            "ops": [{"name": "a/conv", "type": "Conv", "value": 30.0, "share": 0.75},
                                    {"name": "a/reshape", "type": "Reshape", "value": 10.0, "share": 0.25}]})
    page = profile.profile_page({"records": [timed, estimate()], "environment": ENVIRONMENT}, tmp_path)
    line = next(x for x in page.splitlines() if "| onnxruntime" in x)
    assert "| 0.80 " in line and "| 1.20 " in line  # 40 / 50 and 60 / 50: against the one-thread p50
    assert "convolution 75%" in line and "conv (Conv) 75%" in line
    assert "| ethos-u55-128 " in page and (tmp_path / "plots" / "profile.png").read_bytes()[:4] == b"\x89PNG"
