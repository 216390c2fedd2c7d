"""Tokenize raw documents into litdata token chunks, in parallel, with an honest summary.

Each document becomes ``[BOS] text [EOS]`` (see :mod:`lit_tiny.tokenizer`); documents are packed back
to back into litdata chunks of about ``chunk_tokens`` tokens. Nothing is padded: the training loader
reads whole blocks inside each chunk and leaves at most one partial block per chunk unread.

The output folder is built under a temporary name and renamed into place only once complete, with
``prepare_summary.json`` beside litdata's ``index.json``: documents, tokens and skips per input
file and in total, the tokenizer's vocabulary and the largest token id written (checked against the
model's vocabulary before training).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch

from lit_tiny.data.readers import DataError, FileStats, read_documents
from lit_tiny.files import atomic_write_text

SUMMARY_FILE = "prepare_summary.json"
DEFAULT_CHUNK_TOKENS = 2049 * 1024  # 1024 blocks of TinyLlama's 2048 + 1 tokens
LIVE_INTERVAL_S = 2.0  # how often a worker reports its progress inside a file


@dataclass
class TokenizeFile:
    """litdata ``optimize`` function: one input file in, one token tensor per document out.

    Runs inside litdata's worker processes; the tokenizer is loaded once per process. Per-file statistics
    are written to ``stats_dir`` because workers cannot return values to the parent: a ``.live`` record
    every few seconds while a file is read (for the progress bar), the final one when it is done.
    """

    tokenizer_dir: str
    stats_dir: str
    text_key: str = "text"
    column: str = "content"
    exclude_sets: tuple[str, ...] = ()
    skip_corrupt_files: bool = False

    def __call__(self, path: str) -> Iterator[torch.Tensor]:
        from lit_tiny.tokenizer import Tokenizer

        if getattr(self, "_tokenizer", None) is None:
            self._tokenizer = Tokenizer(self.tokenizer_dir)
        tokenizer = self._tokenizer
        dtype = token_dtype(tokenizer.vocab_size)
        stats = FileStats(path)
        max_id = -1
        reported = time.monotonic()
        try:
            for text in read_documents(Path(path), stats, self.text_key, self.column, self.exclude_sets):
                ids = tokenizer.encode_document(text)
                stats.documents += 1
                stats.tokens += len(ids)
                max_id = max(max_id, max(ids))
                yield torch.tensor(ids, dtype=torch.int64).to(dtype)
                if time.monotonic() - reported > LIVE_INTERVAL_S:
                    self._write_live(stats)
                    reported = time.monotonic()
        except DataError as e:
            if not self.skip_corrupt_files:
                self._write(stats, max_id, fatal=str(e))
                raise
            stats.skip("corrupt file (rest of file dropped)", str(e))
        self._write(stats, max_id)

    def _write(self, stats: FileStats, max_id: int, fatal: Optional[str] = None) -> None:
        record = {**asdict(stats), "max_token_id": max_id, "fatal": fatal}
        atomic_write_text(Path(self.stats_dir, _stats_name(stats.path) + ".json"), json.dumps(record))
        Path(self.stats_dir, _stats_name(stats.path) + ".live").unlink(missing_ok=True)

    def _write_live(self, stats: FileStats) -> None:
        live = {"documents": stats.documents, "tokens": stats.tokens}
        atomic_write_text(Path(self.stats_dir, _stats_name(stats.path) + ".live"), json.dumps(live))


def _stats_name(path: str) -> str:
    return hashlib.sha1(path.encode()).hexdigest()[:16]


def token_dtype(vocab_size: int) -> torch.dtype:
    """uint16 halves the disk of int32 and holds every id of a vocabulary up to 65,536 (Llama 2 has 32,000)."""
    return torch.uint16 if vocab_size <= 2**16 else torch.int32


def prepare_files(
    files: Sequence[Path],
    tokenizer_dir: Path,
    out_dir: Path,
    source: str,
    text_key: str = "text",
    column: str = "content",
    exclude_sets: Sequence[str] = (),
    num_workers: Optional[int] = None,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    skip_corrupt_files: bool = False,
) -> dict:
    """Tokenize ``files`` into litdata chunks at ``out_dir`` and return the summary (also saved as JSON)."""
    from litdata import TokensLoader, optimize

    from lit_tiny.tokenizer import Tokenizer

    if not files:
        raise DataError(f"No input files for source {source!r}")
    tokenizer = Tokenizer(tokenizer_dir)  # fail here, not in a worker, if the tokenizer is missing
    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    stats_dir = out_dir.with_name(out_dir.name + ".stats")
    for d in (partial, stats_dir):
        shutil.rmtree(d, ignore_errors=True)
    stats_dir.mkdir(parents=True)
    num_workers = num_workers or max(1, min(len(files), os.cpu_count() or 1))
    print(f"[{source}] tokenizing {len(files)} files with {num_workers} processes into {out_dir}", flush=True)

    fn = TokenizeFile(str(tokenizer_dir), str(stats_dir), text_key, column, tuple(exclude_sets), skip_corrupt_files)
    try:
        with Progress(source, files, stats_dir):
            optimize(
                fn=fn,
                inputs=[str(f) for f in files],
                output_dir=str(partial),
                chunk_size=chunk_tokens,
                item_loader=TokensLoader(),
                num_workers=num_workers,
                mode="overwrite",
                verbose=False,  # no sign-up banner, no bars of its own: ours follows
            )
    except Exception:
        fatal = [r["fatal"] for r in _read_stats(stats_dir) if r["fatal"]]
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(stats_dir, ignore_errors=True)
        if fatal:
            raise DataError(fatal[0]) from None
        raise
    records = _read_stats(stats_dir)
    unfinished = sorted({str(f) for f in files} - {r["path"] for r in records})
    if unfinished:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(stats_dir, ignore_errors=True)
        raise DataError(
            f"[{source}] {len(unfinished)} of {len(files)} files were not processed (a worker process died; "
            f"see the log above), e.g. {unfinished[:3]}. Nothing was written to {out_dir}."
        )
    summary = summarize(source, records, tokenizer, files)
    (partial / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    shutil.rmtree(stats_dir)
    if summary["documents"] == 0:
        shutil.rmtree(partial)
        raise DataError(f"[{source}] no document survived reading {len(files)} files: {summary['skipped']}")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(partial, out_dir)
    print_summary(summary)
    return summary


class Progress:
    """One progress bar over the input bytes (files count when done), with documents and tokens per second
    so far, fed by the workers' records in ``stats_dir``; a thread polls them while litdata works."""

    def __init__(self, source: str, files: Sequence[Path], stats_dir: Path) -> None:
        self.source, self.stats_dir = source, Path(stats_dir)
        self.sizes = {str(f): Path(f).stat().st_size for f in files}
        self.stop = threading.Event()

    def __enter__(self) -> "Progress":
        from tqdm import tqdm

        self.bar = tqdm(total=sum(self.sizes.values()), unit="B", unit_scale=True, desc=f"[{self.source}]",
                        mininterval=1.0, dynamic_ncols=True)
        self.start = time.monotonic()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self._update()
        self.bar.close()

    def _poll(self) -> None:
        while not self.stop.wait(0.5):
            self._update()

    def _update(self) -> None:
        done, documents, tokens = 0, 0, 0
        for record in self.stats_dir.glob("*"):
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError):
                continue  # being replaced
            documents += data.get("documents", 0)
            tokens += data.get("tokens", 0)
            done += self.sizes.get(data.get("path"), 0)
        elapsed = max(time.monotonic() - self.start, 1e-9)
        self.bar.n = done
        self.bar.set_postfix_str(f"{documents:,} docs, {documents / elapsed:,.0f} docs/s, "
                                 f"{tokens / elapsed:,.0f} tokens/s", refresh=False)
        self.bar.refresh()


