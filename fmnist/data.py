"""Fashion-MNIST from the four standard IDX gz files, read with numpy alone.

Where the files come from, in order: an explicit folder (argument or FMNIST_DATA_DIR), the Keras
dataset cache, Debian's `dataset-fashion-mnist` package, and only then a download from the
dataset's official mirror into the Keras cache. Every file is checked against its known SHA-256
before use, so a result always states exactly which data it came from.
"""
from __future__ import annotations

import gzip
import os
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.storage import file_sha256
from fmnist.errors import FmnistError

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# name -> (file, sha256, IDX magic, item shape)
FILES = {
    "train_images": ("train-images-idx3-ubyte.gz",
                     "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7", 2051, (28, 28)),
    "train_labels": ("train-labels-idx1-ubyte.gz",
                     "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056", 2049, ()),
    "test_images": ("t10k-images-idx3-ubyte.gz",
                    "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa", 2051, (28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte.gz",
                    "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05", 2049, ()),
}
KERAS_CACHE = Path.home() / ".keras" / "datasets" / "fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


class DataError(FmnistError):
    """A data file is missing or not what it should be; the message names the file and the fault."""


@dataclass(frozen=True)
class FashionMNIST:
    train_images: np.ndarray  # uint8 (60000, 28, 28)
    train_labels: np.ndarray  # uint8 (60000,)
    test_images: np.ndarray   # uint8 (10000, 28, 28)
    test_labels: np.ndarray   # uint8 (10000,)
    directory: Path
    sha256: dict


def normalise(images: np.ndarray) -> np.ndarray:
    """The float view every model takes: pixels / 255 as float32, shape (N, 28, 28)."""
    return (np.asarray(images, dtype=np.float32) / 255.0).astype(np.float32)


def validation_split(images, labels, size: int, seed: int):
    """Hold `size` training images out, chosen by a seeded permutation: (train, validation) pairs."""
    if not 0 < size < len(images):
        raise ValueError(f"validation size {size} must be between 1 and {len(images) - 1}")
    order = np.random.default_rng(seed).permutation(len(images))
    held, kept = order[:size], order[size:]
    return (images[kept], labels[kept]), (images[held], labels[held])


def read_idx(path: Path, magic: int, item_shape: tuple, expected_sha256: str | None = None) -> np.ndarray:
    """One IDX gz file as a uint8 array, with every way it can be wrong turned into a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if expected_sha256 is not None:
        actual = file_sha256(path)
        if actual != expected_sha256:
            raise DataError(f"{path}: SHA-256 {actual[:12]}… does not match the known {expected_sha256[:12]}…")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from None
    header = 4 * (2 + len(item_shape))
    if len(raw) < header:
        raise DataError(f"{path}: {len(raw)} bytes is shorter than the {header}-byte IDX header")
    fields = np.frombuffer(raw, dtype=">u4", count=header // 4)
    if int(fields[0]) != magic:
        raise DataError(f"{path}: IDX magic number {int(fields[0])}, expected {magic}")
    count, shape = int(fields[1]), tuple(int(n) for n in fields[2:])
    if shape != tuple(item_shape):
        raise DataError(f"{path}: item shape {shape}, expected {tuple(item_shape)}")
    expected_bytes = header + count * int(np.prod(item_shape, dtype=np.int64))
    if len(raw) != expected_bytes:
        raise DataError(f"{path}: {len(raw)} bytes, the header promises {expected_bytes} ({count} items)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape((count, *item_shape))


def has_all(directory: Path) -> bool:
    return all((directory / name).is_file() for name, *_ in FILES.values())


def _download(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, *_ in FILES.values():
        target = directory / name
        if target.is_file():
            continue
        part = target.with_suffix(".part")
        try:
            urllib.request.urlretrieve(MIRROR + name, part)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise DataError(
                f"Fashion-MNIST not found locally and the download of {name} failed ({e}); "
                f"install Debian's dataset-fashion-mnist or set FMNIST_DATA_DIR") from None
        part.rename(target)


def check_directory(explicit: str | os.PathLike | None = None) -> None:
    """A folder given (argument or FMNIST_DATA_DIR) that lacks the files: one line naming where the
    path came from and the fix, before anything heavy is imported."""
    given = explicit or os.environ.get("FMNIST_DATA_DIR")
    if given and not has_all(Path(given)):
        source = "--data-dir" if explicit else "FMNIST_DATA_DIR"
        missing = next(name for name, *_ in FILES.values() if not (Path(given) / name).is_file())
        raise DataError(f"{source}={given}: no Fashion-MNIST there ({missing} missing); point it at the folder "
                        f"holding the four IDX .gz files, or unset it and `apt-get install dataset-fashion-mnist`")


def find_directory(explicit: str | os.PathLike | None = None) -> Path:
    """The folder to read, searched in the documented order; downloads only as the last resort."""
    explicit = explicit or os.environ.get("FMNIST_DATA_DIR")
    if explicit:
        return Path(explicit)  # an explicit choice is never silently replaced by another folder
    for candidate in (KERAS_CACHE, DEBIAN_DIR):
        if has_all(candidate):
            return candidate
    _download(KERAS_CACHE)
    return KERAS_CACHE


def load(directory: str | os.PathLike | None = None) -> FashionMNIST:
    directory = find_directory(directory)
    arrays = {key: read_idx(directory / name, magic, shape, sha)
              for key, (name, sha, magic, shape) in FILES.items()}
    return FashionMNIST(**arrays, directory=directory,
                        sha256={name: sha for name, sha, *_ in FILES.values()})


def load_test_set(source: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 test images (uint8) and labels: from a bundle's `.npz` (a device has no IDX
    files), or else from the IDX files found as `load` finds them."""
    if source is not None and str(source).endswith(".npz"):
        with np.load(source) as saved:
            return saved["images"], saved["labels"]
    ds = load(source)
    return ds.test_images, ds.test_labels
