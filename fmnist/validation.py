"""One validation for every result row that comes from outside this run (TF-free).

A device's rows reach results/ by `fmnist-bench merge` or by a file someone put in results/devices/;
both go through `device_result_problem` at merge and again at every publish, so an edited, junk or
hostile file is left out of the pages (with one warning naming it) and never ends a run. The host's
own rows pass `row_problem` too: a non-finite figure becomes an error row, never a published NaN.
"""
from __future__ import annotations

import math
import re
import typing

from fmnist.environment import HOST_LABEL, valid_label
from fmnist.rows import FIELDS, Row

STATUSES = ("ok", "estimated", "error", "unavailable")
KINDS = ("measured", "estimate")
FRACTIONS = {"accuracy", "source_accuracy", "agreement", "max_abs_diff", "source_test_accuracy",
             "base_test_accuracy"}
MAX_FIGURE = 1e13        # bytes, MACs, images per second: far above any real row, far below overflow
MAX_TEXT = 2_000
MAX_DEPTH = 6
# names shown as they are in pages and file names: letters, digits and a few separators, no markup
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.,:;()@/+#=~\-]{0,199}")
NAME_FIELDS = ("model", "source", "variant", "format", "runtime", "machine", "status", "kind", "version", "device",
               "provider")
NUMERIC_FIELDS = ("latency_us", "single_thread", "per_class_accuracy_delta")  # numbers at every depth, never a bool
MARKUP = re.compile(r"<[A-Za-z/!?]|`|\]\(")  # text is shown in pages, the explorer and spreadsheets: no HTML tag,
#                                             code span or link (a bare "<=" is text)
KEY_FIELDS = ("model", "variant", "format", "runtime", "machine")


def _allowed(hint) -> tuple[tuple, bool]:
    """A `Row` field's annotation as (types allowed, None allowed); an int passes for a float."""
    types = tuple(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
    return types + ((int,) if float in types else ()), type(None) in typing.get_args(hint)


TYPES = {field: _allowed(hint) for field, hint in typing.get_type_hints(Row).items()}


def text_problem(value: str, what: str) -> str | None:
    if len(value) > MAX_TEXT:
        return f"{what} is {len(value)} characters long"
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029\u202e" for c in value):
        return f"{what} holds control characters"
    if MARKUP.search(value) or value[:1] in ("=", "@"):
        return f"{what} holds markup or a formula"
    return None


def figure_problem(path: str, value) -> str | None:
    """Why one number of a row is no figure: not finite, or out of its field's range."""
    if isinstance(value, bool):
        return None
    if not math.isfinite(value):
        return f"{path} is {value!r}, not a finite figure"
    low, high = (-1.0, 1.0) if "delta" in path else (0.0, 1.0) if path.split(".")[-1] in FRACTIONS \
        else (0.0, MAX_FIGURE)
    if not low <= value <= high:
        return f"{path} {value!r} is outside [{low:g}, {high:g}]"
    return None


def _nested_problem(path: str, value, depth: int = 0) -> str | None:
    """Every number in a nested figure finite and in range, every text plain, nesting bounded."""
    if depth > MAX_DEPTH:
        return f"{path} nests deeper than {MAX_DEPTH}"
    if isinstance(value, bool) and path.split(".")[0] in NUMERIC_FIELDS:
        return f"{path} is a bool, not a figure"
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return figure_problem(path, value)
    if isinstance(value, str):
        return text_problem(value, path)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else None
    if items is None:
        return f"{path} is a {type(value).__name__}"
    for key, item in items:
        if not isinstance(key, (str, int)) or (isinstance(key, str) and text_problem(key, path)):
            return f"{path} has a key that is not plain text"
        problem = _nested_problem(f"{path}.{key}" if isinstance(value, dict) else path, item, depth + 1)  # a list's
        # items are held to their field's range
        if problem:
            return problem
    return None


def row_problem(record) -> str | None:
    """Why a row (from anywhere) is not a well-formed result row, or None: every field of `Row`
    of its declared type, numbers finite and in range at any depth, names plain, a known status."""
    if not isinstance(record, dict):
        return "not an object"
    unknown = sorted(str(k) for k in record if k not in FIELDS)
    if unknown:
        return f"unknown field {unknown[0][:40]!r}"
    for field, value in record.items():
        types, nullable = TYPES[field]
        if value is None:
            if not nullable:
                return f"{field} is null"
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{field} is a {type(value).__name__}, not {'/'.join(t.__name__ for t in types)}"
        if field in NAME_FIELDS and not NAME.fullmatch(value):
            return f"{field} {value[:60]!r} is not a plain name"
        problem = _nested_problem(field, value)
        if problem:
            return problem
    if record.get("status") not in STATUSES:
        return f"status {str(record.get('status'))[:40]!r} is not one of {', '.join(STATUSES)}"
    if "kind" in record and record["kind"] not in KINDS:
        return f"kind {record['kind']!r} is not one of {', '.join(KINDS)}"
    if record["status"] in ("error", "unavailable") and not isinstance(record.get("error"), str):
        return f"an {record['status']} row without its message"
    if record["status"] == "ok":
        missing = [k for k in ("model", "variant", "format", "runtime", "accuracy", "latency_us") if k not in record]
        if missing:
            return f"an ok row without {missing[0]}"
        latency = record["latency_us"]
        if not all(isinstance(latency.get(k), (int, float)) for k in ("p50", "p90", "p99")):
            return "latency_us without p50, p90 and p99"
    return None


def row_key(record: dict) -> tuple:
    return tuple(record.get(k) for k in KEY_FIELDS)


def device_result_problem(result, hashes: dict | None) -> str | None:
    """Why a device result's machine and rows cannot be published, or None. `hashes`: {(model,
    variant, format): sha256} of the artifacts a row may name (None: not checked)."""
    if not isinstance(result, dict):
        return "not a JSON object"
    machine = result.get("machine")
    if not isinstance(machine, dict):
        return "no machine description"
    label = machine.get("label")
    why = valid_label(label)
    if why:
        return f"machine label {str(label)[:60]!r} refused: {why}"
    for key, value in machine.items():
        problem = (f"machine.{key} {str(value)[:60]!r} is not a plain name" if isinstance(value, str)
                   and not NAME.fullmatch(value) else _nested_problem(f"machine.{key}", value))
        if problem:
            return problem
    records = result.get("records")
    if not isinstance(records, list):
        return "no records"
    seen = set()
    for i, record in enumerate(records):
        problem = row_problem(record) or _device_row_problem(record, label, hashes)
        if problem:
            return f"record {i}: {problem}"
        if row_key(record) in seen:
            return f"record {i}: a second row of {' '.join(map(str, row_key(record)))}"
        seen.add(row_key(record))
    return None


def _device_row_problem(record: dict, label: str, hashes: dict | None) -> str | None:
    if record.get("machine") != label or label == HOST_LABEL:
        return f"machine {str(record.get('machine'))[:60]!r} is not the file's {label!r}"
    if record["status"] == "unavailable" or hashes is None:
        return None
    key = (record.get("model"), record.get("variant"), record.get("format"))
    if hashes.get(key) != record.get("artifact_sha256"):
        return f"{' '.join(map(str, key))}: not an artifact this host packed or holds (SHA-256 differs or unknown)"
    return None
