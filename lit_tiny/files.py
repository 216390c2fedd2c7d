"""Writing files and folders so that a reader, or a crash, never sees half of them; file digests and
the integrity manifests of checkpoints and training states."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable


def atomic_write_dir(out_dir: str | Path, fill: Callable[[Path], None]) -> Path:
    """Build a folder in a temporary sibling with ``fill(tmp)``, then swap it in with renames.

    A crash at any point leaves either the old folder or the new one at ``out_dir``, never a half-written one.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{tag}")
    old = out_dir.with_name(f".{out_dir.name}.old-{tag}")
    try:
        tmp.mkdir()
        fill(tmp)
        ordinary_permissions(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out_dir


def ordinary_permissions(folder: str | Path) -> None:
    """Give ``folder``, and every file and folder under it, the modes a plain ``open``/``mkdir`` would:
    0666 and 0777 less the umask (some writers, safetensors among them, create files as 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [Path(folder), *Path(folder).rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file through a temporary sibling and a rename, so readers never see half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MANIFEST_FILE = "manifest.json"


class DamagedFolder(ValueError):
    """A checkpoint or training state whose files do not match its manifest. ``path`` is the file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


def write_manifest(folder: str | Path, **fields: object) -> Path:
    """Record the size and SHA-256 of every file under ``folder`` (plus ``fields``) in ``manifest.json``,
    written last: a folder whose manifest exists was complete when it was written."""
    folder = Path(folder)
    files = {
        str(f.relative_to(folder)): {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
        for f in sorted(folder.rglob("*")) if f.is_file() and f.name != MANIFEST_FILE
    }
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps({"files": files, **fields}, indent=2), encoding="utf-8")
    return path


def read_manifest(folder: str | Path) -> dict:
    """The manifest of ``folder``; ``DamagedFolder`` naming it when it is missing or unreadable."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise DamagedFolder(path, f"{path} is missing: {folder} was not written completely, or was damaged")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise ValueError("no 'files' table")
    except (ValueError, UnicodeDecodeError) as e:
        raise DamagedFolder(path, f"{path} is not a readable manifest ({e}): {folder} is damaged") from None
    return manifest


def verify_manifest(folder: str | Path, editable: tuple[str, ...] = ()) -> dict:
    """Check every file the manifest lists (present, size, SHA-256; only presence for ``editable`` ones);
    return the manifest. The first file that differs raises ``DamagedFolder`` naming it."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for name, expected in manifest["files"].items():
        path = folder / name
        if name in editable:
            continue
        if not path.is_file():
            raise DamagedFolder(path, f"{path} is missing (listed in {folder / MANIFEST_FILE})")
        size = path.stat().st_size
        if size != expected.get("bytes"):
            raise DamagedFolder(path, f"{path} has {size:,} bytes where {expected.get('bytes'):,} were written: "
                                      "it is truncated or was replaced")
        if sha256_file(path) != expected.get("sha256"):
            raise DamagedFolder(path, f"{path} does not match the checksum written with it: its bytes changed "
                                      "(disk damage, or an edit)")
    return manifest
