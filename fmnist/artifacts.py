"""Artifacts on disk: their digest (SHA-256, size, gzip size) and the manifests that describe them.

Export writes manifests; the benchmark finds every artifact from the manifests alone and refuses
one whose bytes no longer match.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


class ArtifactError(Exception):
    """An artifact is missing, unreadable or not the file its manifest describes."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def digest(path: Path, sizes: bool = True) -> dict:
    """SHA-256, raw size and gzip size (level 9) of a file, or of a folder's files taken together
    (a SavedModel is a folder): pruning only pays off once an artifact is compressed. Without
    `sizes`, the hash alone (the check before every use, where gzip would cost the most)."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: artifact not found")
    sha, size, gz = hashlib.sha256(), 0, 0
    for file in _files(path):
        raw = file.read_bytes()
        sha.update(str(file.relative_to(path.parent)).encode() + b"\0" + hashlib.sha256(raw).digest())
        size += len(raw)
        if sizes:
            gz += len(gzip.compress(raw, compresslevel=9, mtime=0))
    return {"sha256": sha.hexdigest(), **({"size_bytes": size, "size_gzip_bytes": gz} if sizes else {})}


def read_manifest(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{folder}: no {MANIFEST}") from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{folder / MANIFEST}: unreadable ({e})") from None


def verified_path(folder: Path, manifest: dict) -> Path:
    """The artifact's path, after checking its bytes are the ones the manifest describes."""
    path = Path(folder) / manifest["artifact"]
    actual = digest(path, sizes=False)["sha256"]
    if actual != manifest["sha256"]:
        raise ArtifactError(f"{path}: SHA-256 {actual[:12]}… does not match its manifest's "
                            f"{manifest['sha256'][:12]}…; re-export it (fmnist-export --force)")
    return path
