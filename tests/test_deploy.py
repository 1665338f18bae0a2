"""README's "What to deploy" against a brute-force selection over the committed results/benchmark.json:
the rules written out again here (fit, soundness, the file's own precision), each answer checked to be
a row that qualifies and that no qualifying row beats; then the rendered line and the CSV line it links."""
import csv
import io
import json
import re
from pathlib import Path

import pytest

from fmnist.report import analysis, deploy, pages, publish

RESULTS = Path(__file__).resolve().parent.parent / "results"
KIB = 1024
RESERVE = 96 * KIB
INT8_FORMATS = {"tflite-int8", "onnx-int8", "tflm"}


@pytest.fixture(scope="module")
def document():
    return json.loads((RESULTS / "benchmark.json").read_text())


def sound(r):
    return r["status"] == "ok" and not r["flagged"] and r["accuracy"] >= r["source_accuracy"] - 0.005


def runs_own_precision(r):
    """OpenVINO's kernels must compute at the file's precision; the other runtimes run it as written."""
    if r["runtime"] != "openvino":
        return True
    ran = r["openvino"]["compute_precision"]
    if r["format"] == "tflite-int16x8":
        return False
    if r["format"] == "tflite-int8-mixed":
        return ran.startswith("mixed")
    integer = r["format"] in INT8_FORMATS or ("qat" in r["variant"] and r["format"] in ("tflite", "onnx"))
    return ran == ("int8" if integer else "float32")


def host(r):
    return r.get("machine", "host") == "host"


def mcu(records, flash, ram):
    """(row, accuracy, speed) of each TFLM row that fits a board with this flash and RAM."""
    return [(r, r["accuracy"], r["macs"]) for r in records if host(r) and r["runtime"] == "tflm"
            and sound(r) and r["tflm"]["flash_bytes"] + RESERVE <= flash and r["tflm"]["arena_bytes_min"] <= 0.75 * ram]


def npu(records, accelerator, sram, weights):
    """... each Vela estimate that fits an NPU board, with TFLM's accuracy on the same (sound) file."""
    tflm = {r["artifact_sha256"]: r for r in records if host(r) and r["runtime"] == "tflm" and sound(r)}
    return [(r, tflm[r["artifact_sha256"]]["accuracy"], r["ethos_u"]["inference_us"]) for r in records
            if host(r) and r["runtime"] == accelerator and r["status"] == "estimated" and r["artifact_sha256"] in tflm
            and r["ethos_u"]["flash_bytes"] + r["ethos_u"]["dram_bytes"] + RESERVE <= weights
            and r["ethos_u"]["sram_bytes"] <= 0.75 * sram]


def runtime(records, name):
    return [(r, r["accuracy"], r["latency_us"]["p50"]) for r in records
            if host(r) and r["runtime"] == name and sound(r) and runs_own_precision(r)]


TARGETS = {  # target name -> its qualifying rows, by brute force
    "Arduino Zero": lambda records: mcu(records, 256 * KIB, 32 * KIB),
    "nRF52840 DK": lambda records: mcu(records, 1024 * KIB, 256 * KIB),
    "Alif Ensemble E3": lambda records: npu(records, "ethos-u55-128", 13824 * KIB, 5632 * KIB),
    "this machine, litert": lambda records: runtime(records, "litert"),
    "this machine, onnxruntime": lambda records: runtime(records, "onnxruntime"),
    "this machine, openvino": lambda records: runtime(records, "openvino"),
}


@pytest.fixture(scope="module")
def answers(document):
    return {x.target.name: x for x in deploy.answers(document["records"]) if x.model is None}


@pytest.mark.parametrize("name", TARGETS)
def test_each_answer_is_the_brute_force_choice(document, answers, name):
    qualifying = TARGETS[name](document["records"])
    registry = [q for q in qualifying if q[0]["source"] != "user"]
    assert registry, f"the committed results have no qualifying row for {name}"
    answer = answers[name]
    best = max(accuracy for _, accuracy, _ in registry)
    chosen = [q for q in registry if q[0] is answer.accurate.row]
    assert chosen and chosen[0][1] == best == answer.accurate.accuracy
    near = [q for q in registry if q[1] >= best - 0.005]
    fastest = [q for q in near if q[0] is answer.fastest.row]
    assert fastest and fastest[0][2] == min(speed for _, _, speed in near)


