"""The regression statistic on synthetic timings of a drifting machine: ±40% drift between and
within runs, and a genuine 1.3x slowdown. Paired rounds catch the slowdown every time and take the
drift for no change."""
import numpy as np
import pytest

from fmnist import regression


def drifting_rounds(slowdown: float, seed: int, rounds: int = regression.ROUNDS):
    """Baseline and current means of A B B A rounds on a machine whose speed wanders by up to ±40%
    (slowly, as a shared VM's does) with a few percent of noise on every measurement."""
    rng = np.random.default_rng(seed)
    t = np.arange(2 * rounds)
    level = np.exp(rng.uniform(-0.34, 0.34))  # this run's speed: e^0.34 = 1.4
    speed = level * np.exp(0.34 * np.sin(t / rng.uniform(3, 9) + rng.uniform(0, 6)))  # and its wander
    noise = rng.normal(1, 0.03, size=2 * rounds)
    times = 100 * speed * noise
    order = [(2 * i, 2 * i + 1) if i % 2 == 0 else (2 * i + 1, 2 * i) for i in range(rounds)]
    return [times[b] for b, _ in order], [times[c] * slowdown for _, c in order]


@pytest.mark.parametrize("seed", range(20))
def test_a_30_percent_slowdown_under_drift_is_caught(seed):
    found = regression.verdict(*drifting_rounds(1.3, seed))
    assert found["verdict"] == "slower" and 1.15 < found["ratio"] < 1.45, found


@pytest.mark.parametrize("seed", range(20))
def test_pure_drift_is_no_change(seed):
    found = regression.verdict(*drifting_rounds(1.0, seed))
    assert found["verdict"] == "unchanged" and 0.9 < found["ratio"] < 1.1, found


def test_medians_from_two_different_times_would_have_called_drift_a_regression():
    """What the old check did: a baseline median from one time, the current median from another."""
    false_alarms = 0
    for seed in range(20):
        base, _ = drifting_rounds(1.0, seed)
        _, later = drifting_rounds(1.0, seed + 1000)
        false_alarms += np.median(later) > 1.15 * np.median(base)
    assert false_alarms >= 2  # the drift alone trips a 15% gate on separate medians


def test_paired_rounds_time_both_sides_alternately():
    calls = []
    base, cur = regression.paired_rounds(lambda: calls.append("b"), lambda: calls.append("c"), rounds=4,
                                         round_seconds=0.0001)
    assert len(base) == len(cur) == 4 and all(v > 0 for v in base + cur)
    timed = calls[60:]  # after the warm-up (20 calls each) and the 20 that size the rounds
    blocks = [timed[i] for i in range(0, len(timed), len(timed) // 8)]
    assert blocks == ["b", "c", "c", "b", "b", "c", "c", "b"]
