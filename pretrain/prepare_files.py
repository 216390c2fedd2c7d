"""Tokenize any local jsonl (``.jsonl``, ``.jsonl.zst``), parquet or plain-text files into litdata token chunks.

A jsonl line is one document (text under ``--text_key``), a parquet row is one document (text in
``--column``), and a text file is one document.
"""

from pathlib import Path
from typing import Optional

from lit_tiny.cli import run
from lit_tiny.data.prepare import DEFAULT_CHUNK_TOKENS, prepare_files
from lit_tiny.data.sources import find_files


def main(
    input_dir: Path,
    tokenizer_dir: Path,
    out_dir: Path,
    patterns: list[str] = ["**/*.jsonl", "**/*.jsonl.zst", "**/*.parquet", "**/*.txt"],
    text_key: str = "text",
    column: str = "text",
    name: str = "files",
    num_workers: Optional[int] = None,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    skip_corrupt_files: bool = False,
) -> None:
    """Prepare a folder of local files.

    Args:
        input_dir: Folder searched with ``patterns``.
        tokenizer_dir: Folder with tokenizer.json or tokenizer.model.
        out_dir: Output folder of token chunks.
        patterns: Glob patterns, relative to ``input_dir``.
        text_key: jsonl field holding the text.
        column: parquet column holding the text.
        name: Source name shown in the summary.
        num_workers: Tokenizer processes (default: one per CPU core).
        chunk_tokens: Tokens per litdata chunk file.
        skip_corrupt_files: Count and skip unreadable files instead of stopping.
    """
    prepare_files(find_files(input_dir, patterns, name), tokenizer_dir, out_dir, name, text_key=text_key,
                  column=column, num_workers=num_workers, chunk_tokens=chunk_tokens,
                  skip_corrupt_files=skip_corrupt_files)


if __name__ == "__main__":
    run(main)
