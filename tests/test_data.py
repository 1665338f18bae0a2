import gzip
import shutil
import struct

import numpy as np
import pytest

from fmnist import data


def write_idx(path, magic, count, item_shape, payload=None, compress=True):
    body = struct.pack(">II", magic, count) + b"".join(struct.pack(">I", n) for n in item_shape)
    n = count * int(np.prod(item_shape, dtype=int))
    body += payload if payload is not None else bytes(range(256)) * (n // 256) + bytes(n % 256)
    raw = gzip.compress(body) if compress else body
    path.write_bytes(raw)
    return path


def test_loads_the_real_files_with_known_shapes(dataset):
    assert dataset.train_images.shape == (60000, 28, 28) and dataset.train_images.dtype == np.uint8
    assert dataset.test_images.shape == (10000, 28, 28)
    assert set(np.unique(dataset.train_labels)) == set(range(10))
    assert np.bincount(dataset.test_labels).tolist() == [1000] * 10  # the test set is balanced
    assert len(set(data.CLASS_NAMES)) == len(np.unique(dataset.test_labels))  # one distinct name per label


def test_normalise_gives_float32_in_unit_range(dataset):
    x = data.normalise(dataset.test_images[:100])
    assert x.dtype == np.float32 and x.shape == (100, 28, 28)
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9


def test_validation_split_is_deterministic_and_disjoint(dataset):
    images, labels = dataset.train_images[:1000], np.arange(1000)
    (_, train_a), (_, val_a) = data.validation_split(images, labels, 100, seed=1)
    (_, _), (_, val_b) = data.validation_split(images, labels, 100, seed=1)
    (_, _), (_, val_c) = data.validation_split(images, labels, 100, seed=2)
    assert len(val_a) == 100 and len(train_a) == 900
    assert not set(train_a) & set(val_a)
    assert np.array_equal(val_a, val_b) and not np.array_equal(val_a, val_c)


def test_reads_a_wellformed_small_file(tmp_path):
    path = write_idx(tmp_path / "x.gz", 2051, 3, (28, 28))
    assert data.read_idx(path, 2051, (28, 28)).shape == (3, 28, 28)


@pytest.mark.parametrize("fault, make, message", [
    ("missing", lambda p: p, "file not found"),
    ("not gzip", lambda p: write_idx(p, 2051, 2, (28, 28), compress=False), "not a readable gzip"),
    ("truncated gzip", lambda p: p.write_bytes(write_idx(p, 2051, 9, (28, 28)).read_bytes()[:-20]) and p,
     "not a readable gzip"),
    ("wrong magic", lambda p: write_idx(p, 2049, 2, (28, 28)), "magic number 2049, expected 2051"),
    ("wrong shape", lambda p: write_idx(p, 2051, 2, (32, 32)), "item shape (32, 32)"),
    ("short header", lambda p: p.write_bytes(gzip.compress(b"\0\0\x08\x03")) and p, "shorter than"),
    ("wrong count", lambda p: write_idx(p, 2051, 5, (28, 28), payload=b"\0" * 784 * 3), "header promises"),
])
def test_bad_files_get_one_line_errors(tmp_path, fault, make, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    make(path)
    with pytest.raises(data.DataError) as err:
        data.read_idx(path, 2051, (28, 28))
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_checksum_mismatch_is_refused(tmp_path, dataset):
    for name, *_ in data.FILES.values():
        shutil.copy(dataset.directory / name, tmp_path / name)
    tampered = tmp_path / data.FILES["test_labels"][0]
    raw = bytearray(tampered.read_bytes())
    raw[-1] ^= 0xFF  # the gzip size field: a different file, byte for byte
    tampered.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match="SHA-256 .* does not match"):
        data.load(tmp_path)


def test_explicit_directory_wins_and_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path))
    assert data.find_directory() == tmp_path
    with pytest.raises(data.DataError, match="file not found"):
        data.load()