def summarize(source: str, records: list[dict], tokenizer, files: Sequence[Path]) -> dict:
    skipped: dict[str, int] = {}
    for r in records:
        for reason, n in r["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + n
    return {
        "source": source,
        "files": len(files),
        "documents": sum(r["documents"] for r in records),
        "tokens": sum(r["tokens"] for r in records),
        "skipped": skipped,
        "problems": [p for r in records for p in r["problems"]][:50],
        "max_token_id": max((r["max_token_id"] for r in records), default=-1),
        "tokenizer": str(tokenizer.path.resolve()),
        "tokenizer_sha256": tokenizer.digest(),
        "tokenizer_vocab_size": tokenizer.vocab_size,
        "bos_id": tokenizer.bos_id,
        "eos_id": tokenizer.eos_id,
        "document_format": "[BOS] text [EOS], packed back to back",
        "per_file": {r["path"]: {"documents": r["documents"], "tokens": r["tokens"], "skipped": r["skipped"]} for r in records},
    }


def print_summary(summary: dict) -> None:
    skipped = ", ".join(f"{n:,} {reason}" for reason, n in sorted(summary["skipped"].items())) or "none"
    print(
        f"[{summary['source']}] {summary['files']:,} files -> {summary['documents']:,} documents, "
        f"{summary['tokens']:,} tokens; skipped: {skipped}"
    )
    for problem in summary["problems"][:10]:
        print(f"  skipped: {problem}")


def load_summary(data_dir: Path) -> dict:
    path = Path(data_dir) / SUMMARY_FILE
    if not path.is_file():
        if not Path(data_dir).is_dir():
            raise DataError(f"Data folder {data_dir} does not exist. Prepare it first (see tutorials/data.md).")
        raise DataError(
            f"{path} is missing: {data_dir} was not written by lit_tiny's preparation (or it did not finish). "
            "Run the matching pretrain/prepare_*.py command."
        )
    return json.loads(path.read_text())


def _read_stats(stats_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(stats_dir).glob("*.json"))]
