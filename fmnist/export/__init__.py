"""Export formats: each converts a trained tf_keras model into one artifact, then validates it.

Adding a format is one module with a `Format` subclass and one `register_format` call.
"""
from __future__ import annotations

from fmnist.export.base import ExportContext, Format
from fmnist.registry import Registry

_FORMATS = Registry("format")
register_format, list_formats, get_format = _FORMATS.register, _FORMATS.names, _FORMATS.get

from fmnist.export import savedmodel, tflite, onnx, tflm, c  # noqa: E402,F401,I001  (registrations, in table order)

__all__ = ["ExportContext", "Format", "get_format", "list_formats", "register_format"]
