"""TFLite through the converter from the Keras model: float32, float16, dynamic-range, full int8,
and 16x8 (int16 activations, int8 weights: the activation precision int8 lacks on low-margin models)."""
from __future__ import annotations

import warnings
from enum import Enum
from importlib import metadata
from pathlib import Path

from fmnist import stderr_muted
from fmnist.export import register_format
from fmnist.export.base import Format
from fmnist.metrics import FLOAT_TOLERANCE, FP16_TOLERANCE


def io_details(path) -> dict:
    """Input and output dtype, shape and (scale, zero point), read back from the written file."""
    from ai_edge_litert.interpreter import Interpreter
    with stderr_muted():
        interpreter = Interpreter(model_path=str(path))

    def describe(d):
        scale, zero_point = d["quantization"]
        return {"dtype": d["dtype"].__name__, "shape": [int(n) for n in d["shape"]],
                "scale": float(scale), "zero_point": int(zero_point)}
    return {"input": describe(interpreter.get_input_details()[0]),
            "output": describe(interpreter.get_output_details()[0])}


ERROR_IMAGES = 200  # calibration images the per-layer error is measured on


class Mode(str, Enum):
    """The converter's quantization modes (a str, so manifests and cache keys read as before)."""
    FLOAT32 = "none"
    FLOAT16 = "float16"
    DYNAMIC_RANGE = "dynamic-range"
    INT8 = "int8"                # full integer, int8 activations and I/O
    INT16X8 = "int16x8"          # full integer, int16 activations and I/O, int8 weights
    INT8_MIXED = "int8-mixed"    # int8, one layer kept float (the rescue)

    @property
    def calibrated(self) -> bool:
        return self in (Mode.INT8, Mode.INT16X8, Mode.INT8_MIXED)

    @property
    def full_integer(self) -> bool:
        return self in (Mode.INT8, Mode.INT16X8)

    @property
    def activation_bits(self) -> int | None:
        return {Mode.INT8: 8, Mode.INT8_MIXED: 8, Mode.INT16X8: 16}.get(self)


def _converter(model, mode: Mode, ctx):
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode is not Mode.FLOAT32:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode is Mode.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    if mode.calibrated:
        converter.representative_dataset = lambda: ([image[None]] for image in ctx.calibration)
    if mode.full_integer:
        ops, io_type = {Mode.INT8: (tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.int8),
                        Mode.INT16X8: (tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                                       tf.int16)}[mode]
        converter.target_spec.supported_ops = [ops]
        converter.inference_input_type = converter.inference_output_type = io_type
    return converter


def _quiet(convert):
    with warnings.catch_warnings(), stderr_muted():  # the converter's own prints; errors still raise
        warnings.simplefilter("ignore")  # "Statistics for quantized inputs...", the debugger's tf.lite.Interpreter
        return convert()


def _float_model(model, ctx):
    """The model as a float network, once per export run: itself, or a quantization-aware model's
    float twin (the converter makes any fake-quant graph int8, whatever it is asked)."""
    if "float-model" not in ctx.memo:
        from fmnist.models import create_model
        ctx.memo["float-model"] = (ctx.variant.float_twin(model, create_model(ctx.model))
                                   if ctx.variant.quantization_aware else model)
    return ctx.memo["float-model"]


def _float_graph(model, ctx) -> Path:
    """The model's float TFLite graph in the scratch folder, once per export run: what the
    per-layer error of a quantized graph is measured against."""
    if "tflite-float" not in ctx.memo:
        path = ctx.scratch / "float.tflite"
        path.write_bytes(_quiet(_converter(_float_model(model, ctx), Mode.FLOAT32, ctx).convert))
        ctx.memo["tflite-float"] = path
    return ctx.memo["tflite-float"]


def _layer_errors(model, path: Path, ctx) -> list[dict]:
    from fmnist.quantization import layer_errors
    return layer_errors(path, _float_graph(model, ctx), ctx.calibration[:ERROR_IMAGES])


