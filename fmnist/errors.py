"""The error root and the one way an exception becomes one line (TF-free, used by the device runner).

Every failure this toolkit expects derives from `FmnistError`, which carries its exit code, so the
command line maps any of them to one line without knowing each kind.
"""
from __future__ import annotations

USAGE_EXIT = 2     # a command line or a folder that cannot be used: refused before any work
FAILURE_EXIT = 1   # data, models, artifacts or infrastructure that failed
INTERRUPT_EXIT = 130


class FmnistError(Exception):
    """An expected failure, said in one line; `exit_code` is what the command exits with."""
    exit_code = FAILURE_EXIT


class UsageError(FmnistError):
    """A request refused before any work (a folder the tool must not replace, ...)."""
    exit_code = USAGE_EXIT


def one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, never empty and never raising (an empty `KeyError()`,
    a bare `assert` and an exception whose `__str__` fails all give at least their type)."""
    try:
        text = str(error)
    except Exception:  # noqa: BLE001  (a broken __str__ must not hide the error it describes)
        text = ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if isinstance(error, FmnistError):
        return first[:limit] or type(error).__name__
    name = type(error).__name__
    return f"{name}: {first[:limit]}" if first else name
