"""Command-line argument checks shared by the host's commands and the device runner (TF-free):
a usage error is one line and exit 2, and a number must be finite and in range."""
from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
import warnings


HINTS = {"tflite": "litert (the runtime that runs .tflite files; tflite is a format)",
         "tflite-runtime": "litert", "ort": "onnxruntime", "onnx-runtime": "onnxruntime", "ov": "openvino"}


def suggestion(name: str, known: list[str]) -> str:
    """' (did you mean X?)' for a near miss: a known alias, '-' for '_' or the reverse, or difflib's
    closest name; '' when nothing is close."""
    close = [k for k in known if k in (name.replace("-", "_"), name.replace("_", "-"))]
    close = close or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = HINTS.get(name) if HINTS.get(name, "").split(" ")[0] in known else None
    return f" (did you mean {hint or close[0]}?)" if hint or close else ""


def version_text() -> str:
    """This package's version, Python's, and every runtime's (what a benchmark result depends on)."""
    from fmnist import __version__
    from fmnist.environment import versions
    found = ", ".join(f"{k} {v}" for k, v in versions().items() if v)
    return f"fmnist-edge {__version__} (Python {sys.version.split()[0]}; {found})"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (with the choices), exit code 2; every
    command has --version."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version="%(prog)s: " + "{version}",
                          help="this package's, Python's and the runtimes' versions")
        self.add_argument("--verbose", action="store_true", help="show the libraries' warnings and logs")

    def parse_known_args(self, args=None, namespace=None):
        """Libraries' warnings (matplotlib's layout, Dask's ports) are kept off the terminal unless
        --verbose, here and in every process the command starts (PYTHONWARNINGS)."""
        parsed, rest = super().parse_known_args(args, namespace)
        if not getattr(parsed, "verbose", False):
            warnings.simplefilter("ignore")
            os.environ["PYTHONWARNINGS"] = "ignore"
        os.environ["FMNIST_VERBOSE"] = "1" if getattr(parsed, "verbose", False) else ""
        return parsed, rest

    def _print_message(self, message, file=None):  # --version's text is built only when asked for
        super()._print_message(message.replace("{version}", version_text()) if message else message, file)

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
    """How a user model's input is read (docs/usage.md: "Bring your own model")."""
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
