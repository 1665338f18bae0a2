"""The result row of results/benchmark.json, defined once: every stage builds rows through `row()`,
docs/results.md's contract table is tested against `Row`, and a field nobody defined is a programming error.

TF-free: the device runner builds its rows here too.
"""
from __future__ import annotations

from typing import TypedDict


class Row(TypedDict, total=False):
    """One measured (or failed, or unavailable) artifact on one runtime on one machine."""
    # what was measured, and where
    model: str                       # registered model name (a user model: its file's stem or factory's name)
    source: str                      # seed README ("000".."004"), "own", or "user"
    origin: str                      # user models: the .keras/.h5/.onnx file or package.module:factory
    variant: str                     # base, qat, pruned-50, pruned-50-qat, ...
    format: str                      # keras, savedmodel, tflite, ..., onnx-int8
    runtime: str                     # keras, keras-predict, tensorflow, litert, onnxruntime, tflm, ...
    device: str                      # cpu, gpu, or the host running a microcontroller's interpreter
    provider: str                    # the runtime's kernels (XNNPACK/builtin, CPUExecutionProvider, ...)
    version: str                     # the runtime's version
    threads: int | None              # None: the runtime's own default (all cores)
    machine: str                     # "host" for fmnist-bench's own rows, or a device's label
    artifact_sha256: str             # which file was measured
    kind: str                        # measured (run on `machine`), or estimate (a compiler's model of a device)
    status: str                      # ok, estimated (kind estimate), error (with error), unavailable (error: why)
    error: str | None
    formats: list                    # unavailable rows: the formats this runtime would have run
    reused: bool                     # figures measured by an earlier run on this machine, file and code
    measured_on: str                 # the date of the run that published the row (a row a later run did not ask
    #                                  for is kept, while its file is unchanged, with its own date)
    # parity with the Keras source model, on all test images
    accuracy: float                  # top-1 on the test images, a fraction
    source_accuracy: float           # the Keras source model's, on the same images
    accuracy_delta: float
    agreement: float                 # top-1 agreement with the source model
    max_abs_diff: float              # of the class probabilities
    per_class_accuracy_delta: dict
    images: int                      # test images the parity figures are over
    flagged: bool                    # accuracy > 0.5 pts down, agreement < 99%, or a variant's own loss
    flag_reasons: list
    source_test_accuracy: float      # the Keras model's own test accuracy (its record)
    base_test_accuracy: float | None  # its base model's (variants)
    variant_flags: list              # the variant's own loss against its base, if any
    export_validation: dict          # the artifact's export gate: criterion, passed, figures
    # speed
    latency_us: dict                 # batch 1: p50, p90, p99, mean, std, n (microseconds)
    latency_scope: str               # what was timed
    load_ms: float                   # cold start: loading the artifact
    first_inference_ms: float        # cold start: the first call
    throughput_ips: float            # images per second at throughput_batch
    throughput_batch: int
    throughput_scope: str            # "measured" (timed calls at that batch), or how it was derived
    single_thread: dict              # latency_us and throughput_ips on one thread
    # size and memory
    size_bytes: int
    size_gzip_bytes: int
    params: int
    nonzero_params: int | None
    macs: int                        # multiply-accumulates per image
    peak_rss_mb: float               # the process's peak RSS at batch 1: load, warm-up, timed loop
    model_rss_mb: float              # the part of it above the process before loading (library imported)
    peak_rss_mb_large_batches: float  # the peak after the accuracy and throughput passes (larger batches)
    # runtime-specific
    delegated: bool                  # LiteRT: whether XNNPACK took the graph
    tflm: dict                       # TFLM: arena_bytes_min, arena_bytes_recorded, flash_bytes, ops,
    #                                  agreement_with_litert, latency_scope
    openvino: dict                   # OpenVINO: compute_precision (what its kernels ran at), kernels,
    #                                  inference_precision_hint, agreement_with_onnxruntime / _litert
    ethos_u: dict                    # Ethos-U (Vela estimate): accelerator, system_config, clock_hz, cycles_npu,
    #                                  cycles_total, inference_us, sram_bytes, flash_bytes, dram_bytes, npu_ops,
    #                                  cpu_ops, layers, warnings, estimated
    cortex_m: dict                   # Cortex-M (QEMU instruction count, estimate): core, instructions, macs,
    #                                  instructions_per_mac, clock_hz, inference_us, flash_weights_bytes,
    #                                  flash_code_bytes, ram_activation_bytes, stack_bytes, ram_bytes, layers
    op_profile: dict                 # per op: source, unit (µs, cycles or MACs), total, by_type shares, top ops,
    #                                  profiled_wall_us_mean


FIELDS = frozenset(Row.__annotations__)


def row(**fields) -> Row:
    """A result row; a field outside `Row` is a bug here, not a new column."""
    unknown = set(fields) - FIELDS
    if unknown:
        raise TypeError(f"not a result field: {', '.join(sorted(unknown))} (add it to fmnist.rows.Row)")
    return Row(**fields)
