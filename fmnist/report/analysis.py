"""What the results say, as data: pure functions over result rows (and the run's document) that pick
best rows, find the Pareto front, judge targets and summarise quantization, microcontroller fit and
devices. No formatting, no files: pages render what these return, and tests call them on hand-made
rows. Every runtime, format and threshold is asked of the registries and fmnist.metrics.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from fmnist.environment import HOST_LABEL
from fmnist.export import get_format, list_formats
from fmnist.jobs import NATIVE_FORMAT
from fmnist.metrics import INT8_SHRINK_TARGET, MAX_ACCURACY_DROP, SPEEDUP_TARGET, Target, pareto_front
from fmnist.quantization import LAYER_OPS, worst_layer
from fmnist.runtimes import get_runtime
from fmnist.variants import get_variant


def host_rows(records: list[dict]) -> list[dict]:
    """The rows this machine's own benchmark measured (not a device's)."""
    return [r for r in records if r.get("machine", HOST_LABEL) == HOST_LABEL]


def ok_rows(records: list[dict]) -> list[dict]:
    return sorted((r for r in records if r["status"] == "ok"),
                  key=lambda r: (r["model"], r["variant"] != "base", r["variant"], r["format"], r["runtime"]))


def label(r: dict) -> str:
    return f"{r['variant']} · {r['format']} · {r['runtime']}"


def is_edge(r: dict) -> bool:
    """An edge runtime whose latency here means something (not TFLM's host emulation of an MCU)."""
    runtime = get_runtime(r["runtime"])
    return runtime.edge and not runtime.microcontroller


def is_native(r: dict) -> bool:
    return r["format"] == NATIVE_FORMAT


def reference_rows(ok: list[dict]) -> dict:
    """model -> the base model's direct Keras call (a Python call: mostly dispatch for a small net)."""
    return {r["model"]: r for r in ok if not is_edge(r) and is_native(r) and r["variant"] == "base"
            and not get_runtime(r["runtime"]).base_only}


def file_precision(r: dict) -> str:
    """The arithmetic the file itself asks for: int8, int16x8, mixed (int8 with a float layer) or
    float32. A quantization-aware variant's float-format file carries its quantization (the converter
    makes it full int8; its ONNX file is QDQ), so it is int8 too."""
    fmt = get_format(r["format"])
    if fmt.activation_bits == 16:
        return "int16x8"
    if fmt.calibrated:
        return "int8" if fmt.full_integer else "mixed"
    return "int8" if get_variant(r["variant"]).quantization_aware else "float32"


def executed_precision(r: dict) -> str | None:
    """What the runtime's kernels ran at, when it says (OpenVINO): int8, float32 or mixed; None for a
    runtime that runs the file's ops as they are written."""
    section = r.get(r["runtime"])
    said = section.get("compute_precision") if isinstance(section, dict) else None
    return None if said is None else "mixed" if said.startswith("mixed") else said


def own_precision(r: dict) -> bool:
    executed = executed_precision(r)
    return executed is None or executed == file_precision(r)


def sound(r: dict, accuracy: float) -> bool:
    """Not flagged, within MAX_ACCURACY_DROP of `accuracy`, and run at the file's own precision (so
    its accuracy is the file's): what every choice of the report reads."""
    return not r["flagged"] and r["accuracy"] >= accuracy - MAX_ACCURACY_DROP and own_precision(r)


def integer_rows(rows: list[dict]) -> list[dict]:
    """int8-class rows: statically quantized artifacts (int8, 16x8, int8 with a float layer), run at
    their own precision (not a 16x8 file OpenVINO ran in float32)."""
    return [r for r in rows if not is_native(r) and get_format(r["format"]).calibrated and own_precision(r)]


def best_integer_row(rows: list[dict]) -> dict | None:
    """The int8-class artifact with the smallest accuracy cost, then the smallest file, then the
    fastest: what a user who must ship int8 would pick."""
    return min(integer_rows(rows), key=lambda r: (-round(r["accuracy"], 4), r["size_bytes"], r["latency_us"]["p50"]),
               default=None)


def shrink(row: dict, ok: list[dict]) -> float | None:
    """How many times smaller an integer artifact is than its float counterpart (same variant)."""
    counterpart = None if is_native(row) else get_format(row["format"]).float_counterpart
    sizes = [r["size_bytes"] for r in ok if (r["model"], r["variant"], r["format"]) ==
             (row["model"], row["variant"], counterpart)]
    return sizes[0] / row["size_bytes"] if sizes else None


def float_file_row(row: dict, ok: list[dict]) -> dict | None:
    """The base model's float file of the row's family (tflite for a tflite-int8 or tflm file, onnx
    for onnx-int8) on the same runtime and machine: what shipping no optimisation costs there."""
    fmt = get_format(row["format"])
    floats = {f for f in (get_format(g).float_counterpart for g in list_formats()) if f}
    family = fmt.float_counterpart or (row["format"] if row["format"] in floats else
                                       next((f for f in floats if get_format(f).runtime == fmt.runtime), None))
    return next((r for r in ok if r["format"] == family and r["variant"] == "base" and
                 (r["model"], r["runtime"], r.get("machine"), r.get("threads")) ==
                 (row["model"], row["runtime"], row.get("machine"), row.get("threads"))), None)


@dataclass
class Headline:
    """One model's answer: its Keras call, fastest sound edge row and the base float file it beats
    on the same runtime, smallest sound artifact, best int8-class artifact, and the zoo targets
    (speed-up against the Keras call, shrink) judged."""
    model: str
    source: str
    accuracy: float
    reference: dict | None
    fastest: dict | None
    smallest: dict | None
    integer: dict | None
    integer_shrink: float | None
    speedup: float | None          # the Keras call's p50 over the fastest row's
    best_shrink: float | None
    missed: list[Target]
    float_file: dict | None = None  # the base float file on the fastest row's runtime
    float_speedup: float | None = None  # its p50 over the fastest row's


def headlines(records: list[dict]) -> list[Headline]:
    ok = ok_rows(records)
    references = reference_rows(ok)
    found = []
    for model in sorted({r["model"] for r in ok}):
        mine = [r for r in ok if r["model"] == model]
        ref = references.get(model)
        accuracy = ref["accuracy"] if ref else max(r["source_accuracy"] for r in mine)
        good = [r for r in mine if sound(r, accuracy)]
        fastest = min((r for r in good if is_edge(r)), key=lambda r: r["latency_us"]["p50"], default=None)
        smallest = min(good, key=lambda r: r["size_bytes"], default=None)
        integer = best_integer_row([r for r in mine if is_edge(r)])
        best_shrink = max(filter(None, (shrink(r, ok) for r in integer_rows(mine)
                                        if get_format(r["format"]).full_integer)), default=None)
        speedup = ref["latency_us"]["p50"] / fastest["latency_us"]["p50"] if ref and fastest else None
        missed = [t for t, value in ((SPEEDUP_TARGET, speedup), (INT8_SHRINK_TARGET, best_shrink))
                  if value is not None and not t.met(value)]
        float_file = fastest and float_file_row(fastest, mine)
        found.append(Headline(model, mine[0]["source"], accuracy, ref, fastest, smallest, integer,
                              shrink(integer, ok) if integer else None, speedup, best_shrink, missed, float_file,
                              float_file and float_file["latency_us"]["p50"] / fastest["latency_us"]["p50"]))
    return found


# --- targets of our own models ----------------------------------------------------------------
@dataclass
class Verdict:
    target: Target
    what: str                 # the figure's description (which row it comes from)
    value: float | None       # None: not measured in this run

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.target.met(self.value)


def _micro_row(mine: list[dict]) -> dict | None:
    """The microcontroller export measured on a microcontroller interpreter (TFLM; the base variant first)."""
    return max((r for r in micro_rows(mine) if get_format(r["format"]).microcontroller),
               key=lambda r: (r["variant"] == "base", r["accuracy"]), default=None)


def _int8_row(mine: list[dict]) -> dict | None:
    """The best full-integer, 8-bit-activation edge row: what an "int8" target means."""
    return best_integer_row([r for r in mine if is_edge(r) and get_format(r["format"]).full_integer
                             and get_format(r["format"]).activation_bits == 8])


def _fastest_sound(mine: list[dict], accuracy: float) -> dict | None:
    return min((r for r in mine if is_edge(r) and sound(r, accuracy)), key=lambda r: r["latency_us"]["p50"],
               default=None)


def _keras(mine, trained):
    r = reference_rows(mine).get(mine[0]["model"])
    return r and ("Keras accuracy", r["accuracy"])


def _int8_accuracy(mine, trained):
    r = _int8_row(mine)
    return r and (f"int8 ({label(r)}) accuracy", r["accuracy"])


def _int8_bytes(mine, trained):
    r = _int8_row(mine)
    return r and (f"int8 file ({label(r)})", r["size_bytes"])


def _p50(mine, trained):
    r = _fastest_sound(mine, (reference_rows(mine).get(mine[0]["model"]) or mine[0])["source_accuracy"])
    return r and (f"edge batch-1 p50 ({label(r)})", r["latency_us"]["p50"])


def _tflm_accuracy(mine, trained):
    r = _micro_row(mine)
    return r and (f"accuracy on TFLM ({label(r)})", r["accuracy"])


def _tflm_flash(mine, trained):
    r = _micro_row(mine)
    return r and ("int8 flash on TFLM", r[r["runtime"]]["flash_bytes"])


def _tflm_arena(mine, trained):
    r = _micro_row(mine)
    return r and ("tensor arena on TFLM (smallest that runs)", r[r["runtime"]]["arena_bytes_min"])


def _train_seconds(mine, trained):
    return trained and ("training", trained["train_seconds"])


# A target's metric -> its figure from one model's rows and training record: (what, value), or None
# when this run did not measure it.
TARGET_FIGURES = {"keras_accuracy": _keras, "int8_accuracy": _int8_accuracy, "int8_bytes": _int8_bytes,
                  "p50_us": _p50, "tflm_accuracy": _tflm_accuracy, "tflm_flash_bytes": _tflm_flash,
                  "tflm_arena_bytes": _tflm_arena, "train_seconds": _train_seconds}


def verdicts(targets: tuple[Target, ...], mine: list[dict], trained: dict | None) -> list[Verdict]:
    """Each target with the figure this run measured for it (value None: not measured)."""
    found = []
    for target in targets:
        figure = TARGET_FIGURES[target.metric](mine, trained) if mine else None
        found.append(Verdict(target, *(figure or (target.metric.replace("_", " "), None))))
    return found


def front_rows(ok: list[dict]) -> list[dict]:
    """The rows on the accuracy-vs-latency Pareto front, among those whose latency here means
    something (a microcontroller interpreter's host latency does not)."""
    timed = [r for r in ok if not get_runtime(r["runtime"]).microcontroller]
    return [timed[i] for i in pareto_front([(r["latency_us"]["p50"], r["accuracy"]) for r in timed])]


# --- quantization -------------------------------------------------------------------------------
def eight_bit_formats() -> list[str]:
    return [f for f in list_formats() if get_format(f).full_integer and get_format(f).activation_bits == 8
            and not get_format(f).microcontroller]


def sixteen_vs_eight(ok: list[dict]) -> dict | None:
    """16-bit against 8-bit activations, the same family on its own runtime: the median p50 ratio
    over the (model, variant) pairs that have both, and how many graphs the delegate took."""
    pairs = {}
    for f16 in (f for f in list_formats() if get_format(f).full_integer and get_format(f).activation_bits == 16):
        runtime = get_format(f16).runtime
        f8 = next((f for f in eight_bit_formats() if get_format(f).runtime == runtime), None)
        for r in ok:
            if r["runtime"] == runtime and r["format"] in (f8, f16):
                pairs.setdefault((r["model"], r["variant"], runtime), {})[r["format"] == f16] = r
    both = [p for p in pairs.values() if len(p) == 2]
    if not both:
        return None
    return {"pairs": len(both), "runtime": both[0][True]["runtime"],
            "ratio": statistics.median(p[True]["latency_us"]["p50"] / p[False]["latency_us"]["p50"] for p in both),
            "delegated_8": sum(bool(p[False].get("delegated")) for p in both),
            "delegated_16": sum(bool(p[True].get("delegated")) for p in both)}


def worst_layers(layer_errors: list[dict]) -> list[dict]:
    """Per 8-bit artifact (from the run's document), its worst layer and the SQNR after each weighted layer."""
    found = []
    for entry in layer_errors:
        if entry["format"] not in eight_bit_formats():
            continue
        worst = worst_layer(entry["layers"])
        found.append({**entry, "worst": worst,
                      "sqnr_by_layer": [r["sqnr_db"] for r in entry["layers"] if r["op"] in LAYER_OPS]})
    return found


def integer_costs(ok: list[dict]) -> tuple[list[str], list[dict]]:
    """(columns, per model {column: row}): each calibrated format of the base model, and each 8-bit
    format of the quantization-aware variant, on the format's own runtime, and the best of them."""
    columns = [f for f in list_formats() if get_format(f).calibrated and not get_format(f).microcontroller]
    qat = [f"qat {f}" for f in eight_bit_formats()]
    table = []
    for model in sorted({r["model"] for r in ok}):
        mine = [r for r in ok if r["model"] == model]
        cells = {}
        for r in mine:
            if is_native(r) or r["runtime"] != get_format(r["format"]).runtime:
                continue
            if r["variant"] == "base" and r["format"] in columns:
                cells[r["format"]] = r
            elif r["variant"] == "qat" and f"qat {r['format']}" in qat:
                cells[f"qat {r['format']}"] = r
        table.append({"model": model, "cells": cells, "best": best_integer_row([r for r in mine if is_edge(r)])})
    return columns + qat, table


# --- microcontrollers and devices ----------------------------------------------------------------
def micro_rows(records: list[dict]) -> list[dict]:
    """Rows of a microcontroller interpreter measured here, with its own section (TFLM's arena); the C
    export's host rows are measured rows like any other, its Cortex-M counts are report.cores'."""
    return [r for r in records if get_runtime(r["runtime"]).microcontroller and get_runtime(r["runtime"]).kind != "estimate"
            and (r["status"] != "ok" or isinstance(r.get(r["runtime"]), dict))]


def estimate_rows(records: list[dict]) -> list[dict]:
    """Vela's estimates for an Ethos-U NPU: kept apart from every measured choice (the Cortex-M counts
    are report.cores')."""
    return sorted((r for r in records if r["status"] == "estimated" and "ethos_u" in r),
                  key=lambda r: (r["model"], r["variant"] != "base", r["variant"], r["format"], r["runtime"]))


OP_FAMILIES = (  # (family, what an op type's lower-cased name contains), first match wins
    ("fully connected / matmul", ("gemm", "matmul", "fullyconnected", "fully_connected")),
    ("quantize / convert", ("quantize", "convert", "dequant")),
    ("convolution", ("conv",)),
    ("pooling", ("pool",)),
    ("activation / softmax", ("relu", "softmax", "sigmoid", "tanh", "clamp")),
    ("layout (reshape, transpose, copy)", ("reshape", "transpose", "reorder", "copy", "shape", "slice", "pack",
                                           "flatten", "concat", "squeeze")),
)


def op_family(op_type: str) -> str:
    """'QLinearConv', 'Convolution', 'CONV_2D', 'Conv2D' -> 'convolution': one vocabulary across
    runtimes, so their profiles can be compared."""
    lowered = op_type.lower()
    return next((family for family, words in OP_FAMILIES if any(w in lowered for w in words)), "other")


def family_shares(profile: dict) -> dict[str, float]:
    shares = {}
    for kind, share in profile["by_type"].items():
        shares[op_family(kind)] = shares.get(op_family(kind), 0.0) + share
    return shares


def one_thread_p50(r: dict) -> float | None:
    """The row's batch-1 p50 on one thread (what a one-thread profile is compared with)."""
    if r.get("threads") == 1:
        return r["latency_us"]["p50"]
    return (r.get("single_thread") or {}).get("latency_us", {}).get("p50")


def best_by_machine(records: list[dict], machines: dict) -> tuple[list[str], dict]:
    """(machine labels with rows, {(model, label): fastest sound edge row or None})."""
    ok = [r for r in records if r["status"] == "ok" and is_edge(r)]
    labels = [m for m in machines if any(r.get("machine", HOST_LABEL) == m for r in ok)]
    best = {}
    for model in sorted({r["model"] for r in ok}):
        for machine in labels:
            mine = [r for r in ok if r["model"] == model and r.get("machine", HOST_LABEL) == machine]
            best[(model, machine)] = min((r for r in mine if sound(r, r["source_accuracy"])),
                                         key=lambda r: r["latency_us"]["p50"], default=None)
    return labels, best
