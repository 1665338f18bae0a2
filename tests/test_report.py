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
