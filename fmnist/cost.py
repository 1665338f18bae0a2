"""What a run cost and why: each stage's wall time, each training job's arithmetic against the
machine's own dense float32 rate (measured by the run, a matmul), and the whole run against the
floor that arithmetic sets. Training dominates a cold run; this says how far from the machine's
limit it ran."""
from __future__ import annotations

import datetime
import time

import numpy as np

TRAIN_IMAGES = 60_000
FLOP_PER_MAC_TRAINING = 6  # forward (2 per MAC) and backward (about twice the forward)


def dense_gflops(seconds: float = 2.0, size: int = 1024) -> float:
    """The machine's dense float32 rate on every core: the best of repeated `size`² matmuls."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pools, caches
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def _images(summary: dict) -> int:
    recipe = summary["recipe"]
    images = TRAIN_IMAGES - (recipe.get("holdout_size", 0) if recipe.get("validation") == "holdout" else 0)
    return min(images, summary["subset"]) if summary["subset"] else images


def run_cost(trained: list[dict], stage_seconds: dict, started: datetime.datetime, rate_gflops: float | None,
             wall: float | None = None) -> dict:
    """The run's cost document: training jobs (those this run trained are `this_run`), their FLOP
    (images x epochs x 6 x MACs) and rate, the floor (this run's training FLOP at the machine's dense
    rate) and the run's wall time against it. `wall`: the run's own (its stages overlap on the
    cluster), else the stages' sum; without a rate (a refresh mid-run) no floor is given."""
    jobs = []
    for s in (s for s in trained if s["epochs_run"]):  # a user model trained elsewhere cost nothing here
        flop = _images(s) * s["epochs_run"] * FLOP_PER_MAC_TRAINING * s["macs"]
        date = datetime.datetime.fromisoformat(s["environment"]["date"])
        jobs.append({"folder": s["model"] + ("" if s["variant"] == "base" else f"-{s['variant']}"),
                     "images": _images(s), "epochs": s["epochs_run"], "macs": s["macs"], "flop": flop,
                     "seconds": s["train_seconds"], "gflops": flop / s["train_seconds"] / 1e9,
                     "of_dense_rate": flop / s["train_seconds"] / 1e9 / rate_gflops if rate_gflops else None,
                     "this_run": date >= started})
    flop = sum(j["flop"] for j in jobs if j["this_run"])
    wall = sum(stage_seconds.values()) if wall is None else wall
    floor = flop / (rate_gflops * 1e9) if rate_gflops else None
    return {"stage_seconds": stage_seconds, "wall_seconds": wall, "dense_gflops": rate_gflops, "training": jobs,
            "training_flop_this_run": flop, "floor_seconds": floor, "wall_over_floor": wall / floor if floor else None}
