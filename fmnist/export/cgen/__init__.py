"""The int8 TFLite graph as dependency-free C: parse the flatbuffer, plan steps and memory, emit
model.h/model.c. TensorFlow-free (the flatbuffer schema comes with LiteRT)."""
from __future__ import annotations

from fmnist.export.cgen.emit import identifier
from fmnist.export.cgen.graph import SUPPORTED, UnsupportedGraph, parse
from fmnist.export.cgen.plan import build


def generate(data: bytes, model: str, class_names) -> tuple[dict, dict]:
    """({"model.h": text, "model.c": text}, facts): raises UnsupportedGraph in one line."""
    from fmnist.export.cgen.emit import sources
    return sources(build(parse(data)), model, class_names)


__all__ = ["SUPPORTED", "UnsupportedGraph", "generate", "identifier"]
