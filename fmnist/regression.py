"""A speed regression check that survives a drifting machine: the baseline artifact and the current
one are timed alternately in one window (A B B A rounds), so whatever slows the machine slows both
sides of a pair alike, and the verdict rests on the paired ratios' confidence interval, not on two
medians taken at different times. TF-free; bench/ (pytest-benchmark) stores and reports the figures."""
from __future__ import annotations

import math
import time

import numpy as np

TOLERANCE = 0.10        # a change within ±10% is no change (two loads of one file can differ by ~5-10%)
CONFIDENCE = 0.95       # of the interval of the median paired ratio
ROUNDS = 24             # pairs of (baseline, current) means
BOOTSTRAP = 4000


def _mean_call_us(call, calls: int) -> float:
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(calls):
        call()
    return (clock() - start) / calls / 1e3


def paired_rounds(baseline, current, rounds: int = ROUNDS, round_seconds: float = 0.005) -> tuple[list, list]:
    """Per round, the mean time per call of `baseline()` and of `current()` (µs), in A B B A order so
    neither side always runs first; each side runs about `round_seconds` a round."""
    for _ in range(20):  # warm-up, both
        baseline()
        current()
    calls = max(10, int(round_seconds * 1e6 / max(_mean_call_us(baseline, 20), 0.1)))
    base, cur = [], []
    for i in range(rounds):
        if i % 2:
            c, b = _mean_call_us(current, calls), _mean_call_us(baseline, calls)
        else:
            b, c = _mean_call_us(baseline, calls), _mean_call_us(current, calls)
        base.append(b)
        cur.append(c)
    return base, cur


def verdict(baseline: list, current: list, tolerance: float = TOLERANCE, confidence: float = CONFIDENCE,
            seed: int = 0) -> dict:
    """The median of current/baseline over the pairs, its bootstrap confidence interval, and the
    verdict: "slower" when even the interval's lower end is above 1 + tolerance, "faster" when its
    upper end is below 1 - tolerance, else "unchanged"."""
    ratios = np.log(np.asarray(current, dtype=float) / np.asarray(baseline, dtype=float))
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(ratios, size=(BOOTSTRAP, len(ratios)), replace=True), axis=1)
    low, high = np.exp(np.quantile(medians, [(1 - confidence) / 2, (1 + confidence) / 2]))
    ratio = math.exp(float(np.median(ratios)))
    found = "slower" if low > 1 + tolerance else "faster" if high < 1 - tolerance else "unchanged"
    return {"ratio": ratio, "low": float(low), "high": float(high), "pairs": len(ratios), "confidence": confidence,
            "tolerance": tolerance, "verdict": found}