def test_no_openvino_row_of_a_16x8_file_is_ever_chosen(document):
    picked = [c.row for x in deploy.answers(document["records"]) for c in (x.accurate, x.fastest) if c]
    assert picked and not any(r["runtime"] == "openvino" and r["format"] == "tflite-int16x8" for r in picked)
    left_out = deploy.other_precision(document["records"])
    assert {r["openvino"]["compute_precision"] for r in left_out if r["format"] == "tflite-int16x8"} == {"float32"}


def test_a_user_model_gets_its_own_line_only_where_it_wins(document):
    records = [r for r in document["records"] if r.get("runtime") == "litert" and host(r)]
    best = max((r for r in records if sound(r)), key=lambda r: r["accuracy"])
    mine = {**best, "model": "yours", "source": "user", "accuracy": best["accuracy"] + 0.001}
    lines = [x for x in deploy.answers([*records, mine]) if x.target.name == "this machine, litert"]
    assert [x.model for x in lines] == [None, "yours"] and lines[1].accurate.row is mine
    worse = {**mine, "accuracy": best["accuracy"] - 0.01}
    assert [x.model for x in deploy.answers([*records, worse])] == [None]


def test_the_readme_opens_with_each_answer_linked_to_its_csv_line(document, answers):
    readme = pages.readme(document, {}, [])
    top = readme[:readme.index("## Headline")]
    assert "## What to deploy" in readme.split("\n")[:6]
    table = list(csv.DictReader(io.StringIO(publish._csv(document["records"]))))
    for name in TARGETS:
        line = next(x for x in top.split("\n") if f"**{name}**" in x)
        links = [int(n) for n in re.findall(r"\(benchmark\.csv#L(\d+)\)", line)]
        answer = answers[name]
        expected = [answer.accurate.row] + ([] if answer.fastest is answer.accurate else [answer.fastest.row])
        assert len(links) == len(expected)
        for link, row in zip(links, expected):
            written = table[link - 2]  # line 1 is the header
            assert (written["artifact_sha256"], written["runtime"], written.get("machine", "host")) == \
                (row["artifact_sha256"], row["runtime"], row.get("machine", "host"))
        assert f"{100 * answer.accurate.accuracy:.2f}%" in line


def row(fmt, runtime, p50, accuracy=0.9, variant="base", **extra):
    return {"model": "m", "source": "own", "variant": variant, "format": fmt, "runtime": runtime, "status": "ok",
            "machine": "host", "threads": 2, "accuracy": accuracy, "source_accuracy": 0.9,
            "accuracy_delta": accuracy - 0.9, "agreement": 1.0, "flagged": False, "flag_reasons": [],
            "latency_us": {"p50": p50}, "size_bytes": 1000, **extra}


def test_the_headline_speed_up_is_against_the_float_file_on_the_same_runtime():
    keras = row("keras", "keras", 2000.0, threads=None)
    float32 = {"openvino": {"compute_precision": "float32"}}
    rows = [keras, row("tflite", "litert", 40.0), row("onnx", "onnxruntime", 30.0),
            row("tflite-int8", "litert", 10.0),
            row("tflite-int16x8", "openvino", 5.0, accuracy=0.95, **float32)]  # float32 execution: never chosen
    head, = analysis.headlines(rows)
    assert (head.fastest["format"], head.fastest["runtime"]) == ("tflite-int8", "litert")
    assert head.float_file["format"] == "tflite" and head.float_speedup == 4 and head.speedup == 200
    assert head.integer["runtime"] == "litert"
    cells = pages._headline_row(head)
    assert "4.00× (tflite: 40.0 µs)" in cells and "200×" in cells
