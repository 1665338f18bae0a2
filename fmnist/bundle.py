"""A benchmark bundle for a device that has no TensorFlow: one zipapp file holding the chosen
artifacts with their manifests, each source model's record and reference probabilities, the test
set, and the measuring core itself. `python3 bundle.pyz --out pi5.json` runs it (fmnist.runner).

The core it carries is the part of this package that imports neither TensorFlow nor matplotlib;
a device needs numpy and whichever runtimes it has (ai-edge-litert, onnxruntime, tflite-micro).
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from fmnist import storage
from fmnist.atomic import atomic_path

BUNDLE_VERSION = 1
BUNDLE_DIR = "bundle"
INDEX = "bundle.json"
TEST_SET = "test_set.npz"
# Modules that need TensorFlow, tf2onnx, matplotlib or tabulate: they stay on the host.
HOST_ONLY = {"train.py", "plots.py", "report.py", "cli.py", "benchmark.py", "export/pipeline.py"}
BOOTSTRAP = '''"""fmnist-edge benchmark bundle: python3 THIS_FILE.pyz --out RESULT.json [--label NAME]"""
import os
import sys
import tempfile
import zipfile


def main():
    archive = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory(prefix="fmnist-bundle-") as where:
        zipfile.ZipFile(archive).extractall(where)  # runtimes need real files, not zip members
        sys.path.insert(0, where)
        from fmnist.runner import main as run
        return run(sys.argv[1:], os.path.join(where, "bundle"), archive)


if __name__ == "__main__":
    sys.exit(main())
'''


class BundleError(storage.StorageError):
    """A bundle or a device result that cannot be used: one line, exit 1."""


def core_files() -> dict[str, Path]:
    """The package's device-side modules: {path inside the bundle: file}."""
    package = Path(__file__).parent
    return {f"fmnist/{p.relative_to(package).as_posix()}": p for p in sorted(package.rglob("*.py"))
            if p.relative_to(package).as_posix() not in HOST_ONLY}


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def pack(folders: list[Path], formats: list[str], out: Path, test_images: np.ndarray, test_labels: np.ndarray,
         models: list[str]) -> dict:
    """Write the bundle for these model folders and formats to `out` (atomically); returns its
    index (what it holds, with every file's SHA-256)."""
    members: dict[str, bytes] = {}
    for folder in folders:
        storage.verified_record(folder)
        for name in (storage.RECORD_FILE, storage.PROBABILITIES_FILE):
            members[f"{BUNDLE_DIR}/exports/{folder.name}/{name}"] = (folder / name).read_bytes()
        for artifact_folder in storage.artifact_folders(folder):
            manifest = storage.read_manifest(artifact_folder)
            if manifest["format"] not in formats:
                continue
            path = storage.verified_path(artifact_folder, manifest["artifact"], manifest["sha256"])
            for file in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
                members[f"{BUNDLE_DIR}/exports/{folder.name}/{manifest['format']}/"
                        f"{file.relative_to(artifact_folder).as_posix()}"] = file.read_bytes()
            members[f"{BUNDLE_DIR}/exports/{folder.name}/{manifest['format']}/{storage.MANIFEST_FILE}"] = \
                (artifact_folder / storage.MANIFEST_FILE).read_bytes()
    if not any("/manifest.json" in name for name in members):
        raise BundleError(f"nothing to pack: no artifact of {', '.join(formats)} for {', '.join(models)}; "
                          f"export them first (fmnist-export --format ...)")
    members[f"{BUNDLE_DIR}/{TEST_SET}"] = _npz(images=test_images, labels=test_labels)
    index = {"version": BUNDLE_VERSION, "models": models, "formats": formats,
             "folders": [f.name for f in folders],
             "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())}}
    index["sha256"] = storage.cache_key(index["files"])
    members[f"{BUNDLE_DIR}/{INDEX}"] = json.dumps(index, indent=1).encode()
    with atomic_path(Path(out)) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("__main__.py", BOOTSTRAP)
            for name, file in core_files().items():
                archive.write(file, name)
            for name, data in members.items():
                archive.writestr(name, data)
        tmp.chmod(0o755)
    return index


def records_digest(records: list[dict]) -> str:
    """The hash a device result carries of its own records: a merge refuses a file whose records
    were changed (or cut short) after the run."""
    return storage.cache_key({"records": records})


def read_device_result(path: Path) -> dict:
    """A runner's JSON, checked: right kind, this bundle version, records matching their hash."""
    try:
        result = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise BundleError(f"{path}: not a device result ({e})") from None
    if not isinstance(result, dict) or result.get("kind") != "fmnist-device-run":
        raise BundleError(f"{path}: not a device result written by the bundle runner")
    version = result.get("bundle", {}).get("version")
    if version != BUNDLE_VERSION:
        raise BundleError(f"{path}: made by bundle version {version}, this fmnist-edge merges version "
                          f"{BUNDLE_VERSION}; pack and run a new bundle")
    if records_digest(result.get("records", [])) != result.get("records_sha256"):
        raise BundleError(f"{path}: its records do not match their SHA-256: the file was altered or cut short")
    return result
