"""Figures shared by export validation and the benchmark: parity with the source model, and
latency statistics."""
from __future__ import annotations

import numpy as np


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


def latency_stats(samples_ns) -> dict:
    """p50/p90/p99/mean/std of per-call times, in microseconds."""
    us = np.asarray(samples_ns, dtype=np.float64) / 1e3
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(us.mean()),
            "std": float(us.std()), "n": int(us.size)}
