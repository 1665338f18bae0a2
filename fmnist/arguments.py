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


def user_model_options(parser) -> None:
    """How a user model's input is read (README: "Bring your own model")."""
    from fmnist.user.contract import SIDECAR_SUFFIX
    group = parser.add_argument_group("user models", f"the input scaling, when not [0, 1]: these flags, or a "
                                                     f"{SIDECAR_SUFFIX} file beside the model")
    group.add_argument("--input-scale", type=lambda t: number(float, t, 1e-6, 1e6, "number"), metavar="S",
                       help="the model takes pixels times S (255 for 0-255)")
    group.add_argument("--input-mean", type=lambda t: number(float, t, -1e6, 1e6, "number"), metavar="M",
                       help="... minus M (with --input-std)")
    group.add_argument("--input-std", type=lambda t: number(float, t, 1e-9, 1e6, "number"), metavar="S",
                       help="... divided by S (with --input-mean)")
    group.add_argument("--trust-model-code", action="store_true",
                       help="load Keras files whose layers carry code (Lambda, custom classes); refused otherwise")
