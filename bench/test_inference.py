"""Batch-1 inference per (model, variant, format, runtime), and parity checks that fail when an export
degrades. Timings compare only against a baseline saved on the same machine (see README.md);
the parity thresholds are absolute for artifacts that passed their export gate, and relative to
the figures recorded at export for those kept below it (flagged): they must not get worse."""
import os
from pathlib import Path

import pytest
from conftest import job_id, load, require, slowed

from fmnist import regression

from fmnist import storage
from fmnist.overhead import overhead_check
from fmnist.runtimes import get_runtime
from fmnist.metrics import (REGRESSION_MAX_DROP, REGRESSION_MIN_AGREEMENT, REGRESSION_SLACK, VALIDATION_IMAGES,
                            parity)


def test_batch1_latency(benchmark, timed_job, test_set, baseline, injected, request):
    """The batch-1 call, timed by pytest-benchmark (stored and reported by it). With
    --baseline-compare, also timed against the baseline's artifact in interleaved rounds: fails when
    the paired ratio is confidently above 1 + regression.TOLERANCE."""
    session = load(timed_job)
    session.bind(test_set[0][:1])
    call = session.invoke
    if injected and injected[0] == timed_job.runtime:
        call = slowed(call, injected[1])
    benchmark.extra_info.update(model=timed_job.meta["model"], variant=timed_job.meta["variant"],
                                format=timed_job.format, runtime=timed_job.runtime, threads=1)
    benchmark(call)
    if request.config.getoption("--baseline-save"):
        baseline.save(timed_job)
    if request.config.getoption("--baseline-compare"):
        kept = baseline.load(timed_job)
        if kept is None:
            pytest.skip(f"no baseline kept for {job_id(timed_job)} (a new artifact): save one with --baseline-save")
        kept.bind(test_set[0][:1])
        found = regression.verdict(*regression.paired_rounds(kept.invoke, call))
        benchmark.extra_info["against_baseline"] = found
        assert found["verdict"] != "slower", (
            f"{job_id(timed_job)} regressed: {found['ratio']:.2f}x the baseline's batch-1 call (interval "
            f"{found['low']:.2f}-{found['high']:.2f} at {found['confidence']:.0%}, {found['pairs']} interleaved pairs)")


def test_parity_with_the_source_model(job, test_set):
    """On all test images; on the export gate's 1,000 for an artifact kept below its gate (to
    compare with what it scored then) and on a microcontroller runtime (TFLM's reference kernels
    take milliseconds an image on this host; the benchmark caches its full figures by file hash)."""
    session = load(job, threads=os.cpu_count())  # not timed: every core (LiteRT splits 16x8 passes)
    images, labels = test_set
    reference = storage.reference_probabilities(Path(job.reference))
    gate = job.meta.get("export_validation")
    below_gate = gate is not None and not gate["passed"]
    n = VALIDATION_IMAGES if below_gate or get_runtime(job.runtime).microcontroller else len(labels)
    figures = parity(reference[:n], session.predict(images[:n], batch_size=1000), labels[:n])
    if below_gate:  # it must still do as well as when it was exported
        assert figures["agreement"] >= gate["agreement"] - REGRESSION_SLACK, (figures, gate)
    else:
        assert figures["accuracy_delta"] >= -REGRESSION_MAX_DROP, figures
        assert figures["agreement"] >= REGRESSION_MIN_AGREEMENT, figures


def test_harness_times_the_runtime_call_not_itself(tflite_job):
    """Interleaved rounds of the harness's loop and a bare `interpreter.invoke()` loop; fails only
    when even the lower quartile of the paired ratios is over the limit (see overhead.overhead_check)."""
    require(tflite_job)
    result = overhead_check(Path(tflite_job.folder) / tflite_job.artifact)
    print(f"\n{tflite_job.meta['model']}: harness {result['harness_us']:.2f} µs, bare loop "
          f"{result['bare_loop_us']:.2f} µs, ratio {result['ratio']:.3f} "
          f"(quartiles {result['ratio_lower_quartile']:.3f}-{result['ratio_upper_quartile']:.3f})")
    assert not result["exceeds"], result
