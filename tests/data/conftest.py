from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lit_tiny.data.prepare import prepare_files
from lit_tiny.tokenizer import train_bpe_tokenizer
from tests.conftest import SAMPLE_TEXTS
from tests.data.fixtures import prose


@pytest.fixture(scope="session")
def letters_and_digits(tmp_path_factory) -> dict[str, Path]:
    """Two prepared sources whose tokens never overlap (apart from BOS/EOS): letters-only and digits-only text."""
    root = tmp_path_factory.mktemp("mix")
    rng = random.Random(0)
    letters = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(30, 200))) for _ in range(300)]
    digits = ["".join(rng.choice("0123456789") for _ in range(rng.randint(30, 200))) for _ in range(300)]
    tok = root / "tokenizer"
    train_bpe_tokenizer(letters + digits + SAMPLE_TEXTS, vocab_size=320, out_dir=tok)
    out = {"tokenizer": tok}
    for name, texts in (("letters", letters), ("digits", digits)):
        raw = root / "raw" / name
        raw.mkdir(parents=True)
        files = []
        for i in range(30):
            f = raw / f"doc{i}.jsonl"
            f.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[i * 10 : (i + 1) * 10]))
            files.append(f)
        prepare_files(files, tok, root / name, source=name, num_workers=2, chunk_tokens=600)
        out[name] = root / name
    return out


@pytest.fixture
def english(tmp_path) -> list[str]:
    rng = random.Random(3)
    return [prose(rng, rng.randint(5, 60)) for _ in range(50)]
