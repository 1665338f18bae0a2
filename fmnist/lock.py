"""One run at a time per exports folder (TF-free): two runs training the same model into the same
folder would do the work twice and the last writer would win."""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path

from fmnist.errors import FmnistError

LOCK_FILE = ".fmnist-lock"


class Busy(FmnistError):
    """Another run holds the exports folder and the user asked not to wait."""


@contextlib.contextmanager
def exclusive(folder: Path, wait: bool = True):
    """Hold `folder`'s lock for the block: wait for another run's (saying so), or with `wait=False`
    refuse at once in one line. The OS drops the lock of a killed run."""
    path = Path(folder) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            if not wait:
                raise Busy(f"{folder} is in use by another fmnist run ({holder}); run again when it ends, or "
                           f"without --no-wait to wait for it") from None
            print(f"waiting: {folder} is in use by another fmnist run ({holder})", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)
