"""Raw inputs in the real upstream schemas: SlimPajama jsonl.zst and Starcoderdata parquet."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

WORDS = "the of and to in a is that for it as was with be by on not he this are or his from at which".split()


def prose(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words)).capitalize() + "."


def code(rng: random.Random, i: int) -> str:
    return f"def f_{i}(x):\n    return x * {rng.randint(0, 99)} + {rng.randint(0, 99)}\n"


def write_slimpajama(root: Path, n_files: int = 3, docs_per_file: int = 40, seed: int = 0, split: str = "train") -> list[dict]:
    """``root/<split>/chunk1/example_train_<i>.jsonl.zst``; every fifth document is in RedPajamaGithub."""
    rng = random.Random(seed)
    records = []
    for f in range(n_files):
        lines = []
        for d in range(docs_per_file):
            set_name = "RedPajamaGithub" if d % 5 == 0 else rng.choice(["RedPajamaC4", "RedPajamaWikipedia", "RedPajamaBook"])
            record = {"text": prose(rng, rng.randint(20, 120)), "meta": {"redpajama_set_name": set_name}}
            records.append(record)
            lines.append(json.dumps(record))
        folder = root / split / f"chunk{1 + f % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        (folder / f"example_{split}_{f}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    return records


def write_starcoder(root: Path, languages=("python", "java"), files_per_language: int = 2, rows: int = 30, seed: int = 1) -> dict[str, list[str]]:
    """``root/<language>/train-0000<i>.parquet`` with Starcoderdata's columns."""
    rng = random.Random(seed)
    texts: dict[str, list[str]] = {}
    for lang in languages:
        (root / lang).mkdir(parents=True, exist_ok=True)
        for f in range(files_per_language):
            content = [code(rng, i) for i in range(rows)]
            texts.setdefault(lang, []).extend(content)
            table = pa.table({
                "max_stars_repo_path": [f"src/file_{i}.py" for i in range(rows)],
                "max_stars_repo_name": ["someone/repo"] * rows,
                "max_stars_count": [rng.randint(0, 1000) for _ in range(rows)],
                "id": [f"{lang}-{f}-{i}" for i in range(rows)],
                "content": content,
            })
            pq.write_table(table, root / lang / f"train-{f:05d}-of-00002.parquet")
    return texts
