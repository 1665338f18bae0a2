"""Export formats: each converts a trained tf_keras model into one artifact, then validates it.

Adding a format is one module with a `Format` subclass and one `register_format` call.
"""
from __future__ import annotations

from fmnist.export.base import ExportContext, Format, UnknownFormat

_FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    _FORMATS[fmt.name] = fmt
    return fmt


def list_formats() -> list[str]:
    return list(_FORMATS)


def get_format(name: str) -> Format:
    try:
        return _FORMATS[name]
    except KeyError:
        raise UnknownFormat(f"unknown format {name!r}; known formats: {', '.join(_FORMATS)}, all") from None


from fmnist.export import savedmodel, tflite, onnx, tflm  # noqa: E402,F401,I001  (registrations, in table order)

__all__ = ["ExportContext", "Format", "UnknownFormat", "get_format", "list_formats", "register_format"]
