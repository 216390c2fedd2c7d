"""Tokenize Starcoderdata (``<language>/*.parquet``, text in column ``content``) into litdata token chunks.

Output: ``<out_dir>/train/`` with ``prepare_summary.json``.
"""

from pathlib import Path
from typing import Optional

from lit_tiny.cli import run
from lit_tiny.data.prepare import DEFAULT_CHUNK_TOKENS, prepare_files
from lit_tiny.data.sources import starcoder_files


def main(
    input_dir: Path,
    tokenizer_dir: Path,
    out_dir: Path = Path("data/starcoder"),
    languages: Optional[list[str]] = None,
    column: str = "content",
    num_workers: Optional[int] = None,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    skip_corrupt_files: bool = False,
) -> None:
    """Prepare Starcoderdata.

    Args:
        input_dir: The downloaded starcoderdata folder, one sub-folder per language.
        tokenizer_dir: Folder with tokenizer.json or tokenizer.model.
        out_dir: ``train/`` is written inside it.
        languages: Only these language folders (default: all).
        column: Parquet column holding the source code.
        num_workers: Tokenizer processes (default: one per CPU core).
        chunk_tokens: Tokens per litdata chunk file.
        skip_corrupt_files: Count and skip unreadable files instead of stopping.
    """
    prepare_files(starcoder_files(input_dir, languages), tokenizer_dir, out_dir / "train", "starcoder/train",
                  column=column, num_workers=num_workers, chunk_tokens=chunk_tokens,
                  skip_corrupt_files=skip_corrupt_files)


if __name__ == "__main__":
    run(main)
