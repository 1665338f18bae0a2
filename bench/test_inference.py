"""Batch-1 inference per (model, variant, format, runtime), and parity checks that fail when an export
degrades. Timings compare only against a baseline saved on the same machine (see README.md);
the parity thresholds are absolute."""
from pathlib import Path

import numpy as np
from conftest import require

from fmnist.harness import overhead_check
from fmnist.metrics import parity

# A regression alarm, a little looser than the report's flag (0.5 pts, 99%): it fails when an export
# got worse, not on the two pruned int8 rows that sit just under the flag by design of the data.
MAX_ACCURACY_DROP, MIN_AGREEMENT = 0.01, 0.985
MAX_HARNESS_OVERHEAD = 1.10


def test_batch1_latency(benchmark, job, session, test_set):
    session.bind(test_set[0][:1])
    benchmark.extra_info.update(model=job.meta["model"], variant=job.meta["variant"], format=job.format,
                                runtime=job.runtime, threads=1)
    benchmark(session.invoke)


def test_parity_with_the_source_model(job, session, test_set):
    images, labels = test_set
    figures = parity(np.load(job.reference), session.predict(images, batch_size=1000), labels)
    assert figures["accuracy_delta"] >= -MAX_ACCURACY_DROP, figures
    assert figures["agreement"] >= MIN_AGREEMENT, figures


def test_harness_times_the_runtime_call_not_itself(tflite_job):
    """The harness's p50 within 10% of a bare `interpreter.invoke()` loop on the same TFLite file."""
    require(tflite_job)
    result = overhead_check(Path(tflite_job.folder) / tflite_job.artifact)
    print(f"\n{tflite_job.meta['model']}: harness p50 {result['harness_p50_us']:.2f} µs, bare loop "
          f"{result['bare_loop_us']:.2f} µs, ratio {result['ratio']:.3f}")
    assert result["ratio"] <= MAX_HARNESS_OVERHEAD, result
