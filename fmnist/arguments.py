"""Command-line argument checks shared by the host's commands and the device runner (TF-free):
a usage error is one line and exit 2, and a number must be finite and in range."""
from __future__ import annotations

import argparse
import math


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (with the choices), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(kind, text: str, low, high, what: str):
    """`text` as `kind` (int or float), finite and within [low, high], else a one-line usage error."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text} must be between {low} and {high:,}")
    return value
