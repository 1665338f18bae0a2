"""results/benchmark.schema.json: the JSON Schema of benchmark.json, generated from `rows.Row`'s type
hints, so a field added to Row is in the schema of the next publish and a user's script can check a
document (or a single record) against the contract instead of reading our code."""
from __future__ import annotations

import types
import typing

from fmnist.rows import Row

DIALECT = "https://json-schema.org/draft/2020-12/schema"
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
              type(None): "null"}
# The results contract (design.md): what every ok row has, and what a user's script may rely on.
CONTRACT = ("model", "source", "variant", "format", "runtime", "device", "provider", "threads", "status",
            "accuracy", "accuracy_delta", "agreement", "max_abs_diff", "flagged", "latency_us", "load_ms",
            "first_inference_ms", "throughput_ips", "throughput_batch", "size_bytes", "size_gzip_bytes", "params",
            "macs", "peak_rss_mb", "artifact_sha256")
REQUIRED_BY_STATUS = {"ok": CONTRACT,
                      "estimated": ("model", "source", "variant", "format", "artifact_sha256", "kind"),
                      "error": ("error",), "unavailable": ("error",)}
LATENCY = {"type": "object", "description": "batch-1 latency in microseconds",
           "properties": {**{k: {"type": "number"} for k in ("p50", "p90", "p99", "mean", "std")},
                          "n": {"type": "integer"}},
           "required": ["p50", "p90", "p99", "mean", "std", "n"]}
FRACTIONS = ("accuracy", "source_accuracy", "agreement")  # fractions in [0, 1]


def json_type(hint) -> dict:
    """`int | None` -> {"type": ["integer", "null"]}: the JSON types a Python annotation allows."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return {"type": [JSON_TYPES[h] for h in typing.get_args(hint)]}
    return {"type": JSON_TYPES[typing.get_origin(hint) or hint]}


def record_schema() -> dict:
    """One row: every field of Row and no other, the contract's fields required of an ok row."""
    properties = {name: json_type(hint) for name, hint in typing.get_type_hints(Row).items()}
    properties["status"]["enum"] = list(REQUIRED_BY_STATUS)
    properties["latency_us"] = LATENCY
    for name in FRACTIONS:
        properties[name] |= {"minimum": 0, "maximum": 1}
    return {"type": "object", "title": "one result row (fmnist.rows.Row)", "properties": properties,
            "additionalProperties": False, "required": ["runtime", "status"],
            "allOf": [{"if": {"properties": {"status": {"const": status}}},
                       "then": {"required": list(required)}} for status, required in REQUIRED_BY_STATUS.items()]}


def document_schema() -> dict:
    """benchmark.json: `schema` 1, the environment, and the records; the run's other sections (settings,
    machines, trained, ...) may be added to, so they are described by type only."""
    return {"$schema": DIALECT, "title": "fmnist-edge results/benchmark.json", "type": "object",
            "$defs": {"record": record_schema()},
            "properties": {
                "schema": {"const": 1}, "complete": {"type": "boolean"},
                "environment": {"type": "object", "required": ["cpu", "cores", "python", "versions", "seed", "date"]},
                "machines": {"type": "object"}, "settings": {"type": "object"},
                "records": {"type": "array", "items": {"$ref": "#/$defs/record"}}},
            "required": ["schema", "environment", "records"]}
