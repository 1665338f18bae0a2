"""Per-op profiles: where an artifact spends its time (a runtime's own profiler), its NPU cycles (a
compiler's estimate) or, for a runtime without a profiler, its work (multiply-accumulates counted
from the graph). One shape for all of them, so results/profile.md reads every runtime alike.

TF-free: LiteRT's interpreter reads the graph.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

PROFILE_CALLS = 200   # batch-1 calls on one thread a profiler sums over: enough to smooth its microsecond clock
TOP_OPS = 10          # ops listed by name in a row; the rest are summed as "other"


def summary(per_op: dict[tuple[str, str], float], unit: str, source: str, calls: int | None = None,
            wall_us: float | None = None, threads: int | None = None) -> dict:
    """`per_op`: (node name, op type) -> total `unit` over `calls` calls (per call when calls is
    None), on `threads` threads where it was timed. Returns per-call figures: the total, every op
    type's share, the top ops by name, and the profiled calls' mean wall time (µs) where timed."""
    calls = calls or 1
    total = sum(per_op.values()) / calls
    by_type = defaultdict(float)
    for (_, kind), value in per_op.items():
        by_type[kind] += value / calls
    ranked = sorted(per_op.items(), key=lambda item: -item[1])
    ops = [{"name": name, "type": kind, "value": value / calls} for (name, kind), value in ranked[:TOP_OPS]]
    rest = sum(value for _, value in ranked[TOP_OPS:]) / calls
    if rest:
        ops.append({"name": "other", "type": "other", "value": rest})
    for op in ops:
        op["share"] = op["value"] / total if total else 0.0
    return {"source": source, "unit": unit, "calls": calls if calls > 1 else None, "threads": threads, "total": total,
            "profiled_wall_us_mean": wall_us,
            "by_type": {k: v / total if total else 0.0 for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
            "ops": ops}


def tflite_macs(path: Path) -> dict:
    """Multiply-accumulates per image of every op of a TFLite graph, from its tensors' shapes:
    a convolution's output elements times its kernel's window (times input channels unless
    depthwise), a fully connected layer's inputs times its outputs. Other ops count zero: their work
    is not MACs."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from fmnist import stderr_muted
    with stderr_muted():
        interpreter = Interpreter(model_path=str(path),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()  # shapes computed in the graph (a QAT file's dequantized weights) are set here
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    shapes = {i: list(t["shape"]) for i, t in tensors.items()}
    per_op = {}
    for op in interpreter._get_ops_details():
        kind, inputs, outputs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        out = shapes.get(outputs[0], []) if outputs else []
        per_image = math.prod(out[1:]) if out else 0
        weights = shapes.get(inputs[1], []) if len(inputs) > 1 and inputs[1] >= 0 else []
        if kind == "CONV_2D" and len(weights) == 4:
            macs = per_image * weights[1] * weights[2] * weights[3]
        elif kind == "DEPTHWISE_CONV_2D" and len(weights) == 4:
            macs = per_image * weights[1] * weights[2]
        elif kind == "FULLY_CONNECTED" and out:
            macs = out[-1] * shapes[inputs[0]][-1]
        else:
            macs = 0
        name = tensors[outputs[0]]["name"].split(";")[0] if outputs else str(op["index"])
        per_op[(name, kind)] = int(macs)
    return summary(per_op, "MACs", "counted from the graph (no per-op profiler in this runtime's Python API)")

