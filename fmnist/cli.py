"""Command-line entry points. Each is thin: parse, check, call the library, map errors to one line.

Usage errors exit 2, failures of data or models exit 1, Ctrl-C exits 130; none prints a traceback.
`--model`, `--format` and `--runtime` take several values after one flag, or the flag repeated.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from fmnist.arguments import OneLineParser, number, suggestion, user_model_options
from fmnist.config import CALIBRATION_IMAGES, RunConfig
from fmnist.guard import HELD, guarded
from fmnist.models import UnknownModel, get_spec, list_models

MAX_CALIBRATION = 60_000  # the training set: calibration never uses a test image


def positive_int(text: str) -> int:
    return number(int, text, 1, 10**9, "whole number")


def positive_seconds(text: str) -> float:
    return number(float, text, 0.001, 3600, "number of seconds")


def calibration_size(text: str) -> int:
    return number(int, text, 1, MAX_CALIBRATION, "whole number of training images")


def sparsity_fraction(text: str) -> float:
    """0.01-0.99 (0% or 100% pruning is no variant), to at most four decimals: a variant is named by
    its percent (0.504 is pruned-50.4), so two sparsities never share a name or a folder."""
    from fmnist.variants import SPARSITY_DECIMALS
    value = number(float, text, 0.01, 0.99, "sparsity fraction (e.g. 0.5)")
    if round(value, SPARSITY_DECIMALS) != value:
        raise argparse.ArgumentTypeError(f"{text}: give the sparsity to at most {SPARSITY_DECIMALS} decimals")
    return value


def _list(parser, flag: str, what: str, help_: str) -> None:
    parser.add_argument(flag, nargs="+", action="extend", default=[], metavar=what.upper(), help=help_)


def _progress(args) -> bool:
    """Progress bars only on a terminal (in a pipe or a CI log they are carriage-return debris), or
    where FMNIST_PROGRESS=1 asks for them anyway."""
    wanted = os.environ.get("FMNIST_PROGRESS") == "1" or (sys.stderr.isatty() and sys.stdout.isatty())
    return not args.quiet and wanted


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exports", type=Path, default=None, metavar="DIR",
                        help="where trained models and artifacts live (default: exports/ or $FMNIST_EXPORTS)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with the four Fashion-MNIST IDX gz files (default: searched, see docs/usage.md)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="where reports are written")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when the output "
                                                             "is not a terminal)")
    parser.add_argument("--no-wait", action="store_true",
                        help="refuse at once when another run is using --exports (default: wait for it)")
    parser.add_argument("--epochs", type=positive_int, help="override every recipe's epoch count (quick runs)")
    parser.add_argument("--subset", type=positive_int, help="train on this many training images (quick runs)")


def _cluster_options(parser, devices: bool) -> None:
    group = parser.add_argument_group("cluster", "where the jobs run (docs/usage.md: 'Run on several machines')")
    group.add_argument("--cluster", metavar="ADDRESS", help="a Dask scheduler (tcp://HOST:8786, tls://...); default: a "
                                                            "local cluster, one single-threaded worker per core")
    group.add_argument("--insecure-cluster", action="store_true",
                       help="allow a non-loopback cluster without TLS (its protocol runs what it is sent)")
    if devices:
        group.add_argument("--devices", nargs="*", metavar="LABEL", default=None,
                           help="measure on these device workers (resource device-LABEL); --devices alone: every "
                                "device worker present")


def _checked(parser, known: list[str], chosen: list[str], what: str) -> list[str]:
    for name in chosen:
        if name not in known:
            parser.error(f"unknown {what} {name!r}{suggestion(name, known)}; choose from: {', '.join(known)}")
    return list(dict.fromkeys(chosen))


MODEL_HELP = "registered names, .keras/.h5/.onnx files or package.module:function factories (see docs/usage.md)"


def _models(parser, names: list[str], args=None, zoo_from: Path | None = None) -> list[str]:
    """Registered names as they are; files and factories resolved and adopted (one line and exit 1
    when one does not fit). With `zoo_from`, user models alone are measured beside the registered
    models already trained there (reused, never trained for this)."""
    from fmnist import models, user
    if args is not None and (args.input_mean is None) != (args.input_std is None):
        parser.error("give --input-mean and --input-std together")
    options = user.Options(*(getattr(args, k, None) for k in ("input_scale", "input_mean", "input_std")),
                           trust_code=getattr(args, "trust_model_code", False), data_dir=getattr(args, "data_dir", None))
    chosen = []
    for name in names:
        if user.is_reference(name):
            chosen.append(models.adopt(user.resolve(name, options)))
            continue
        try:
            get_spec(name)
        except UnknownModel as e:
            parser.error(f"unknown model {name!r}{suggestion(name, list_models())}; choose from: "
                         f"{', '.join(list_models())}, or a .keras, .h5 or .onnx file, or package.module:function")
        chosen.append(name)
    chosen = list(dict.fromkeys(chosen))
    if zoo_from and chosen and all(get_spec(n).origin for n in chosen):
        from fmnist.storage import RECORD_FILE, model_dir
        chosen = [*(n for n in list_models() if (model_dir(zoo_from, n) / RECORD_FILE).is_file()), *chosen]
    return list(dict.fromkeys(chosen)) or list_models()


def _writable(parser, path: Path, option: str, swapped: bool = False) -> Path:
    """Fail before any work, not after it: the folder must be (or become) a writable folder; a
    `swapped` one (results/, replaced whole) also needs its parent writable."""
    if path.exists() and not path.is_dir():
        parser.error(f"argument {option}: {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        for folder in (path, path.resolve().parent) if swapped else (path,):
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as e:
        parser.error(f"argument {option}: cannot write to {e.filename or path} ({e.strerror or e})")
    return path


def _results(parser, args, exports: Path | None) -> Path:
    """--results as a folder the tool may replace (fmnist.resultsdir), checked before any work:
    never the exports or data folder, a git work tree, or a folder of files fmnist did not write."""
    from fmnist import data, resultsdir
    from fmnist.errors import UsageError
    data.check_directory(getattr(args, "data_dir", None))
    explicit = getattr(args, "data_dir", None) or os.environ.get("FMNIST_DATA_DIR")
    data_dirs = [Path(explicit)] if explicit else [d for d in (data.KERAS_CACHE, data.DEBIAN_DIR) if d.is_dir()]
    try:
        for data_dir in data_dirs or [None]:
            resultsdir.check(args.results, exports, data_dir)
    except UsageError as e:
        parser.error(str(e))
    return _writable(parser, args.results, "--results", swapped=True)


def _exports(parser, args) -> Path:
    from fmnist.storage import DEFAULT_EXPORTS
    return _writable(parser, args.exports or DEFAULT_EXPORTS, "--exports")


def _lock(args, exports: Path) -> None:
    """Hold the exports folder for this run (`fmnist.lock`), once every check has passed."""
    from fmnist import lock
    HELD.enter_context(lock.exclusive(exports, wait=not getattr(args, "no_wait", False)))


@guarded
def train_main(argv=None) -> int:
    """fmnist-train: train registered models by their recipes (cached) and write results/training.md."""
    parser = OneLineParser(prog="fmnist-train", description=train_main.__doc__)
    parser.add_argument("models", nargs="*", metavar="NAME",
                        help=f"models to train: {', '.join(list_models())}; or {MODEL_HELP}")
    _list(parser, "--model", "name", "models to train (as NAME ...)")
    user_model_options(parser)
    parser.add_argument("--all", action="store_true", help="every registered model (the default with no NAME)")
    parser.add_argument("--force", action="store_true", help="retrain even when a cached model matches")
    parser.add_argument("--ablation", metavar="NAME",
                        help="train each design change an own model lists and write results/ablation-NAME.md")
    _common(parser)
    args = parser.parse_args(argv)
    if args.all and (args.models or args.model):
        parser.error("give model names or --all, not both")
    if args.ablation:
        return _ablation(parser, args)
    names = _models(parser, args.models + args.model, args)
    exports = _exports(parser, args)
    _results(parser, args, exports)
    _lock(args, exports)

    from fmnist import data, report, train
    from fmnist.config import RunConfig
    ds = data.load(args.data_dir)
    config = RunConfig(epochs=args.epochs, subset=args.subset, force=args.force, retrain_damaged=True)
    for name in names:
        train.train(name, exports, ds, config, progress=_progress(args))
    from fmnist import storage
    summaries = [storage.training_summary(storage.model_dir(exports, name)) for name in dict.fromkeys([*list_models(), *names])
                 if (storage.model_dir(exports, name) / storage.RECORD_FILE).is_file()]
    report.publish_training([s for s, _ in summaries], {s["model"]: files for s, files in summaries}, args.results)
    print(f"wrote {args.results / 'training.md'}")
    return 0


def _ablation(parser, args) -> int:
    """fmnist-train --ablation NAME: the design table of an own model, reproduced."""
    with_ablations = [n for n in list_models() if get_spec(n).ablations]
    if args.ablation not in with_ablations or args.models or args.model:
        parser.error(f"--ablation takes one of {', '.join(with_ablations)} and no other model name")
    exports = _exports(parser, args)
    _results(parser, args, exports)
    _lock(args, exports)
    from fmnist import ablation, data
    config = RunConfig(epochs=args.epochs, subset=args.subset)
    found = ablation.run(args.ablation, exports, data.load(args.data_dir), config, progress=_progress(args))
    path = ablation.write(args.ablation, found, config, args.results)
    print(f"wrote {path}: {len(found)} designs, {sum(reused for *_, reused in found)} reused")
    return 0


def _variant_options(parser) -> None:
    parser.add_argument("--finetune-epochs", type=positive_int, default=None,
                        help="fine-tuning epochs of every variant (default: the variant's own, 1 for QAT, "
                             "2 for pruning)")


@guarded
def export_main(argv=None) -> int:
    """fmnist-export: export trained models (training what is missing) to deployable formats,
    each artifact validated against its source model, with a manifest beside it."""
    from fmnist.export import get_format, list_formats
    parser = OneLineParser(prog="fmnist-export", description=export_main.__doc__)
    _list(parser, "--format", "format", f"one or more of: {', '.join(list_formats())}, all")
    _list(parser, "--model", "name", f"models to export (default: every registered model): {MODEL_HELP}")
    user_model_options(parser)
    parser.add_argument("--all", action="store_true", help="every registered model (the default)")
    parser.add_argument("--qat", action="store_true", help="also a quantization-aware-trained variant")
    parser.add_argument("--prune", type=sparsity_fraction, metavar="SPARSITY",
                        help="also a magnitude-pruned variant at this sparsity, 0.01-0.99 (with --qat: "
                             "prune-preserving QAT too)")
    _variant_options(parser)
    parser.add_argument("--calibration-size", type=calibration_size, default=CALIBRATION_IMAGES,
                        help=f"training images used to calibrate int8 quantization (default {CALIBRATION_IMAGES}, at most "
                             f"{MAX_CALIBRATION:,})")
    parser.add_argument("--force", action="store_true", help="re-export even when a cached artifact matches")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when an artifact misses its validation gate (kept and flagged either way)")
    _common(parser)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)  # renamed --exports; kept a while
    _cluster_options(parser, devices=False)
    args = parser.parse_args(argv)
    if args.out is not None:
        if args.exports is not None:
            parser.error("--out is the old name of --exports: give one of them")
        print("note: --out is now --exports (--out still works for now)", file=sys.stderr)
        args.exports = args.out
    if not args.format:
        parser.error("the following arguments are required: --format")
    if args.all and args.model:
        parser.error("give --model names or --all, not both")
    chosen = _checked(parser, [*list_formats(), "all"], args.format, "format")
    formats = [get_format(f) for f in dict.fromkeys(f for c in chosen for f in (list_formats() if c == "all" else [c]))]
    names = _models(parser, args.model, args)
    exports = _exports(parser, args)
    _lock(args, exports)

    from tabulate import tabulate

    from fmnist import data, variants
    from fmnist.export.pipeline import gate_warning
    from fmnist.schedule import export_all
    config = RunConfig(epochs=args.epochs, subset=args.subset, finetune_epochs=args.finetune_epochs,
                       force=args.force, calibration_size=args.calibration_size)
    manifests, failures, skipped = export_all(
        names, formats, variants.requested(args.qat, args.prune), exports, data.load(args.data_dir), config,
        progress=_progress(args), cluster=args.cluster, insecure=args.insecure_cluster)
    rows = [[m["model"], m["variant"], m["format"], f"{m['size_bytes']:,}", f"{m['size_gzip_bytes']:,}",
             f"{m['validation']['agreement']:.4f}", f"{m['validation']['max_abs_diff']:.1e}",
             f"{100 * m['validation']['accuracy']:.1f}%", "yes" if m["validation"]["passed"] else "⚠ no"]
            for m in manifests]
    print(tabulate(rows, ["model", "variant", "format", "bytes", "gzip bytes", "agreement", "max |diff|",
                          "slice acc", "passed"], tablefmt="github", disable_numparse=True))
    for reason in dict.fromkeys(skip["reason"] for skip in skipped):
        which = [f"{s['folder']}/{s['format']}" for s in skipped if s["reason"] == reason]
        print(f"not made ({len(which)}): {reason}: {', '.join(which)}")
    warnings = [w for w in map(gate_warning, manifests) if w]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for failure in failures:
        print(f"error: {failure['error']}", file=sys.stderr)
    return 1 if failures or (args.strict and warnings) else 0


@guarded
def bench_main(argv=None) -> int:
    """fmnist-bench: the whole pipeline (train, export, measure every runtime) and results/.
    `fmnist-bench pack` and `fmnist-bench merge` benchmark on a device (see docs/usage.md)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("pack", "merge"):
        from fmnist.device_cli import merge_main, pack_main
        return {"pack": pack_main, "merge": merge_main}[argv[0]](argv[1:])
    from fmnist.jobs import NATIVE_FORMAT
    from fmnist.export import list_formats
    from fmnist.runtimes import list_runtimes
    formats_known = [NATIVE_FORMAT, *list_formats()]
    parser = OneLineParser(prog="fmnist-bench", description=bench_main.__doc__)
    _list(parser, "--model", "name", f"models (default: all): {MODEL_HELP}; user models alone are measured beside "
                                     f"the zoo models already trained in --exports")
    user_model_options(parser)
    _list(parser, "--format", "format", f"formats (default: all): {', '.join(formats_known)}")
    _list(parser, "--runtime", "runtime", f"runtimes (default: all): {', '.join(list_runtimes())}")
    parser.add_argument("--no-qat", action="store_true", help="skip the quantization-aware variants")
    parser.add_argument("--prune", type=sparsity_fraction, default=0.5,
                        help="pruned variants' sparsity, 0.01-0.99 (default 0.5)")
    parser.add_argument("--no-prune", action="store_true", help="skip the pruned variants")
    _variant_options(parser)
    parser.add_argument("--min-calls", type=positive_int, default=25, help="timed batch-1 calls, at least")
    parser.add_argument("--min-seconds", type=positive_seconds, default=0.1, help="timed batch-1 seconds, at least")
    parser.add_argument("--threads", type=positive_int, default=None, help="threads for LiteRT/ORT (all cores)")
    parser.add_argument("--remeasure", action="store_true",
                        help="measure every row afresh (default: reuse a row measured before on this machine, file "
                             "and settings)")
    _common(parser)
    _cluster_options(parser, devices=True)
    args = parser.parse_args(argv)
    formats = _checked(parser, formats_known, args.format, "format") or formats_known
    runtimes = _checked(parser, list_runtimes(), args.runtime, "runtime") or list_runtimes()
    exports = _exports(parser, args)
    names = _models(parser, args.model, args, zoo_from=exports)
    _results(parser, args, exports)

    from fmnist import benchmark, variants
    from fmnist.harness import Settings
    if not benchmark.measured_runtimes(formats, runtimes):
        parser.error(f"nothing to measure: none of the runtimes {', '.join(runtimes)} runs any of the formats "
                     f"{', '.join(formats)}; results/ is left as it was")
    _lock(args, exports)
    settings = Settings(min_calls=args.min_calls, min_seconds=args.min_seconds, reuse_figures=not args.remeasure,
                        **({"threads": args.threads} if args.threads else {}))
    config = RunConfig(epochs=args.epochs, subset=args.subset, finetune_epochs=args.finetune_epochs)
    document = benchmark.run(
        names, formats, runtimes, variants.requested(not args.no_qat, None if args.no_prune else args.prune),
        exports, args.results, config, settings, data_dir=args.data_dir, progress=_progress(args),
        cluster=args.cluster, insecure=args.insecure_cluster,
        devices=() if args.devices is None else (args.devices or None))  # --devices alone: every device present
    from fmnist.environment import HOST_LABEL
    date = document["environment"]["date"]
    host = [r for r in document["records"] if r["machine"] == HOST_LABEL and r.get("measured_on", date) == date]
    kept = sum(r["machine"] == HOST_LABEL and r.get("measured_on", date) != date for r in document["records"])
    counts = {s: sum(r["status"] == s for r in host) for s in ("ok", "estimated", "error", "unavailable")}
    flagged = sum(bool(r.get("flagged")) for r in host)
    reused = sum(bool(r.get("reused")) for r in host if r["status"] == "ok")
    trained = sum(j["this_run"] for j in document["run_cost"]["training"])
    exported = len(document["exported_this_run"])
    print(f"trained {trained} of {len(document['trained'])} models; exported {exported} of {document['artifacts']} "
          f"artifacts (the rest reused)")
    print(f"wrote {args.results}/: {counts['ok']} rows ({counts['ok'] - reused} measured, {reused} reused; "
          f"{flagged} flagged), {counts['estimated']} estimates, {counts['error']} errors, {counts['unavailable']} "
          f"runtimes unavailable{f'; {kept} rows of earlier runs kept (not asked for, files unchanged)' if kept else ''}")
    crashed = sorted({r["runtime"] for r in host if "process crashed" in (r.get("error") or "")})
    if crashed:
        print(f"error: the measuring process of {', '.join(crashed)} crashed; its rows are error rows, the other "
              f"runtimes' rows are kept", file=sys.stderr)
    from fmnist.schedule import UNFINISHED
    unfinished = [r for r in host if UNFINISHED in (r.get("error") or "")]
    if unfinished:
        print(f"error: {len(unfinished)} rows could not be produced ({unfinished[0]['error'][:160]}); the finished "
              f"rows are kept in {args.results}/", file=sys.stderr)
    return 1 if crashed or unfinished else 0
