"""The harness's own cost: its timed loop against a bare `interpreter.invoke()` loop on the same
TFLite file, interleaved, so that a latency in results/ is the runtime's and not our bookkeeping's."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fmnist.metrics import latency_stats, time_calls

OVERHEAD_LIMIT = 1.10  # the harness may cost at most 10% over a bare loop ...
OVERHEAD_QUANTILE = 25  # ... in at least three rounds of four: noise hits both sides of a pair alike


def overhead_check(path: Path, rounds: int = 40, round_seconds: float = 0.01) -> dict:
    """The harness's timed loop against a bare `interpreter.invoke()` loop on the same TFLite file,
    interleaved in short rounds (A B B A ...) so a busy machine slows both alike. Each round pairs
    the two loops' mean time per call; the ratio is the median of the pairs' ratios.
    `exceeds` is true only when even the pairs' lower quartile is above OVERHEAD_LIMIT: an overhead
    the noise cannot explain."""
    from ai_edge_litert.interpreter import Interpreter

    from fmnist.runtimes import get_runtime
    session = get_runtime("litert").load(path, "tflite", threads=1)
    session.bind(np.zeros((1, 28, 28), dtype=np.float32))
    bare = Interpreter(model_path=str(path), num_threads=1)
    bare.allocate_tensors()
    invoke = bare.invoke
    for _ in range(200):
        session.invoke()
        invoke()
    calls = max(50, int(round_seconds * 1e6 / max(latency_stats(time_calls(session.invoke, 50, 0, 50))["p50"], 0.1)))

    def harness_round():  # the mean per call, as the bare loop's: like is compared with like
        return latency_stats(time_calls(session.invoke, calls, 0, calls))["mean"]

    def bare_round():
        start = time.perf_counter_ns()
        for _ in range(calls):
            invoke()
        return (time.perf_counter_ns() - start) / calls / 1e3

    pairs = []
    for i in range(rounds):
        if i % 2:
            b, h = bare_round(), harness_round()
        else:
            h, b = harness_round(), bare_round()
        pairs.append((h, b))
    ratios = np.array([h / b for h, b in pairs])
    low = float(np.percentile(ratios, OVERHEAD_QUANTILE))
    return {"artifact": str(path), "rounds": rounds, "calls_per_round": calls,
            "harness_us": float(np.median([h for h, _ in pairs])),
            "bare_loop_us": float(np.median([b for _, b in pairs])),
            "ratio": float(np.median(ratios)), "ratio_lower_quartile": low,
            "ratio_upper_quartile": float(np.percentile(ratios, 100 - OVERHEAD_QUANTILE)),
            "limit": OVERHEAD_LIMIT, "exceeds": low > OVERHEAD_LIMIT}
