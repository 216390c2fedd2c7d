"""Where training data comes from: the upstream layouts, the prepared folders, TinyLlama's mix.

Upstream layouts, as downloaded:

* SlimPajama: ``<root>/<split>/chunk{1..10}/*.jsonl.zst`` (``split``: train, validation, test);
* Starcoderdata: ``<root>/<language>/*.parquet``, the code in column ``content``.

Prepared folders (``pretrain/prepare_*.py`` writes them, ``pretrain/tinyllama.py`` reads them by default):
``data/slimpajama/train``, ``data/slimpajama/validation`` and ``data/starcoder/train``, mixed by tokens
with TinyLlama's weights 0.693584 / 0.306416. The demo corpus (``lit_tiny.data.demo``) is one more
prepared dataset of the same shape, built on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from lit_tiny.data.prepare import SUMMARY_FILE, load_summary
from lit_tiny.data.readers import DataError

if TYPE_CHECKING:
    from lit_tiny.data.demo import DemoCorpus

TINYLLAMA_WEIGHTS = {"slimpajama": 0.693584, "starcoder": 0.306416}
SLIMPAJAMA_DIR = Path("data/slimpajama")
STARCODER_DIR = Path("data/starcoder")
DEFAULT_TRAIN_DIRS = (SLIMPAJAMA_DIR / "train", STARCODER_DIR / "train")
DEFAULT_VAL_DIRS = (SLIMPAJAMA_DIR / "validation",)


# ----------------------------------------------------------------- upstream layouts


def find_files(root: Path, patterns: Sequence[str], what: str) -> list[Path]:
    """Files under ``root`` matching any glob in ``patterns``; a clear error when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what}: input folder {root} does not exist")
    files = sorted({f for pattern in patterns for f in root.glob(pattern) if f.is_file()})
    if not files:
        raise DataError(f"{what}: no files matching {list(patterns)} under {root}")
    return files


def slimpajama_files(root: Path, split: str) -> list[Path]:
    """SlimPajama's layout: ``<root>/<split>/chunk{1..10}/*.jsonl.zst``."""
    return find_files(Path(root) / split, ["chunk*/*.jsonl.zst", "chunk*/*.jsonl"], f"SlimPajama {split}")


