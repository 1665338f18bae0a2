"""One temp folder per command: every library's caches, telemetry and temp files go there, and it is
removed when the command ends (TF-free).

Left alone, a run writes outside the folders it was given: OpenVINO's telemetry (~/intel), ONNX
Runtime's (~/.cache/Microsoft), Keras' settings (~/.keras), matplotlib's font cache, TensorFlow
autograph's generated files and Dask's scratch space (/tmp). The variables below point each of them
here, for this process and every worker and measuring process it starts.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import psutil

FOLDERS = {"TMPDIR": "tmp", "XDG_CACHE_HOME": "cache", "MPLCONFIGDIR": "matplotlib", "KERAS_HOME": "keras",
           "HOME": "home"}  # HOME: OpenVINO's telemetry knows no other setting


@contextlib.contextmanager
def contained():
    """Run the block with the variables above pointing into a fresh temp folder; restore them (and
    the warning settings a command's parser sets) and remove the folder after. The data folder found
    in the real home is passed on by FMNIST_DATA_DIR."""
    from fmnist import data
    saved = {name: os.environ.get(name) for name in [*FOLDERS, "FMNIST_DATA_DIR", "PYTHONWARNINGS", "FMNIST_VERBOSE"]}
    root = Path(tempfile.mkdtemp(prefix="fmnist-run-"))
    filters = warnings.filters[:]
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    try:
        if not saved["FMNIST_DATA_DIR"] and data.has_all(data.KERAS_CACHE):
            os.environ["FMNIST_DATA_DIR"] = str(data.KERAS_CACHE)  # a worker's home is the temp one
        for name, folder in FOLDERS.items():
            (root / folder).mkdir()
            os.environ[name] = str(root / folder)
        tempfile.tempdir = None  # read TMPDIR again
        yield root
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        tempfile.tempdir = None
        warnings.filters[:] = filters
        started = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
        psutil.wait_procs(started, timeout=15)  # a Dask worker still closing writes to its scratch space
        for _ in range(5):  # and anything else still exiting may write a last file
            shutil.rmtree(root, ignore_errors=True)
            if not root.exists():
                break
            time.sleep(0.5)
