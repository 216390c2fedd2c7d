"""lit_tiny.data.demo: the demo corpus in another vocabulary and size, as a scaling sweep builds it."""

from __future__ import annotations

import json

import pytest

from lit_tiny.data.demo import DemoCorpus, ensure_demo_corpus, stdlib_sources
from lit_tiny.data.prepare import load_summary
from lit_tiny.tokenizer import Tokenizer
from lit_tiny.training.settings import DataArgs


def test_a_small_vocabulary_corpus_is_built_once_and_rebuilt_when_asked_for_another(tmp_path):
    folder = tmp_path / "demo_small"
    paths = ensure_demo_corpus(folder, vocab_size=500, code_bytes=200_000, num_workers=1)
    assert Tokenizer(paths["tokenizer"]).vocab_size == 500
    code_tokens = load_summary(paths["train_code"])["tokens"]
    assert 0 < code_tokens < 200_000  # at most code_bytes of code, at least one byte per token
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["vocab_size"] == 500 and manifest["code_bytes"] == 200_000

    built = (folder / "manifest.json").stat().st_mtime_ns
    ensure_demo_corpus(folder, vocab_size=500, code_bytes=200_000, num_workers=1)
    assert (folder / "manifest.json").stat().st_mtime_ns == built  # reused, not rebuilt

    DemoCorpus(folder, vocab_size=520, code_bytes=200_000).ensure()
    assert Tokenizer(paths["tokenizer"]).vocab_size == 520


def test_demo_settings_and_bad_sizes():
    data = DataArgs(demo_dir="data/x", demo_vocab_size=512, demo_code_bytes=40_000_000)
    assert data.demo() == DemoCorpus("data/x", 512, 40_000_000)
    assert DataArgs().demo() is None
    with pytest.raises(ValueError, match="256 <= vocab_size <= 65536 and code_bytes >= 100000"):
        ensure_demo_corpus("unused", vocab_size=100)


def test_the_test_suites_come_after_the_library_code():
    library, suites = stdlib_sources(), stdlib_sources(tests=True)
    assert library and not set(library) & set(suites)
    assert all({"test", "tests"} & set(p.parts) for p in suites)
