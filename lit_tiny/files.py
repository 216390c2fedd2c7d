"""Writing files and folders so that a reader, or a crash, never sees half of them; file digests."""

from __future__ import annotations

import hashlib
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
