"""Figures shared by export validation, the benchmark and the report: parity with the source
model, latency statistics, and every threshold they are judged by (defined here once)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

import numpy as np

MAX_ACCURACY_DROP = 0.005     # flag: accuracy more than 0.5 points below the source model
MIN_AGREEMENT = 0.99          # flag, and the export gate of quantized artifacts: top-1 agreement
FLOAT_TOLERANCE = 1e-4        # export gate of float artifacts: max |difference| of probabilities
FP16_TOLERANCE = 5e-3         # ... of float16 ones
VARIANT_MAX_DROP = 0.01       # a variant losing more than 1 point to its base model is flagged
VALIDATION_IMAGES = 1000      # the export gate's slice: the first 1,000 test images
# The regression alarm (bench/): a gate-passing artifact must stay within these on all test images,
# and every artifact within REGRESSION_SLACK of the agreement it had when it was exported.
REGRESSION_MAX_DROP, REGRESSION_MIN_AGREEMENT, REGRESSION_SLACK = 0.01, 0.985, 0.005


class Direction(str, Enum):
    AT_LEAST = "≥"
    AT_MOST = "≤"


@dataclass(frozen=True)
class Target:
    """A figure a model (or the whole zoo) must show: the metric, its bound, and which way is good.
    The report finds each metric's figure (fmnist.report.analysis.TARGET_FIGURES) and judges it here."""
    metric: str
    bound: float
    direction: Direction

    def met(self, value: float) -> bool:
        return value >= self.bound if self.direction is Direction.AT_LEAST else value <= self.bound


def at_least(metric: str, bound: float) -> Target:
    return Target(metric, bound, Direction.AT_LEAST)


def at_most(metric: str, bound: float) -> Target:
    return Target(metric, bound, Direction.AT_MOST)


# The zoo's headline targets: an edge row against the Keras call, a full-integer file against its float one
SPEEDUP_TARGET = at_least("speedup", 100)
INT8_SHRINK_TARGET = at_least("int8_shrink", 3.5)


def parity(reference: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Compare an artifact's class probabilities with the source model's on the same images."""
    ref_top, top = reference.argmax(axis=1), probabilities.argmax(axis=1)
    ref_acc, acc = float(np.mean(ref_top == labels)), float(np.mean(top == labels))
    per_class = {int(c): float(np.mean(top[labels == c] == c) - np.mean(ref_top[labels == c] == c))
                 for c in np.unique(labels)}
    return {"accuracy": acc, "source_accuracy": ref_acc, "accuracy_delta": acc - ref_acc,
            "agreement": float(np.mean(top == ref_top)),
            "max_abs_diff": float(np.max(np.abs(probabilities.astype(np.float64) - reference))),
            "per_class_accuracy_delta": per_class, "images": int(len(labels))}


def flags(figures: dict) -> list[str]:
    """Why an artifact's parity with its source is not good enough (empty when it is)."""
    reasons = []
    if figures["accuracy_delta"] < -MAX_ACCURACY_DROP:
        reasons.append(f"accuracy {100 * figures['accuracy_delta']:+.2f} pts")
    if figures["agreement"] < MIN_AGREEMENT:
        reasons.append(f"agreement {100 * figures['agreement']:.2f}%")
    return reasons


def variant_flags(accuracy: float, base_accuracy: float | None) -> list[str]:
    """Why a variant's own (Keras) accuracy is a loss against its base model's."""
    if base_accuracy is not None and accuracy < base_accuracy - VARIANT_MAX_DROP:
        return [f"variant {100 * (accuracy - base_accuracy):+.2f} pts vs base"]
    return []


def time_calls(call, min_calls: int, min_seconds: float, max_calls: int) -> list[int]:
    """Per-call nanoseconds of `call()`: at least `min_calls` and `min_seconds`, at most `max_calls`."""
    clock, samples = time.perf_counter_ns, []
    deadline = clock() + int(min_seconds * 1e9)
    while len(samples) < max_calls and (len(samples) < min_calls or clock() < deadline):
        start = clock()
        call()
        samples.append(clock() - start)
    return samples


def latency_stats(samples_ns) -> dict:
    """p50/p90/p99/mean/std of per-call times, in microseconds."""
    us = np.asarray(samples_ns, dtype=np.float64) / 1e3
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(us.mean()),
            "std": float(us.std()), "n": int(us.size)}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both lower latency and higher accuracy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