def starcoder_files(root: Path, languages: Optional[Sequence[str]] = None) -> list[Path]:
    """Starcoderdata's layout: ``<root>/<language>/*.parquet``, optionally only some languages."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Starcoderdata: input folder {root} does not exist")
    available = sorted(d.name for d in root.iterdir() if d.is_dir())
    if languages:
        unknown = sorted(set(languages) - set(available))
        if unknown:
            raise DataError(f"Starcoderdata: no folder for languages {unknown} under {root}; available: {available}")
        patterns = [f"{lang}/*.parquet" for lang in languages]
    else:
        patterns = ["*/*.parquet"]
    return find_files(root, patterns, "Starcoderdata")


# ----------------------------------------------------------------- what a training run reads


@dataclass
class Source:
    """A prepared data folder and its sampling weight."""

    path: Path
    weight: float = 1.0


@dataclass
class TrainingData:
    """Everything pretraining reads: weighted training sources, validation folders, the tokenizer the data
    was prepared with (its folder and :meth:`lit_tiny.tokenizer.Tokenizer.digest`)."""

    sources: list[Source]
    val_dirs: list[Path]
    tokenizer_dir: Path
    tokenizer_sha256: str

    def identity(self) -> dict:
        """What makes this data this data, whatever folder it sits in: each source's weight, documents and
        tokens, the validation folders' documents and tokens, and the tokenizer's digest."""
        def counts(path: Path) -> list[int]:
            summary = load_summary(path)
            return [summary["documents"], summary["tokens"]]

        return {"sources": [[s.weight, *counts(s.path)] for s in self.sources],
                "validation": [counts(p) for p in self.val_dirs], "tokenizer_sha256": self.tokenizer_sha256}


def training_data(train_dirs: Sequence[Path], weights: Sequence[float], val_dirs: Sequence[Path],
                  tokenizer_dir: Optional[Path], vocab_size: int, demo: Optional[DemoCorpus] = None) -> TrainingData:
    """Check prepared folders before any training starts: present, finished, and within ``vocab_size``.

    ``tokenizer_dir=None`` takes the tokenizer recorded by preparation. ``demo`` replaces the folders and the
    tokenizer with those of the demo corpus, built on first use; ``weights`` then mix its English and code.
    """
    if demo is not None:
        folders = demo.ensure()
        train_dirs, val_dirs = [folders["train_english"], folders["train_code"]], [folders["val_english"],
                                                                                 folders["val_code"]]
        tokenizer_dir = folders["tokenizer"]
    if len(weights) != len(train_dirs):
        raise DataError(f"{len(train_dirs)} training folders {[str(d) for d in train_dirs]} but {len(weights)} weights "
                        f"{list(weights)}: give one weight per folder.")
    if not val_dirs:
        raise DataError("No validation folders were given (data.val_dirs).")
    folders = [Path(d) for d in (*train_dirs, *val_dirs)]
    check_vocab(folders, vocab_size)
    recorded = data_tokenizer(folders)
    tokenizer = _tokenizer(Path(tokenizer_dir) if tokenizer_dir is not None else recorded.parent,
                           "data.tokenizer_dir" if tokenizer_dir is not None else f"{folders[0]}/{SUMMARY_FILE}")
    expected = load_summary(folders[0]).get("tokenizer_sha256")
    if expected is None and recorded.is_file():  # prepared before digests were recorded
        expected = _tokenizer(recorded.parent, f"{folders[0]}/{SUMMARY_FILE}").digest()
    if expected is None:
        print(f"warning: {folders[0]} does not record its tokenizer's digest and {recorded} is gone: "
              f"cannot check that {tokenizer.path} is the one the data was prepared with")
    elif tokenizer.digest() != expected:
        raise DataError(
            f"{tokenizer.path} is not the tokenizer {folders[0]} was prepared with ({recorded}): same ids would "
            "mean other text. Pass --data.tokenizer_dir with the folder of that tokenizer, or prepare the data "
            "again with this one.")
    if tokenizer.vocab_size > vocab_size:
        raise DataError(f"{tokenizer.path} has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                        f"{vocab_size}: use a model config with vocab_size >= {tokenizer.vocab_size}.")
    return TrainingData([Source(Path(d), w) for d, w in zip(train_dirs, weights)], [Path(d) for d in val_dirs],
                        tokenizer.path.parent, tokenizer.digest())


def data_tokenizer(data_dirs: Sequence[Path]) -> Path:
    """The tokenizer file the folders were prepared with; all of them must share one (by content)."""
    summaries = [(Path(d), load_summary(d)) for d in data_dirs]
    first, reference = summaries[0]
    for folder, summary in summaries[1:]:
        if summary.get("tokenizer_sha256") != reference.get("tokenizer_sha256"):
            raise DataError(
                f"{folder} was prepared with tokenizer {summary['tokenizer']} but {first} with "
                f"{reference['tokenizer']}, another one: the folders of one run must share a tokenizer. "
                "Prepare them again with the same --tokenizer_dir.")
    return Path(reference["tokenizer"])


def _tokenizer(folder: Path, named_by: str):
    from lit_tiny.tokenizer import Tokenizer

    if not folder.is_dir():
        raise DataError(f"Tokenizer folder {folder} (from {named_by}) does not exist; set data.tokenizer_dir to "
                        "the folder holding the tokenizer.json or tokenizer.model the data was prepared with.")
    return Tokenizer(folder)


def check_vocab(data_dirs: Sequence[Path], vocab_size: int) -> None:
    """Refuse data whose token ids do not fit the model's embedding table."""
    for d in data_dirs:
        summary = load_summary(d)
        if summary["max_token_id"] >= vocab_size:
            raise DataError(
                f"{d}: token ids go up to {summary['max_token_id']} (tokenizer {summary['tokenizer']}, "
                f"{summary['tokenizer_vocab_size']} tokens) but the model's vocab_size is {vocab_size}. "
                "Use the tokenizer the model was built for, or a model config with a larger vocab_size."
            )
