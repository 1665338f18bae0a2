"""Command-line entry points. Each is thin: parse, check, call the library, map errors to one line.

Usage errors exit 2, failures of data or models exit 1, Ctrl-C exits 130; none prints a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmnist.models import UnknownModel, get_spec, list_models


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (with the choices), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exports", "--out", dest="exports", type=Path, default=None, metavar="DIR",
                        help="where trained models and artifacts live (default: exports/ or $FMNIST_EXPORTS)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with the four Fashion-MNIST IDX gz files (default: searched, see README)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="where reports are written")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--epochs", type=positive_int, help="override every recipe's epoch count (quick runs)")
    parser.add_argument("--subset", type=positive_int, help="train on this many training images (quick runs)")


def _models(parser, names: list[str]) -> list[str]:
    for name in names:
        try:
            get_spec(name)
        except UnknownModel as e:
            parser.error(str(e))
    return names or list_models()


def _guarded(main):
    """Turn the library's expected failures into a one-line message and an exit code."""
    def wrapper(argv=None):
        from fmnist.artifacts import ArtifactError
        from fmnist.data import DataError
        from fmnist.train import TrainedModelError
        try:
            return main(argv)
        except KeyboardInterrupt:
            print("interrupted: finished outputs are kept, nothing half-written was left", file=sys.stderr)
            return 130
        except (ArtifactError, DataError, TrainedModelError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    wrapper.__doc__ = main.__doc__
    return wrapper


@_guarded
def train_main(argv=None) -> int:
    """fmnist-train: train registered models by their recipes (cached) and write results/training.md."""
    parser = OneLineParser(prog="fmnist-train", description=train_main.__doc__)
    parser.add_argument("models", nargs="*", metavar="NAME", help=f"models to train: {', '.join(list_models())}")
    parser.add_argument("--all", action="store_true", help="every registered model (the default with no NAME)")
    parser.add_argument("--force", action="store_true", help="retrain even when a cached model matches")
    _common(parser)
    args = parser.parse_args(argv)
    if args.all and args.models:
        parser.error("give model names or --all, not both")
    names = _models(parser, args.models)

    from fmnist import data, report, train
    exports = args.exports or train.DEFAULT_EXPORTS
    ds = data.load(args.data_dir)
    for name in names:
        train.train(name, exports, ds, epochs=args.epochs, subset=args.subset, force=args.force,
                    progress=not args.quiet)
    path = report.write_training(exports, args.results)
    print(f"wrote {path}")
    return 0


def sparsity_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"sparsity {value} must be between 0 and 1 (exclusive), e.g. 0.5")
    return value


@_guarded
def export_main(argv=None) -> int:
    """fmnist-export: export trained models (training what is missing) to deployable formats,
    each artifact validated against its source model, with a manifest beside it."""
    from fmnist.export import get_format, list_formats
    parser = OneLineParser(prog="fmnist-export", description=export_main.__doc__)
    parser.add_argument("--format", action="append", required=True, metavar="FORMAT",
                        help=f"one of: {', '.join(list_formats())}, all (repeatable)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME",
                        help="model to export (repeatable; default: every registered model)")
    parser.add_argument("--all", action="store_true", help="every registered model (the default)")
    parser.add_argument("--qat", action="store_true", help="also a quantization-aware-trained variant")
    parser.add_argument("--prune", type=sparsity_fraction, metavar="SPARSITY",
                        help="also a magnitude-pruned variant at this sparsity (with --qat: prune-preserving QAT too)")
    parser.add_argument("--finetune-epochs", type=positive_int, default=1,
                        help="fine-tuning epochs for --qat/--prune variants (default 1)")
    parser.add_argument("--calibration-size", type=positive_int, default=300,
                        help="training images used to calibrate int8 quantization (default 300)")
    parser.add_argument("--force", action="store_true", help="re-export even when a cached artifact matches")
    _common(parser)
    args = parser.parse_args(argv)
    if args.all and args.model:
        parser.error("give --model names or --all, not both")
    formats = []
    for name in args.format:
        if name == "all":
            formats += list_formats()
        elif name in list_formats():
            formats.append(name)
        else:
            parser.error(f"unknown format {name!r}; choose from: {', '.join(list_formats())}, all")
    formats = [get_format(f) for f in dict.fromkeys(formats)]
    names = _models(parser, args.model)

    from tabulate import tabulate

    from fmnist import data, train, variants
    from fmnist.export.pipeline import export_all
    exports = args.exports or train.DEFAULT_EXPORTS
    manifests, failures, skipped = export_all(
        names, formats, variants.variant_names(args.qat, args.prune), exports, data.load(args.data_dir),
        finetune_epochs=args.finetune_epochs, epochs=args.epochs, subset=args.subset, force=args.force,
        calibration_size=args.calibration_size, progress=not args.quiet)
    rows = [[m["model"], m["variant"], m["format"], f"{m['size_bytes']:,}", f"{m['size_gzip_bytes']:,}",
             f"{m['validation']['agreement']:.4f}", f"{m['validation']['max_abs_diff']:.1e}",
             f"{100 * m['validation']['accuracy']:.1f}%"] for m in manifests]
    print(tabulate(rows, ["model", "variant", "format", "bytes", "gzip bytes", "agreement", "max |diff|",
                          "slice acc"], tablefmt="github", disable_numparse=True))
    for reason in dict.fromkeys(skip["reason"] for skip in skipped):
        which = [f"{s['folder']}/{s['format']}" for s in skipped if s["reason"] == reason]
        print(f"not made ({len(which)}): {reason}: {', '.join(which)}")
    for failure in failures:
        print(f"error: {failure['error']}", file=sys.stderr)
    return 1 if failures else 0


