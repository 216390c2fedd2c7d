import subprocess
import sys

import pytest
import torch

from lit_tiny.checkpoint import save_checkpoint
from lit_tiny.generate import generate, sample_next
from lit_tiny.model import GPT


@pytest.mark.parametrize("temperature,top_k", [(0.0, None), (1.0, 5), (0.7, None)])
def test_kv_cache_generation_equals_full_recompute(gqa_config, temperature, top_k):
    torch.manual_seed(0)
    model = GPT(gqa_config).eval()
    prompt = torch.randint(0, gqa_config.vocab_size, (5,))
    cached = list(generate(model, prompt, 30, temperature, top_k, generator=torch.Generator().manual_seed(3)))
    full = list(
        generate(model, prompt, 30, temperature, top_k, generator=torch.Generator().manual_seed(3), use_kv_cache=False)
    )
    assert len(cached) == 30
    assert cached == full
    assert all(block.attn.kv_cache is None for block in model.blocks)


def test_generation_stops_at_eos(gqa_config):
    torch.manual_seed(0)
    model = GPT(gqa_config).eval()
    prompt = torch.randint(0, gqa_config.vocab_size, (5,))
    greedy = list(generate(model, prompt, 10))
    stopped = list(generate(model, prompt, 10, eos_id=greedy[2]))
    assert stopped == greedy[: greedy.index(greedy[2]) + 1]


def test_top_k_only_samples_the_k_best():
    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0, 3.0]])
    g = torch.Generator().manual_seed(0)
    draws = {int(sample_next(logits, 1.0, top_k=2, generator=g)) for _ in range(200)}
    assert draws == {1, 2}
    assert int(sample_next(logits, 0.0)) == 1


def test_generate_cli_prints_a_continuation(tmp_path, gqa_config, tokenizer_dir):
    model = GPT(gqa_config)
    ckpt = save_checkpoint(
        tmp_path / "ckpt", model.state_dict(), gqa_config, [tokenizer_dir / f for f in ("tokenizer.json", "tokenizer_config.json")]
    )
    out = subprocess.run(
        [sys.executable, "-m", "lit_tiny", "generate", "--checkpoint_dir", str(ckpt), "--prompt", "The quick",
         "--max_new_tokens", "8", "--temperature", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("The quick")
    assert "tokens/s" in out.stderr


def test_generate_refuses_a_tokenizer_bigger_than_the_model(tmp_path, gqa_config, tokenizer_dir):
    from lit_tiny.config import Config
    from lit_tiny.generate import main

    small = Config(**{**gqa_config.__dict__, "vocab_size": 300})
    ckpt = save_checkpoint(tmp_path / "ckpt", GPT(small).state_dict(), small, [tokenizer_dir / "tokenizer.json"])
    with pytest.raises(ValueError, match="tokenizer.json has 384 tokens.*vocab_size is 300"):
        main(ckpt, max_new_tokens=2)


def test_generate_prints_what_decoding_the_whole_sequence_shows(tmp_path, gqa_config, tokenizer_dir):
    """A model that always predicts one word piece: the printed text keeps the space before each new word."""
    from lit_tiny.tokenizer import Tokenizer

    tokenizer = Tokenizer(tokenizer_dir)
    word = min(i for piece, i in tokenizer._hf.get_vocab().items() if piece.startswith("▁") and len(piece) > 3)
    model = GPT(gqa_config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.wte.weight.fill_(1.0)
        model.norm.weight.fill_(1.0)
        model.lm_head.weight[word] = 1.0
    ckpt = save_checkpoint(tmp_path / "ckpt", model.state_dict(), gqa_config, tokenizer.files())
    out = subprocess.run(
        [sys.executable, "-m", "lit_tiny", "generate", "--checkpoint_dir", str(ckpt), "--prompt", "import os",
         "--max_new_tokens", "3", "--temperature", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    whole = tokenizer.decode(tokenizer.encode("import os") + [word] * 3)
    assert whole.startswith("import os ") and out.stdout.rstrip("\n") == whole
