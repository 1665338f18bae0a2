"""The on-device runner: what a benchmark bundle runs (`python3 bundle.pyz --out pi5.json`).

It checks every file of the bundle against the bundle's index, then measures every artifact on
every runtime installed on the device with the host's own harness (warm-up, p50/p90/p99,
throughput, one thread against all, cold start, peak RSS, accuracy on all 10,000 test images and
parity with the source model), reports the runtimes that are not installed as unavailable with
the reason, and writes one JSON in the results contract plus a description of the machine. It
imports no TensorFlow: numpy and the runtimes are all it needs.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from fmnist import environment, storage
from fmnist.arguments import OneLineParser, number
from fmnist.atomic import write_json
from fmnist.bundle import INDEX, TEST_SET, records_digest
from fmnist.harness import Settings, finish_rows, run_isolated
from fmnist.rows import row
from fmnist.jobs import collect_jobs
from fmnist.runtimes import get_runtime, list_runtimes

def check_bundle(bundle: Path) -> dict:
    """The bundle's index, after checking every file it lists has the SHA-256 it lists."""
    try:
        index = json.loads((bundle / INDEX).read_text())
    except (OSError, ValueError) as e:
        raise storage.ArtifactError(f"{bundle / INDEX}: unreadable bundle index ({e})") from None
    if not isinstance(index, dict) or not isinstance(index.get("files"), dict):
        raise storage.ArtifactError(f"{bundle / INDEX}: not a bundle index")
    for name, sha in index["files"].items():
        path = bundle.parent / name
        if not path.is_file() or storage.file_sha256(path) != sha:
            raise storage.ArtifactError(f"{name}: missing or altered in the bundle; pack a new one")
    return index


def _label(text: str) -> str:
    why = environment.valid_label(text)
    if why:
        raise argparse.ArgumentTypeError(f"{text!r}: {why}")
    return text


def _seconds(text: str) -> float:
    return number(float, text, 0.001, 3600, "number of seconds")


def _threads(text: str) -> int:
    return number(int, text, 1, 1024, "whole number")


def _writable_file(text: str) -> Path:
    """--out is checked before any work: a file (not a folder) in a folder this process can write."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name such as pi5.json")
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent if str(path.parent) else ".", prefix=".fmnist-check-"):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write in {path.parent} ({e.strerror or e})") from None
    return path


def main(argv, bundle: str, archive: str) -> int:
    parser = OneLineParser(prog=Path(archive).name, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=_writable_file, required=True, help="where to write the result JSON")
    parser.add_argument("--label", type=_label, default=None,
                        help="this machine's name in the merged results (default: its hostname): letters, digits, "
                             "'-', '_', '.'")
    parser.add_argument("--runtime", nargs="+", action="extend", default=[], metavar="RUNTIME",
                        help=f"runtimes to try (default: all that run the bundle's formats): {', '.join(list_runtimes())}")
    parser.add_argument("--min-seconds", type=_seconds, default=0.1, help="timed batch-1 seconds, at least")
    parser.add_argument("--threads", type=_threads, default=None, help="threads for LiteRT/ONNX Runtime (all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress")
    args = parser.parse_args(argv)
    if args.label is None:
        hostname = platform.node() or "device"
        if environment.valid_label(hostname):
            parser.error(f"this machine's hostname {hostname!r} is no plain name; give --label NAME")
        args.label = hostname
    for name in args.runtime:
        if name not in list_runtimes():
            parser.error(f"unknown runtime {name!r}; choose from: {', '.join(list_runtimes())}")
    try:
        return _run(args, Path(bundle), archive)
    except storage.StorageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no result written", file=sys.stderr)
        return 130


def _run(args, bundle: Path, archive: str) -> int:
    index = check_bundle(bundle)
    folders = [bundle / "exports" / name for name in index["folders"]]
    wanted = args.runtime or [r for r in list_runtimes() if set(get_runtime(r).formats) & set(index["formats"])]
    jobs = collect_jobs(folders, index["formats"], wanted, weights=False)
    settings = Settings(min_seconds=args.min_seconds, reuse_figures=False,  # a device run measures everything
                        **({"threads": args.threads} if args.threads else {}))
    machine = environment.machine(args.label)
    records = []
    for runtime in wanted:
        if not args.quiet:
            print(f"{runtime}: {len(jobs.get(runtime, []))} artifacts", file=sys.stderr, flush=True)
        records += run_isolated(runtime, jobs.get(runtime, []), str(bundle / TEST_SET), settings, not args.quiet)
    records = [row(**r, machine=args.label) for r in finish_rows(records)]
    result = {"schema": 1, "kind": "fmnist-device-run", "bundle": {"version": index["version"], "sha256": index["sha256"],
                                                                  "file": Path(archive).name},
              "machine": machine, "environment": environment.describe(),
              "settings": asdict(settings), "tensorflow_imported": "tensorflow" in sys.modules,
              "records": records, "records_sha256": records_digest(records)}
    write_json(args.out, result)
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "error", "unavailable")}
    print(f"wrote {args.out}: {counts['ok']} rows measured, {counts['error']} errors, "
          f"{counts['unavailable']} runtimes unavailable", file=sys.stderr)
    return 0
