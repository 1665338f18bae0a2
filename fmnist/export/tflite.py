"""TFLite through the converter from the Keras model: float32, float16, dynamic-range and full int8."""
from __future__ import annotations

import warnings
from importlib import metadata

from fmnist.export import register_format
from fmnist.export.base import Format


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
        self.calibrated = quantization == "int8"

    def not_for(self, variant):
        if variant.endswith("qat") and self.quantization in ("float16", "dynamic-range"):
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
        if self.quantization == "int8":
            converter.representative_dataset = lambda: ([image[None]] for image in ctx.calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": harmless
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            target.write_bytes(converter.convert())
        return {"quantization": self.quantization, "converter": "TFLiteConverter.from_keras_model",
                "converter_version": metadata.version("tensorflow"), "io": io_details(target)}


register_format(TFLite("tflite", "none", quantized=False, tolerance=1e-4))
register_format(TFLite("tflite-fp16", "float16", quantized=False, tolerance=5e-3))
register_format(TFLite("tflite-dynamic", "dynamic-range", quantized=True))
register_format(TFLite("tflite-int8", "int8", quantized=True))
