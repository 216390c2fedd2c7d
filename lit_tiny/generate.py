"""Autoregressive sampling with the KV cache: greedy, temperature, top-k and top-p.

:func:`sample_next` is the one sampler: ``lit-tiny generate``, the sample printed after pretraining and
the lm-eval adapter's generation all draw their tokens with it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import torch

from lit_tiny.devices import InferencePrecision
from lit_tiny.model import GPT


def sample_next(logits: torch.Tensor, temperature: float = 0.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Next token ids (B,) from last-position logits (B, vocab).

    Temperature 0 is greedy. Otherwise the logits are divided by the temperature, then top-k keeps the k
    most likely tokens and top-p the smallest set whose probabilities reach p (the order Hugging Face's
    ``generate`` uses), and a token is drawn from what is left.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p; the best one always stays.
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate(
    model: GPT,
    prompt: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
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
            next_token = sample_next(logits[:, -1], temperature, top_k, top_p, generator)
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


def main(
    checkpoint_dir: Path,
    prompt: str = "Once upon a time,",
    max_new_tokens: int = 100,
    temperature: float = 0.8,
    top_k: Optional[int] = 200,
    top_p: Optional[float] = None,
    seed: int = 1234,
    device: str = "auto",
    precision: Optional[InferencePrecision] = None,
) -> str:
    """Continue a prompt with a lit_tiny checkpoint, printing tokens as they come.

    Args:
        checkpoint_dir: A lit_tiny checkpoint folder (model.safetensors, model_config.yaml, tokenizer).
        prompt: Text to continue. It is encoded with BOS in front and no EOS.
        max_new_tokens: Most tokens to generate; generation also stops at EOS.
        temperature: 0 for greedy decoding; higher is more random.
        top_k: Sample only among the k most likely tokens (null: all).
        top_p: Sample only among the most likely tokens whose probabilities add up to p (null: all).
        seed: Random seed for sampling.
        device: cpu, cuda, cuda:1, or auto (cuda when available).
        precision: 32-true, bf16-true or 16-true; default bf16-true on CUDA, 32-true on CPU.
    """
    from lit_tiny.checkpoint import load_model, load_tokenizer
    from lit_tiny.devices import inference_dtype, resolve_device, resolve_precision
    from lit_tiny.tokenizer import StreamingDecoder

    device = resolve_device(device)
    dtype = inference_dtype(resolve_precision(precision, device, training=False))
    model = load_model(checkpoint_dir, device=device, dtype=dtype).eval()
    tokenizer = load_tokenizer(checkpoint_dir)
    tokenizer.check_fits(model.config.vocab_size)
    ids = tokenizer.encode(prompt)
    generator = torch.Generator(device=device).manual_seed(seed)

    decoder = StreamingDecoder(tokenizer, ids)
    print(decoder.text, end="", flush=True)
    t0 = time.perf_counter()
    new = 0
    for token in generate(model, torch.tensor(ids, device=device), max_new_tokens, temperature, top_k, top_p,
                          tokenizer.eos_id, generator):
        new += 1
        print(decoder.push(token), end="", flush=True)
    print(decoder.flush(), end="", flush=True)
    elapsed = time.perf_counter() - t0
    print(f"\n\n[{new} tokens in {elapsed:.2f} s, {new / max(elapsed, 1e-9):.1f} tokens/s]", file=sys.stderr)
    return decoder.text