class TFLite(Format):
    runtime = "litert"

    def __init__(self, name, quantization: Mode, quantized, tolerance=None):
        self.name, self.filename = name, "model.tflite"
        self.quantization, self.quantized, self.tolerance = quantization, quantized, tolerance
        self.calibrated, self.full_integer = quantization.calibrated, quantization.full_integer
        self.activation_bits = quantization.activation_bits
        self.float_counterpart = "tflite" if quantized else None

    def not_for(self, variant):
        if variant.quantization_aware and self.quantization in (Mode.FLOAT16, Mode.DYNAMIC_RANGE):
            return ("the converter makes a quantization-aware model full int8 under any optimisation, "
                    "so this would be tflite-int8 with float I/O under another name")
        return None

    def settings(self):
        return {**super().settings(), "quantization": self.quantization.value,
                "layer_errors": ERROR_IMAGES if self.calibrated else None}

    def convert(self, model, target, ctx):
        # 16x8 of a quantization-aware model: TF 2.21's converter refuses it for the fake-quant graph
        # ("'tfl.softmax' op failed to verify that input and output must have same element type"),
        # so its trained weights are quantized post-training, from the float twin, like any model's
        twin = self.quantization is Mode.INT16X8 and ctx.variant.quantization_aware
        source = _float_model(model, ctx) if twin else model
        target.write_bytes(_quiet(_converter(source, self.quantization, ctx).convert))
        details = {"quantization": self.quantization.value, "converter": "TFLiteConverter.from_keras_model",
                   "converter_version": metadata.version("tensorflow"), "io": io_details(target)}
        if twin:
            details["source"] = ("the quantization-aware model's weights without its fake-quant nodes, "
                                 "calibrated post-training (the converter refuses 16x8 for a fake-quant graph)")
        if self.calibrated:
            details["layer_errors"] = ctx.memo[f"layer_errors:{self.quantization.value}"] = \
                _layer_errors(model, target, ctx)
        return details


class TFLiteMixed(TFLite):
    """The rescue for a model int8 hurts: full int8, except the layer that loses the most SQNR
    (measured on a plain int8 conversion, see fmnist.quantization) stays float, through the
    quantization debugger's deny-list. Float I/O, QUANTIZE/DEQUANTIZE around the float layer."""

    def __init__(self):
        super().__init__("tflite-int8-mixed", Mode.INT8_MIXED, quantized=True)

    def not_for(self, variant):
        if variant.quantization_aware:
            return ("TensorFlow's quantization debugger cannot re-quantize a quantization-aware model; its own "
                    "tflite-int8 is that model's answer to int8 error")
        return super().not_for(variant)

    def convert(self, model, target, ctx):
        import tensorflow as tf

        from fmnist.quantization import worst_layer
        if "layer_errors:int8" not in ctx.memo:  # tflite-int8 was not exported in this run: measure a probe
            probe = ctx.scratch / "int8-probe.tflite"
            probe.write_bytes(_quiet(_converter(model, Mode.INT8, ctx).convert))
            ctx.memo["layer_errors:int8"] = _layer_errors(model, probe, ctx)
        worst = worst_layer(ctx.memo["layer_errors:int8"])
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[worst["tensor"]] if worst else [])

        def mixed():
            return tf.lite.experimental.QuantizationDebugger(
                converter=_converter(model, Mode.INT8_MIXED, ctx), debug_options=options,
                debug_dataset=lambda: ([image[None]] for image in ctx.calibration[:ERROR_IMAGES]),
            ).get_nondebug_quantized_model()
        target.write_bytes(_quiet(mixed))
        return {"quantization": "int8, one layer float", "float_layer": worst,
                "converter": "TFLiteConverter.from_keras_model + QuantizationDebugger deny-list",
                "converter_version": metadata.version("tensorflow"), "io": io_details(target),
                "layer_errors": _layer_errors(model, target, ctx)}


register_format(TFLite("tflite", Mode.FLOAT32, quantized=False, tolerance=FLOAT_TOLERANCE))
register_format(TFLite("tflite-fp16", Mode.FLOAT16, quantized=False, tolerance=FP16_TOLERANCE))
register_format(TFLite("tflite-dynamic", Mode.DYNAMIC_RANGE, quantized=True))
register_format(TFLite("tflite-int8", Mode.INT8, quantized=True))
register_format(TFLite("tflite-int16x8", Mode.INT16X8, quantized=True))
register_format(TFLiteMixed())
