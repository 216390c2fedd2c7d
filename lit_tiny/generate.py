"""Autoregressive sampling with the KV cache: greedy, temperature and top-k."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import torch

from lit_tiny.model import GPT


def sample_next(logits: torch.Tensor, temperature: float, top_k: Optional[int], generator=None) -> torch.Tensor:
    """Next token ids (B,) from last-position logits (B, vocab). temperature 0 means greedy."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate(
    model: GPT,
    prompt: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    eos_id: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    use_kv_cache: bool = True,
) -> Iterator[int]:
    """Yield new token ids one at a time for a 1-D ``prompt``.

    With the KV cache, the prompt is processed once and each step feeds only the newest token.
    ``use_kv_cache=False`` recomputes the whole sequence every step (the reference the cache is tested against).
    """
    if prompt.dim() != 1 or prompt.numel() == 0:
        raise ValueError("prompt must be a non-empty 1-D tensor of token ids")
    total = prompt.numel() + max_new_tokens
    if total > model.config.block_size and not use_kv_cache:
        raise ValueError(f"prompt + max_new_tokens = {total} exceeds block_size {model.config.block_size}")
    tokens = prompt.unsqueeze(0)
    if use_kv_cache:
        model.set_kv_cache(batch_size=1, max_seq_len=max(total, model.config.block_size))
    try:
        logits = model(tokens)
        for step in range(max_new_tokens):
            next_token = sample_next(logits[:, -1], temperature, top_k, generator)
            token = int(next_token)
            yield token
            if token == eos_id or step == max_new_tokens - 1:
                return
            if use_kv_cache:
                logits = model(next_token.view(1, 1), start=tokens.size(1))
                tokens = torch.cat((tokens, next_token.view(1, 1)), dim=1)
            else:
                tokens = torch.cat((tokens, next_token.view(1, 1)), dim=1)
                logits = model(tokens)
    finally:
        if use_kv_cache:
            model.clear_kv_cache()
            model.max_seq_len = model.config.block_size


def main(
    checkpoint_dir: Path,
    prompt: str = "Once upon a time,",
    max_new_tokens: int = 100,
    temperature: float = 0.8,
    top_k: Optional[int] = 200,
    seed: int = 1234,
    device: str = "auto",
    dtype: Optional[str] = None,
) -> str:
    """Continue a prompt with a lit_tiny checkpoint, printing tokens as they come.

    Args:
        checkpoint_dir: A lit_tiny checkpoint folder (model.safetensors, model_config.yaml, tokenizer).
        prompt: Text to continue. It is encoded with BOS in front and no EOS.
        max_new_tokens: Most tokens to generate; generation also stops at EOS.
        temperature: 0 for greedy decoding; higher is more random.
        top_k: Sample only among the k most likely tokens (None: all).
        seed: Random seed for sampling.
        device: cpu, cuda, or auto (cuda when available).
        dtype: float32, bfloat16 or float16; default bfloat16 on CUDA, float32 on CPU.
    """
    from lit_tiny.checkpoint import load_model
    from lit_tiny.hf_interop import DTYPES
    from lit_tiny.tokenizer import Tokenizer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = DTYPES[dtype] if dtype else (torch.bfloat16 if device == "cuda" else torch.float32)
    tokenizer = Tokenizer(checkpoint_dir)
    model = load_model(checkpoint_dir, device=device, dtype=torch_dtype).eval()
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"{tokenizer.path} has {tokenizer.vocab_size} tokens but the model's vocab_size is "
            f"{model.config.vocab_size}: the tokenizer does not belong to this checkpoint"
        )
    ids = torch.tensor(tokenizer.encode(prompt), device=device)
    generator = torch.Generator(device=device).manual_seed(seed)

    print(prompt, end="", flush=True)
    new: list[int] = []
    shown = ""
    t0 = time.perf_counter()
    for token in generate(model, ids, max_new_tokens, temperature, top_k, tokenizer.eos_id, generator):
        new.append(token)
        # Decode the whole continuation each time: byte-fallback pieces only form text together.
        text = tokenizer.decode(new)
        if not text.endswith("\ufffd"):
            print(text[len(shown) :], end="", flush=True)
            shown = text
    elapsed = time.perf_counter() - t0
    print(f"\n\n[{len(new)} tokens in {elapsed:.2f} s, {len(new) / max(elapsed, 1e-9):.1f} tokens/s]", file=sys.stderr)
    return prompt + tokenizer.decode(new)
