"""A benchmark bundle for a device that has no TensorFlow: one zipapp file holding the chosen
artifacts with their manifests, each source model's record and reference probabilities, the test
set, and the measuring core itself. `python3 bundle.pyz --out pi5.json` runs it (fmnist.runner).

The core it carries is the part of this package that imports neither TensorFlow nor matplotlib;
a device needs numpy and whichever runtimes it has (ai-edge-litert, onnxruntime, openvino, tflite-micro).
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from fmnist import storage, validation
from fmnist.atomic import atomic_path, write_json
from fmnist.errors import one_line

BUNDLE_VERSION = 2  # 2: rows are checked against the packed index kept on the host
PACKED_DIR = "bundles"  # exports/bundles/<index sha256>.json
BUNDLE_DIR = "bundle"
INDEX = "bundle.json"
TEST_SET = "test_set.npz"
# Modules that need TensorFlow, tf2onnx, matplotlib or tabulate: they stay on the host.
HOST_ONLY = {"train.py", "plots.py", "cli.py", "benchmark.py", "export/pipeline.py", "ablation.py", "report/"}
BOOTSTRAP = '''"""fmnist-edge benchmark bundle: python3 THIS_FILE.pyz --out RESULT.json [--label NAME]"""
import os
import sys
import tempfile
import zipfile


def main():
    archive = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory(prefix="fmnist-bundle-") as where:
        try:
            zipfile.ZipFile(archive).extractall(where)  # runtimes need real files, not zip members
        except Exception as e:  # BadZipFile, a CRC mismatch, zlib.error, a truncated member...
            print(f"error: {archive}: damaged bundle ({type(e).__name__}: {e}); copy it again or pack a new one",
                  file=sys.stderr)
            return 1
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
            if not p.relative_to(package).as_posix().startswith(tuple(HOST_ONLY))}


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def pack(folders: list[Path], formats: list[str], out: Path, test_images: np.ndarray, test_labels: np.ndarray,
         models: list[str], exports: Path) -> dict:
    """Write the bundle for these model folders and formats to `out` (atomically); returns its
    index (what it holds, with every file's SHA-256). The index, with each packed artifact's hash,
    is also kept under exports/ for `merge` to check a device's rows against."""
    members: dict[str, bytes] = {}
    artifacts = []
    for folder in folders:
        storage.verified_record(folder)
        for name in (storage.RECORD_FILE, storage.PROBABILITIES_FILE, storage.ARCHITECTURE_FILE):
            if (folder / name).is_file():  # a user model's architecture: its record hashes it
                members[f"{BUNDLE_DIR}/exports/{folder.name}/{name}"] = (folder / name).read_bytes()
        for artifact_folder in storage.artifact_folders(folder):
            manifest = storage.read_manifest(artifact_folder)
            if manifest["format"] not in formats:
                continue
            storage.verified_path(artifact_folder, manifest["artifact"], manifest["sha256"],
                                         manifest.get("files"))
            artifacts.append({"model": manifest["model"], "variant": manifest["variant"], "format": manifest["format"],
                              "sha256": manifest["sha256"]})
            for file in storage.artifact_files(artifact_folder, manifest):
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
    packed_index = Path(exports) / PACKED_DIR / f"{index['sha256']}.json"  # what merge checks rows against
    write_json(packed_index, {**index, "artifacts": artifacts})
    with atomic_path(Path(out)) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("__main__.py", BOOTSTRAP, compress_type=zipfile.ZIP_STORED)  # no zlib.error before it runs
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


SHA256 = re.compile(r"[0-9a-f]{64}")


def device_result_problem(result, exports: Path) -> str | None:
    """Why a runner's JSON cannot be published, or None: the right kind and bundle version, records
    matching their hash, and every row valid (`fmnist.validation`) and of an artifact this host packed
    (exports/bundles/) or still holds (its manifests). Checked at merge and again at every publish."""
    if not isinstance(result, dict) or result.get("kind") != "fmnist-device-run":
        return "not a device result written by the bundle runner"
    bundle = result.get("bundle")
    version = bundle.get("version") if isinstance(bundle, dict) else None
    if version != BUNDLE_VERSION:
        return (f"made by bundle version {str(version)[:20]}, this fmnist-edge merges version {BUNDLE_VERSION}; "
                f"pack and run a new bundle")
    records = result.get("records")
    if not isinstance(records, list) or records_digest(records) != result.get("records_sha256"):
        return "its records do not match their SHA-256: the file was altered or cut short"
    return validation.device_result_problem(result, known_artifacts(exports, bundle.get("sha256")))


def known_artifacts(exports: Path, bundle_sha256) -> dict:
    """{(model, variant, format): sha256} of the artifacts a device row may name: those packed into
    its bundle (the pack index kept on this host) and those the exports hold now."""
    known = {}
    for folder in storage.trained_folders(exports):
        for artifact_folder in storage.artifact_folders(folder):
            try:
                m = storage.read_manifest(artifact_folder)
            except storage.StorageError:
                continue
            known[(m["model"], m["variant"], m["format"])] = m["sha256"]
    index = Path(exports) / PACKED_DIR / f"{bundle_sha256}.json"
    if isinstance(bundle_sha256, str) and SHA256.fullmatch(bundle_sha256) and index.is_file():
        try:
            known |= {(a["model"], a["variant"], a["format"]): a["sha256"]
                      for a in json.loads(index.read_text())["artifacts"]}
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return known


def read_device_result(path: Path, exports: Path) -> dict:
    """A runner's JSON, checked as untrusted input (`device_result_problem`); BundleError otherwise."""
    try:
        result = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except (OSError, ValueError, RecursionError) as e:
        raise BundleError(f"{path}: not a device result ({one_line(e, 120)})") from None
    problem = device_result_problem(result, exports)
    if problem:
        raise BundleError(f"{path}: {problem}")
    return result
