"""TFLite's quantization constants, computed as its kernels' Prepare step does (in double, from the
float32 scales stored in the file), so the generated C gets the very multipliers TFLM uses."""
from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
SOFTMAX_DIFF_INTEGER_BITS = 5  # kScaledDiffIntegerBits of TFLite's int8 softmax


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = multiplier * 2**(shift - 31), multiplier in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    fixed = int(math.floor(fraction * (1 << 31) + 0.5))  # TfLiteRound: half away from zero (positive here)
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def channel_multipliers(input_scale: float, filter_scales, output_scale: float, channels: int):
    """Per-channel (multiplier, shift) lists as PopulateConvolutionQuantizationParams computes them;
    a per-tensor filter scale is repeated over the channels."""
    scales = [float(s) for s in filter_scales] if len(filter_scales) > 1 else [float(filter_scales[0])] * channels
    pairs = [quantize_multiplier(float(np.float32(input_scale)) * s / float(np.float32(output_scale))) for s in scales]
    return [m for m, _ in pairs], [s for _, s in pairs]


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: NONE, RELU, RELU_N1_TO_1, RELU6 clamps in the output's units."""
    def quantized(value: float) -> int:
        ratio = float(np.float32(value) / np.float32(scale))  # float32 division, as TFLite
        return zero_point + int(math.copysign(math.floor(abs(ratio) + 0.5), ratio))  # std::round
    bounds = {0: (INT8_MIN, INT8_MAX), 1: (quantized(0.0), INT8_MAX), 2: (quantized(-1.0), quantized(1.0)),
              3: (quantized(0.0), quantized(6.0))}
    if activation not in bounds:
        raise ValueError(f"fused activation {activation} has no integer form in TFLite's int8 kernels")
    low, high = bounds[activation]
    return max(INT8_MIN, low), min(INT8_MAX, high)


def same_padding(in_size: int, filter_size: int, stride: int, dilation: int, out_size: int) -> int:
    """ComputePaddingHeightWidth's leading pad: half the total, rounded down."""
    effective = (filter_size - 1) * dilation + 1
    return max((out_size - 1) * stride + effective - in_size, 0) // 2


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """QuantizedMeanOrSum's requantization of a sum of `count` values: the input-to-output
    multiplier with 1 / count folded in, shifted first to keep its precision (int64 arithmetic)."""
    multiplier, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return int((multiplier << extra) // count), shift - extra


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input multiplier, left shift, diff_min) as TFLM's int8 softmax prepares them
    (PreprocessSoftmaxScaling and CalculateInputRadius, double rounding)."""
    bits = SOFTMAX_DIFF_INTEGER_BITS
    real = min(float(beta) * float(np.float32(input_scale)) * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    radius = math.floor(((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift))
    return multiplier, left_shift, -radius
