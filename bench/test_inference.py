"""Batch-1 inference per (model, variant, format, runtime), and parity checks that fail when an export
degrades. Timings compare only against a baseline saved on the same machine (see README.md);
the parity thresholds are absolute for artifacts that passed their export gate, and relative to
the figures recorded at export for those kept below it (flagged): they must not get worse."""
from pathlib import Path

from conftest import require

from fmnist import storage
from fmnist.harness import overhead_check
from fmnist.metrics import (REGRESSION_MAX_DROP, REGRESSION_MIN_AGREEMENT, REGRESSION_SLACK, VALIDATION_IMAGES,
                            parity)


def test_batch1_latency(benchmark, job, session, test_set):
    session.bind(test_set[0][:1])
    benchmark.extra_info.update(model=job.meta["model"], variant=job.meta["variant"], format=job.format,
                                runtime=job.runtime, threads=1)
    benchmark(session.invoke)


def test_parity_with_the_source_model(job, session, test_set):
    images, labels = test_set
    reference = storage.reference_probabilities(Path(job.reference))
    figures = parity(reference, session.predict(images, batch_size=1000), labels)
    gate = job.meta.get("export_validation")
    if gate is None or gate["passed"]:
        assert figures["accuracy_delta"] >= -REGRESSION_MAX_DROP, figures
        assert figures["agreement"] >= REGRESSION_MIN_AGREEMENT, figures
    else:  # kept below its gate at export: it must still do as well as it did then, on the same slice
        n = VALIDATION_IMAGES
        now = parity(reference[:n], session.predict(images[:n], batch_size=n), labels[:n])
        assert now["agreement"] >= gate["agreement"] - REGRESSION_SLACK, (now, gate)


def test_harness_times_the_runtime_call_not_itself(tflite_job):
    """Interleaved rounds of the harness's loop and a bare `interpreter.invoke()` loop; fails only
    when even the lower quartile of the paired ratios is over the limit (see harness.overhead_check)."""
    require(tflite_job)
    result = overhead_check(Path(tflite_job.folder) / tflite_job.artifact)
    print(f"\n{tflite_job.meta['model']}: harness p50 {result['harness_p50_us']:.2f} µs, bare loop "
          f"{result['bare_loop_us']:.2f} µs, ratio {result['ratio']:.3f} "
          f"(quartiles {result['ratio_lower_quartile']:.3f}-{result['ratio_upper_quartile']:.3f})")
    assert not result["exceeds"], result
