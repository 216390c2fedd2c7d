"""Document readers for the raw formats: jsonl (plain or .zst), parquet and plain text.

Every reader yields the text of each document and records what it skipped in a :class:`FileStats`,
so a preparation run can say exactly what went in and what was left out. Problems that make a file
unreadable (a truncated .zst, a parquet file without the text column, invalid UTF-8 in a .txt) raise
:class:`DataError` naming the file; a single malformed json line is skipped, counted and reported
with its line number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

MAX_REPORTED_PROBLEMS = 20


class DataError(ValueError):
    """Input data that cannot be used as is. The message names the file (and line) and the fix."""


@dataclass
class FileStats:
    """What one input file contributed."""

    path: str
    documents: int = 0
    tokens: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def skip(self, reason: str, detail: Optional[str] = None) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if detail and len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(detail)


def read_jsonl(
    path: Path,
    stats: FileStats,
    text_key: str = "text",
    exclude_sets: Sequence[str] = (),
) -> Iterator[str]:
    """Documents of a ``.jsonl`` or ``.jsonl.zst`` file: one json object per line with the text under ``text_key``.

    Lines whose ``meta.redpajama_set_name`` is in ``exclude_sets`` are skipped and counted
    (TinyLlama drops ``RedPajamaGithub`` from SlimPajama because Starcoderdata covers code).
    """
    lines = _open_text(path)
    line_no = 0
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except Exception as e:  # zstd or UTF-8 failure mid-stream
            raise DataError(
                f"{path}: unreadable after line {line_no} ({type(e).__name__}: {e}). "
                "The file is truncated or corrupt: download it again, or pass --skip_corrupt_files to drop it."
            ) from e
        line_no += 1
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            stats.skip("malformed json line", f"{path}:{line_no}: {e.msg}")
            continue
        if not isinstance(record, dict) or not isinstance(record.get(text_key), str):
            stats.skip(f"no string {text_key!r} field", f"{path}:{line_no}: no string field {text_key!r}")
            continue
        meta = record.get("meta")
        set_name = meta.get("redpajama_set_name") if isinstance(meta, dict) else None
        if set_name in exclude_sets:
            stats.skip(f"excluded set {set_name}")
            continue
        if not record[text_key]:
            stats.skip("empty text")
            continue
        yield record[text_key]


def read_parquet(path: Path, stats: FileStats, column: str = "content", batch_rows: int = 1024) -> Iterator[str]:
    """Documents of a parquet file, read in row batches from the text ``column`` (Starcoderdata: ``content``)."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as e:
        raise DataError(f"{path}: not a readable parquet file ({e}). Download it again, or pass --skip_corrupt_files.") from e
    if column not in parquet.schema_arrow.names:
        raise DataError(
            f"{path}: no column {column!r}; the file has columns {parquet.schema_arrow.names}. "
            f"Pass the text column's name (Starcoderdata keeps code in 'content')."
        )
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=[column]):
        for text in batch.column(0).to_pylist():
            if not isinstance(text, str) or not text:
                stats.skip("empty or null text")
                continue
            yield text


def read_text(path: Path, stats: FileStats) -> Iterator[str]:
    """A plain-text file is one document."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 at byte {e.start}. Convert it to UTF-8 first.") from e
    if text.strip():
        yield text
    else:
        stats.skip("empty text")


def read_documents(path: Path, stats: FileStats, text_key: str = "text", column: str = "content",
                   exclude_sets: Sequence[str] = ()) -> Iterator[str]:
    """Dispatch on the file ending: ``.jsonl``, ``.jsonl.zst``, ``.json``, ``.parquet``, anything else as text."""
    name = path.name
    if name.endswith((".jsonl", ".jsonl.zst", ".json", ".json.zst")):
        return read_jsonl(path, stats, text_key, exclude_sets)
    if name.endswith(".parquet"):
        return read_parquet(path, stats, column)
    return read_text(path, stats)


def _open_text(path: Path) -> Iterator[str]:
    if path.name.endswith(".zst"):
        yield from _zst_lines(path)
    else:
        with open(path, encoding="utf-8") as f:
            yield from f


def _zst_lines(path: Path, read_bytes: int = 1 << 20) -> Iterator[str]:
    """Lines of a zstd-compressed UTF-8 file, frame by frame.

    zstandard's stream reader ends quietly at a truncated frame, which would silently drop the rest of
    a half-downloaded file, so frames are decoded one by one and an unfinished last frame raises.
    """
    import codecs

    import zstandard

    dctx = zstandard.ZstdDecompressor()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    with open(path, "rb") as f:
        frame, fed = dctx.decompressobj(), False
        while buf := f.read(read_bytes):
            while buf:
                fed = True
                pending += utf8.decode(frame.decompress(buf))
                if frame.eof:
                    buf = frame.unused_data
                    frame, fed = dctx.decompressobj(), False
                else:
                    buf = b""
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line
    if fed and not frame.eof:
        raise EOFError("the last zstd frame ends early")
    pending += utf8.decode(b"", final=True)
    if pending:
        yield pending