@_guarded
def bench_main(argv=None) -> int:
    """fmnist-bench: the whole pipeline (train, export, measure every runtime) and results/."""
    from fmnist.export import list_formats
    from fmnist.runtimes import list_runtimes
    formats_known = ["keras", *list_formats()]
    parser = OneLineParser(prog="fmnist-bench", description=bench_main.__doc__)
    parser.add_argument("--model", action="append", default=[], metavar="NAME", help="(repeatable; default all)")
    parser.add_argument("--format", action="append", default=[], metavar="FORMAT",
                        help=f"(repeatable; default all): {', '.join(formats_known)}")
    parser.add_argument("--runtime", action="append", default=[], metavar="RUNTIME",
                        help=f"(repeatable; default all): {', '.join(list_runtimes())}")
    parser.add_argument("--no-qat", action="store_true", help="skip the quantization-aware variants")
    parser.add_argument("--prune", type=sparsity_fraction, default=0.5, help="pruned variants' sparsity (0.5)")
    parser.add_argument("--no-prune", action="store_true", help="skip the pruned variants")
    parser.add_argument("--finetune-epochs", type=positive_int, default=1)
    parser.add_argument("--min-calls", type=positive_int, default=25, help="timed batch-1 calls, at least")
    parser.add_argument("--min-seconds", type=float, default=0.1, help="timed batch-1 seconds, at least")
    parser.add_argument("--threads", type=positive_int, default=None, help="threads for LiteRT/ORT (all cores)")
    _common(parser)
    args = parser.parse_args(argv)
    for value, known, what in ((args.format, formats_known, "format"), (args.runtime, list_runtimes(), "runtime")):
        for name in value:
            if name not in known:
                parser.error(f"unknown {what} {name!r}; choose from: {', '.join(known)}")
    if args.min_seconds <= 0:
        parser.error("argument --min-seconds: must be above 0")
    names = _models(parser, args.model)

    from fmnist import benchmark, train, variants
    from fmnist.harness import Settings
    settings = Settings(min_calls=args.min_calls, min_seconds=args.min_seconds,
                        **({"threads": args.threads} if args.threads else {}))
    document = benchmark.run(
        names, args.format or formats_known, args.runtime or list_runtimes(),
        variants.variant_names(not args.no_qat, None if args.no_prune else args.prune),
        args.exports or train.DEFAULT_EXPORTS, args.results, data_dir=args.data_dir, settings=settings,
        finetune_epochs=args.finetune_epochs, epochs=args.epochs, subset=args.subset, progress=not args.quiet)
    counts = {s: sum(r["status"] == s for r in document["records"]) for s in ("ok", "error", "unavailable")}
    print(f"wrote {args.results}/: {counts['ok']} rows measured, {counts['error']} errors, "
          f"{counts['unavailable']} runtimes unavailable")
    return 0
