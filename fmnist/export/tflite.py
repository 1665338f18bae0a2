"""TFLite through the converter from the Keras model: float32, float16, dynamic-range, full int8,
and 16x8 (int16 activations, int8 weights: the activation precision int8 lacks on low-margin models)."""
from __future__ import annotations

import warnings
from importlib import metadata

from fmnist import stderr_muted
from fmnist.export import register_format
from fmnist.export.base import Format
from fmnist.metrics import FLOAT_TOLERANCE, FP16_TOLERANCE


def io_details(path) -> dict:
    """Input and output dtype, shape and (scale, zero point), read back from the written file."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(path))

    def describe(d):
        scale, zero_point = d["quantization"]
        return {"dtype": d["dtype"].__name__, "shape": [int(n) for n in d["shape"]],
                "scale": float(scale), "zero_point": int(zero_point)}
    return {"input": describe(interpreter.get_input_details()[0]),
            "output": describe(interpreter.get_output_details()[0])}


class TFLite(Format):
    runtime = "litert"

    def __init__(self, name, quantization, quantized, tolerance=None):
        self.name, self.filename = name, "model.tflite"
        self.quantization, self.quantized, self.tolerance = quantization, quantized, tolerance
        self.calibrated = self.full_integer = quantization in ("int8", "int16x8")
        self.float_counterpart = "tflite" if quantized else None

    def not_for(self, variant):
        if variant.quantization_aware and self.quantization in ("float16", "dynamic-range"):
            return ("the converter makes a quantization-aware model full int8 under any optimisation, "
                    "so this would be tflite-int8 with float I/O under another name")
        return None

    def settings(self):
        return {**super().settings(), "quantization": self.quantization}

    def convert(self, model, target, ctx):
        import tensorflow as tf
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if self.quantization != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if self.quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if self.calibrated:
            ops, io_type = {"int8": (tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.int8),
                            "int16x8": (tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                                        tf.int16)}[self.quantization]
            converter.representative_dataset = lambda: ([image[None]] for image in ctx.calibration)
            converter.target_spec.supported_ops = [ops]
            converter.inference_input_type = converter.inference_output_type = io_type
        with warnings.catch_warnings(), stderr_muted():  # the converter's own prints; errors still raise
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")  # harmless
            target.write_bytes(converter.convert())
        return {"quantization": self.quantization, "converter": "TFLiteConverter.from_keras_model",
                "converter_version": metadata.version("tensorflow"), "io": io_details(target)}


register_format(TFLite("tflite", "none", quantized=False, tolerance=FLOAT_TOLERANCE))
register_format(TFLite("tflite-fp16", "float16", quantized=False, tolerance=FP16_TOLERANCE))
register_format(TFLite("tflite-dynamic", "dynamic-range", quantized=True))
register_format(TFLite("tflite-int8", "int8", quantized=True))
register_format(TFLite("tflite-int16x8", "int16x8", quantized=True))
