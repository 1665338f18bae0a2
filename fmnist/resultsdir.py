"""The results folder the tool owns, and only that (TF-free).

A publish replaces results/ whole (written aside, swapped in at once), which would delete whatever
the old folder held. So the tool marks the folders it writes (`.fmnist-results`, listing the entries
it wrote), refuses before any work to replace a non-empty folder without that mark, or one that is,
holds or lies in the exports or data folder, or is a git work tree; and it carries every entry it did
not write (dotfiles included) into the new folder by hard link, so they stay in place.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

from fmnist.atomic import swap_in, write_text
from fmnist.errors import UsageError

MARKER = ".fmnist-results"
TEMP_INFIX = ".tmp-"


def _related(a: Path, b: Path) -> str | None:
    if a == b:
        return "is"
    if b in a.parents:
        return "lies inside"
    if a in b.parents:
        return "contains"
    return None


def check(results: Path, exports: Path | None = None, data_dir: Path | None = None) -> Path:
    """`results` as a folder the tool may replace; UsageError (exit 2, one line) otherwise."""
    results = Path(results)
    where = results.resolve()
    for other, what in ((exports, "the exports folder"), (data_dir, "the data folder")):
        relation = other is not None and _related(where, Path(other).resolve())
        if relation:
            raise UsageError(f"--results {results} {relation} {what} ({other}): results/ is replaced whole, so "
                             f"it must be a folder of its own")
    if results.exists() and not results.is_dir():
        raise UsageError(f"--results {results} is a file, not a folder")
    if (results / ".git").exists():
        raise UsageError(f"--results {results} is a git work tree's root: give a folder of its own, such as "
                         f"{results / 'results'}")
    if results.is_dir() and not (results / MARKER).is_file() and any(results.iterdir()):
        raise UsageError(f"--results {results} holds files fmnist did not write (no {MARKER} marker); give an "
                         f"empty or new folder, or one an earlier run wrote")
    return results


def owned(results: Path) -> set[str]:
    """The entries of `results` the tool wrote (its marker's list); nothing without a marker."""
    try:
        found = json.loads((Path(results) / MARKER).read_text()).get("entries", [])
    except (OSError, ValueError, AttributeError, RecursionError):
        return set()
    return {name for name in found if isinstance(name, str) and "/" not in name and name not in ("", ".", "..")}


def write_marker(results: Path, entries) -> None:
    write_text(Path(results) / MARKER, json.dumps({"written_by": "fmnist-edge", "entries": sorted(entries)},
                                                  indent=1) + "\n")


def add_owned(results: Path, name: str) -> None:
    """Mark one entry the tool wrote into `results` in place (an ablation page)."""
    write_marker(results, owned(results) | {name})


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def carry(source: Path, target: Path) -> None:
    """Put `source` (a file or a folder) at `target` too, by hard links where the file system allows:
    no byte is copied and the original stays where it was until the swap."""
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(source, target)


@contextlib.contextmanager
def _interrupts_deferred():
    """Ctrl-C waits until the block is done (then raises): a swap or a clean-up cut halfway would
    leave a hidden copy of results/ beside it."""
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _sweep(results: Path) -> None:
    """Remove temp folders an earlier, killed publish left beside `results` (only marked ones)."""
    for stale in results.parent.glob(f".{results.name}{TEMP_INFIX}*"):
        if stale.is_dir() and (stale / MARKER).is_file():
            shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def replace(results: Path):
    """Yield an empty folder to write the new results into; on success it replaces `results` whole,
    with every entry the tool did not write carried over and a marker naming the ones it did. On
    failure the old folder is left exactly as it was, and no temp folder is left beside it."""
    results = check(results)
    results.parent.mkdir(parents=True, exist_ok=True)
    _sweep(results)
    tmp = Path(tempfile.mkdtemp(prefix=f".{results.name}{TEMP_INFIX}", dir=results.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would make the outputs private to whoever ran the tool
        write_marker(tmp, [])  # a killed publish's temp folder is known as ours
        yield tmp
        mine = owned(results)
        written = [p.name for p in tmp.iterdir() if p.name != MARKER]
        for entry in list(results.iterdir()) if results.is_dir() else []:
            if entry.name not in mine and entry.name != MARKER and not (tmp / entry.name).exists():
                carry(entry, tmp / entry.name)
        write_marker(tmp, written)
        with _interrupts_deferred():
            swap_in(tmp, results)
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        with _interrupts_deferred():
            shutil.rmtree(tmp, ignore_errors=True)
