"""Where a quantized TFLite graph loses precision: layer by layer, against the float graph.

TensorFlow's QuantizationDebugger reports each op's RMSE over its quantization scale, but it runs
only on models it quantizes itself (it refuses quantization-aware ones). This measures the same
statistic on any two TFLite files of the same model (the quantized artifact and the float one),
by running both with every intermediate tensor kept and matching ops by type and order (the n-th
CONV_2D of one graph is the n-th of the other: the same Keras layers in the same order, whatever
the converter named them; a quantization-aware model's float twin has other layer names). The error is the quantized graph's as a
device runs it, accumulated from the input; `sqnr_drop_db` is what each layer adds. As with the
debugger, a layer whose RMSE is well above 0.29 of its scale (the noise of rounding alone, 1/sqrt(12))
is suspect, and the weighted layer with the largest RMSE/scale is named the worst. LiteRT only: no
TensorFlow.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

LAYER_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")  # the ops that carry weights


def _run_keeping_tensors(path: Path, images: np.ndarray):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from fmnist import stderr_muted
    with stderr_muted():  # reference kernels, no delegate: a delegate keeps no intermediates
        interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], images.shape)
    interpreter.allocate_tensors()
    scale, zero_point = detail["quantization"]
    if scale:
        info = np.iinfo(detail["dtype"])
        images = np.clip(np.round(images / scale) + zero_point, info.min, info.max)
    interpreter.set_tensor(detail["index"], images.astype(detail["dtype"]))
    interpreter.invoke()
    return interpreter


def _ops_in_order(interpreter) -> list[tuple[tuple[str, int], int]]:
    """((op type, how many of that type came before), output tensor index) for each op, in order."""
    seen = Counter()
    ops = []
    for op in interpreter._get_ops_details():
        ops.append(((op["op_name"], seen[op["op_name"]]), op["outputs"][0]))
        seen[op["op_name"]] += 1
    return ops


def layer_errors(quantized: Path, float_: Path, images: np.ndarray) -> list[dict]:
    """One row per op of the quantized graph whose output has a float twin: op, tensor name,
    RMSE, RMSE over the output's scale (1.0 is one quantization step), SQNR in dB, and the SQNR
    this op loses against the one before it."""
    q, f = _run_keeping_tensors(quantized, images), _run_keeping_tensors(float_, images)
    float_outputs = dict(_ops_in_order(f))
    details = {t["index"]: t for t in q.get_tensor_details()}
    rows, previous = [], None
    for key, output in _ops_in_order(q):
        out = details[output]
        scale, zero_point = out["quantization"]
        if not scale or key not in float_outputs:
            continue  # a float op (mixed precision), or one the float graph does not have (QUANTIZE)
        got = (q.get_tensor(out["index"]).astype(np.float64) - zero_point) * scale
        want = f.get_tensor(float_outputs[key]).astype(np.float64)
        if got.shape != want.shape:
            continue
        mse = float(np.mean((got - want) ** 2))
        sqnr = float(10 * np.log10(np.mean(want ** 2) / mse)) if mse > 0 else float("inf")
        rows.append({"op": key[0], "tensor": out["name"], "rmse": mse ** 0.5,
                     "rmse_over_scale": mse ** 0.5 / scale, "sqnr_db": sqnr,
                     "sqnr_drop_db": (previous - sqnr) if previous is not None and np.isfinite(previous) else 0.0})
        previous = sqnr
    return rows


def worst_layer(rows: list[dict]) -> dict | None:
    """The weighted layer with the largest error in its own quantization steps: where keeping
    float would help most."""
    return max((r for r in rows if r["op"] in LAYER_OPS), key=lambda r: r["rmse_over_scale"], default=None)
