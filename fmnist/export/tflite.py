"""TFLite through the converter from the Keras model: float32, float16, dynamic-range, full int8,
and 16x8 (int16 activations, int8 weights: the activation precision int8 lacks on low-margin models)."""
from __future__ import annotations

import warnings
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


def _converter(model, quantization: str, ctx):
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization in ("int8", "int16x8", "int8-mixed"):
        converter.representative_dataset = lambda: ([image[None]] for image in ctx.calibration)
    if quantization in ("int8", "int16x8"):
        ops, io_type = {"int8": (tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.int8),
                        "int16x8": (tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                                    tf.int16)}[quantization]
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
        path.write_bytes(_quiet(_converter(_float_model(model, ctx), "none", ctx).convert))
        ctx.memo["tflite-float"] = path
    return ctx.memo["tflite-float"]


def _layer_errors(model, path: Path, ctx) -> list[dict]:
    from fmnist.quantization import layer_errors
    return layer_errors(path, _float_graph(model, ctx), ctx.calibration[:ERROR_IMAGES])


class TFLite(Format):
    runtime = "litert"

    def __init__(self, name, quantization, quantized, tolerance=None):
        self.name, self.filename = name, "model.tflite"
        self.quantization, self.quantized, self.tolerance = quantization, quantized, tolerance
        self.calibrated = quantization in ("int8", "int16x8", "int8-mixed")
        self.full_integer = quantization in ("int8", "int16x8")
        self.activation_bits = {"int8": 8, "int8-mixed": 8, "int16x8": 16}.get(quantization)
        self.float_counterpart = "tflite" if quantized else None

    def not_for(self, variant):
        if variant.quantization_aware and self.quantization in ("float16", "dynamic-range"):
            return ("the converter makes a quantization-aware model full int8 under any optimisation, "
                    "so this would be tflite-int8 with float I/O under another name")
        return None

    def settings(self):
        return {**super().settings(), "quantization": self.quantization,
                "layer_errors": ERROR_IMAGES if self.calibrated else None}

    def convert(self, model, target, ctx):
        # 16x8 of a quantization-aware model: TF 2.21's converter refuses it for the fake-quant graph
        # ("'tfl.softmax' op failed to verify that input and output must have same element type"),
        # so its trained weights are quantized post-training, from the float twin, like any model's
        twin = self.quantization == "int16x8" and ctx.variant.quantization_aware
        source = _float_model(model, ctx) if twin else model
        target.write_bytes(_quiet(_converter(source, self.quantization, ctx).convert))
        details = {"quantization": self.quantization, "converter": "TFLiteConverter.from_keras_model",
                   "converter_version": metadata.version("tensorflow"), "io": io_details(target)}
        if twin:
            details["source"] = ("the quantization-aware model's weights without its fake-quant nodes, "
                                 "calibrated post-training (the converter refuses 16x8 for a fake-quant graph)")
        if self.calibrated:
            details["layer_errors"] = ctx.memo[f"layer_errors:{self.quantization}"] = _layer_errors(model, target, ctx)
        return details


class TFLiteMixed(TFLite):
    """The rescue for a model int8 hurts: full int8, except the layer that loses the most SQNR
    (measured on a plain int8 conversion, see fmnist.quantization) stays float, through the
    quantization debugger's deny-list. Float I/O, QUANTIZE/DEQUANTIZE around the float layer."""

    def __init__(self):
        super().__init__("tflite-int8-mixed", "int8-mixed", quantized=True)

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
            probe.write_bytes(_quiet(_converter(model, "int8", ctx).convert))
            ctx.memo["layer_errors:int8"] = _layer_errors(model, probe, ctx)
        worst = worst_layer(ctx.memo["layer_errors:int8"])
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[worst["tensor"]] if worst else [])

        def mixed():
            return tf.lite.experimental.QuantizationDebugger(
                converter=_converter(model, "int8-mixed", ctx), debug_options=options,
                debug_dataset=lambda: ([image[None]] for image in ctx.calibration[:ERROR_IMAGES]),
            ).get_nondebug_quantized_model()
        target.write_bytes(_quiet(mixed))
        return {"quantization": "int8, one layer float", "float_layer": worst,
                "converter": "TFLiteConverter.from_keras_model + QuantizationDebugger deny-list",
                "converter_version": metadata.version("tensorflow"), "io": io_details(target),
                "layer_errors": _layer_errors(model, target, ctx)}


register_format(TFLite("tflite", "none", quantized=False, tolerance=FLOAT_TOLERANCE))
register_format(TFLite("tflite-fp16", "float16", quantized=False, tolerance=FP16_TOLERANCE))
register_format(TFLite("tflite-dynamic", "dynamic-range", quantized=True))
register_format(TFLite("tflite-int8", "int8", quantized=True))
register_format(TFLite("tflite-int16x8", "int16x8", quantized=True))
register_format(TFLiteMixed())
