"""``lit-tiny`` command: ``lit-tiny <subcommand> --help`` lists each one's arguments."""

from __future__ import annotations

from pathlib import Path

from lit_tiny.cli import run
from lit_tiny.generate import main as generate
from lit_tiny.hf_interop import convert_from_hf, convert_to_hf


def train_tokenizer(inputs: list[Path], out_dir: Path, vocab_size: int = 32000, suffixes: list[str] = [".txt", ".md"]) -> Path:
    """Train a Llama-style BPE tokenizer (byte fallback, Llama 2 special ids) on local text files.

    Args:
        inputs: Text files, or folders searched recursively for files ending in one of ``suffixes``.
        out_dir: Folder for tokenizer.json and tokenizer_config.json.
        vocab_size: Size of the vocabulary, specials and the 256 byte pieces included.
        suffixes: File endings collected from folders.
    """
    from lit_tiny.tokenizer import TextFiles, train_bpe_tokenizer

    files: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in suffixes)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"Tokenizer input {p} does not exist")
    if not files:
        raise FileNotFoundError(f"No files ending in {suffixes} under {[str(p) for p in inputs]}")
    print(f"Training a {vocab_size}-token BPE tokenizer on {len(files)} files ...")
    path = train_bpe_tokenizer(TextFiles(files), vocab_size, out_dir)
    print(f"Wrote {path}")
    return path


COMMANDS = {
    "convert_from_hf": convert_from_hf,
    "convert_to_hf": convert_to_hf,
    "generate": generate,
    "train_tokenizer": train_tokenizer,
}


def main() -> None:
    run(COMMANDS)


if __name__ == "__main__":
    main()
