"""Shared fixtures: everything is built locally, nothing is downloaded."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lit_tiny.config import Config  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "Grouped-query attention shares keys and values across heads.",
    "Ünïcödé, 漢字 and emoji 🙂 fall back to bytes when they are rare.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "for i in range(10):\n\tprint(i * i)\n",
] * 20


def import_script(path: Path, name: str) -> ModuleType:
    """Import a script under ``pretrain/`` or ``eval/`` as module ``name`` (registered in ``sys.modules``,
    where jsonargparse and dataclasses resolve the script's string annotations)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


SAFETY_TIMEOUT_S = 900  # only a net against hangs: tests wait for events, never for wall-clock speed


def wait_for(condition, what: str, process=None, timeout: float = SAFETY_TIMEOUT_S) -> None:
    """Poll ``condition()`` until it holds. Fails (never goes on) if ``process`` exits first or the safety
    timeout passes."""
    import time

    end = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the process exited ({process.returncode}) before {what}:\n{out}\n{err}"[-6000:])
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A small Llama-style BPE tokenizer (byte fallback, ids 0/1/2 = <unk>/<s>/</s>)."""
    from lit_tiny.tokenizer import train_bpe_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    train_bpe_tokenizer(SAMPLE_TEXTS, vocab_size=384, out_dir=out)
    return out


def train_sentencepiece(folder: Path) -> Path:
    """A small sentencepiece BPE ``tokenizer.model`` with Llama 2's ids (unk 0, BOS 1, EOS 2, byte fallback)."""
    import sentencepiece as spm

    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(SAMPLE_TEXTS + ["<p>price</p> tags and </s> markers"]))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=400, model_type="bpe", minloglevel=2,
        byte_fallback=True, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
    )
    corpus.unlink()
    return folder


@pytest.fixture
def gqa_config() -> Config:
    """Grouped-query attention with more than one group: 4 query heads share 2 key/value heads."""
    return Config(
        name="test_gqa",
        block_size=64,
        vocab_size=384,
        n_layer=2,
        n_embd=64,
        n_head=4,
        n_query_groups=2,
        intermediate_size=96,
        rope_base=5000.0,
    )


def randomize_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Norm weights start at 1; make them random so that parity tests exercise them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

