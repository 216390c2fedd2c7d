"""Tokenize SlimPajama (``train/chunk*/*.jsonl.zst``, ``validation/chunk*/...``) into litdata token chunks.

The ``RedPajamaGithub`` subset is dropped, as TinyLlama does, because Starcoderdata covers code.
Output: ``<out_dir>/<split>/`` for each split, with ``prepare_summary.json``.
"""

from pathlib import Path
from typing import Optional

from lit_tiny.cli import run
from lit_tiny.data.prepare import DEFAULT_CHUNK_TOKENS, prepare_files
from lit_tiny.data.sources import slimpajama_files


def main(
    input_dir: Path,
    tokenizer_dir: Path,
    out_dir: Path = Path("data/slimpajama"),
    splits: list[str] = ["train", "validation"],
    exclude_sets: list[str] = ["RedPajamaGithub"],
    num_workers: Optional[int] = None,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    skip_corrupt_files: bool = False,
) -> None:
    """Prepare SlimPajama.

    Args:
        input_dir: The downloaded SlimPajama-627B folder (holding train/, validation/, test/).
        tokenizer_dir: Folder with tokenizer.json or tokenizer.model (e.g. a converted TinyLlama checkpoint).
        out_dir: Where ``<split>/`` folders of token chunks are written.
        splits: Which splits to prepare.
        exclude_sets: ``meta.redpajama_set_name`` values to leave out.
        num_workers: Tokenizer processes (default: one per CPU core).
        chunk_tokens: Tokens per litdata chunk file.
        skip_corrupt_files: Count and skip unreadable files instead of stopping.
    """
    for split in splits:
        prepare_files(slimpajama_files(input_dir, split), tokenizer_dir, out_dir / split, f"slimpajama/{split}",
                      text_key="text", exclude_sets=exclude_sets, num_workers=num_workers,
                      chunk_tokens=chunk_tokens, skip_corrupt_files=skip_corrupt_files)


if __name__ == "__main__":
    run(main)
