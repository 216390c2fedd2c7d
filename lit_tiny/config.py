"""Model configuration: one dataclass, named presets, parameter and FLOP accounting."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

AttentionBackend = Literal["sdpa", "sdpa_cudnn", "sdpa_flash", "sdpa_efficient", "sdpa_math", "flash"]
LossBackend = Literal["full", "chunked", "liger"]
KernelBackend = Literal["pytorch", "liger"]


@dataclass(frozen=True)
class Config:
    """Shape of a Llama-2-style decoder.

    Args:
        name: Preset name (free text for custom shapes).
        block_size: Longest sequence the model is trained on (RoPE cache length).
        vocab_size: Rows of the embedding and the output head; must match the tokenizer.
        n_layer: Transformer blocks.
        n_embd: Hidden width.
        n_head: Query heads.
        n_query_groups: Key/value heads (grouped-query attention); must divide ``n_head``.
        intermediate_size: Hidden width of the SwiGLU MLP.
        norm_eps: RMSNorm epsilon.
        rope_base: RoPE frequency base.
        attention_backend: ``sdpa`` (PyTorch's scaled_dot_product_attention, which picks its kernel; any
            device), one SDPA kernel forced: ``sdpa_cudnn`` (cuDNN, CUDA), ``sdpa_flash`` (flash, CUDA and CPU),
            ``sdpa_efficient`` (memory-efficient, CUDA), ``sdpa_math`` (the reference, any device); or ``flash``
            (the flash-attn package's FlashAttention-2, CUDA). See ``lit_tiny.kernels``.
        loss_backend: Cross-entropy of ``GPT.forward(idx, targets=...)``: ``chunked`` (never holds the
            full logits; see ``lit_tiny.losses``), ``full`` (the plain reference) or ``liger`` (Liger-kernel's
            fused linear cross-entropy, CUDA).
        kernel_backend: RMSNorm, SwiGLU and RoPE: ``pytorch`` (the reference) or ``liger`` (Liger-kernel's
            Triton kernels, CUDA).
    """

    name: str = "custom"
    block_size: int = 2048
    vocab_size: int = 32000
    n_layer: int = 22
    n_embd: int = 2048
    n_head: int = 32
    n_query_groups: int = 4
    intermediate_size: int = 5632
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    attention_backend: AttentionBackend = "sdpa"
    loss_backend: LossBackend = "chunked"
    kernel_backend: KernelBackend = "pytorch"

    def __post_init__(self) -> None:
        for f in ("block_size", "vocab_size", "n_layer", "n_embd", "n_head", "n_query_groups", "intermediate_size"):
            if getattr(self, f) <= 0:
                raise ValueError(f"Config {self.name!r}: {f} must be positive, got {getattr(self, f)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"Config {self.name!r}: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_head % self.n_query_groups:
            raise ValueError(
                f"Config {self.name!r}: n_head={self.n_head} is not divisible by n_query_groups={self.n_query_groups}"
            )
        if self.head_size % 2:
            raise ValueError(f"Config {self.name!r}: RoPE needs an even head size, got {self.head_size}")
        for field, allowed in (("attention_backend", AttentionBackend), ("loss_backend", LossBackend),
                               ("kernel_backend", KernelBackend)):
            if getattr(self, field) not in get_args(allowed):
                raise ValueError(f"Config {self.name!r}: {field} must be one of {get_args(allowed)}, "
                                 f"got {getattr(self, field)!r}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    # ---------------------------------------------------------------- presets and files

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "Config":
        if name not in PRESETS:
            raise ValueError(f"Unknown model name {name!r}. Known names: {', '.join(sorted(PRESETS))}")
        return replace(PRESETS[name], **overrides)

    @classmethod
    def from_file(cls, path: str | Path) -> "Config":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Model config {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(asdict(self), sort_keys=False))

    # ---------------------------------------------------------------- accounting

    def block_params(self) -> int:
        """Parameters of one transformer block (attention, MLP and its two norms)."""
        d, hs = self.n_embd, self.head_size
        attention = d * (self.n_head + 2 * self.n_query_groups) * hs + self.n_head * hs * d
        mlp = 3 * d * self.intermediate_size
        return attention + mlp + 2 * d

    def num_params(self, non_embedding: bool = False) -> int:
        """Total parameters. ``non_embedding`` drops the token embedding and the output head
        (Kaplan et al.'s N: blocks plus the final norm)."""
        body = self.n_layer * self.block_params() + self.n_embd
        return body if non_embedding else body + 2 * self.vocab_size * self.n_embd

    def matmul_params(self) -> int:
        """Parameters that take part in a matrix multiply: block linears plus the output head."""
        return self.n_layer * (self.block_params() - 2 * self.n_embd) + self.vocab_size * self.n_embd

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token, PaLM convention: 6 x matmul params (lm_head included)
        plus 12 * L * H * Q * T for attention scores and values, with no causal discount."""
        seq_len = self.block_size if seq_len is None else seq_len
        attention = 12 * self.n_layer * self.n_head * self.head_size * seq_len
        return 6 * self.matmul_params() + attention


def query_groups(n_head: int, heads_per_group: int) -> int:
    """The divisor of ``n_head`` closest (in ratio) to ``n_head / heads_per_group``; ties go to more groups."""
    target = n_head / heads_per_group
    divisors = [g for g in range(1, n_head + 1) if n_head % g == 0]
    return min(divisors, key=lambda g: (abs(math.log(g / target)), -g))


def default_head_size(n_embd: int) -> int:
    """32 below width 512, 64 from there (TinyLlama and Llama use 64)."""
    return 32 if n_embd < 512 else 64


def llama_shape(
    n_layer: int,
    n_embd: int,
    head_size: int | None = None,
    heads_per_group: int = 4,
    intermediate_multiple: int = 8,
    intermediate_size: int | None = None,
    vocab_size: int = 32000,
    block_size: int = 2048,
    name: str = "custom",
) -> Config:
    """A Llama 2 block shape of the given depth and width: the one recipe behind the ``ladder_N``
    presets and the scaling ladders of ``lit_tiny.scaling.ladder``.

    Args:
        n_layer, n_embd: Depth and width.
        head_size: Dimension per head (default ``default_head_size(n_embd)``).
        heads_per_group: Query heads per key/value head aimed for (TinyLlama: 8); the group count is
            the divisor of ``n_head`` nearest to ``n_head / heads_per_group``.
        intermediate_multiple: The SwiGLU width defaults to 8/3 ``n_embd`` rounded up to a multiple of this.
        intermediate_size: Explicit SwiGLU width instead of that default.
        vocab_size, block_size, name: Passed to ``Config``.
    """
    head_size = head_size or default_head_size(n_embd)
    if n_embd % head_size:
        raise ValueError(f"n_embd={n_embd} is not a multiple of head_size={head_size}")
    n_head = n_embd // head_size
    return Config(
        name=name,
        block_size=block_size,
        vocab_size=vocab_size,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_query_groups=query_groups(n_head, heads_per_group),
        intermediate_size=intermediate_size or -(-8 * n_embd // (3 * intermediate_multiple)) * intermediate_multiple,
    )


PRESETS: dict[str, Config] = {
    c.name: c
    for c in [
        Config(name="tiny_LLaMA_1b"),
        Config(
            name="tiny_LLaMA_120M",
            n_layer=12,
            n_embd=768,
            n_head=12,
            n_query_groups=1,
            intermediate_size=2048,
        ),
        # Trains on 2 CPU cores in minutes; the vocabulary matches the demo tokenizer.
        Config(
            name="debug",
            block_size=256,
            vocab_size=4096,
            n_layer=4,
            n_embd=128,
            n_head=4,
            n_query_groups=2,
            intermediate_size=352,
        ),
        # Ladder for scaling studies on the demo corpus (its 4,096-token vocabulary), roughly x2 in
        # non-embedding parameters per rung, width/depth 32.
        *(llama_shape(n_layer, n_embd, vocab_size=4096, block_size=512, name=f"ladder_{i}")
          for i, (n_layer, n_embd) in enumerate([(2, 64), (3, 96), (4, 128), (5, 160), (6, 192), (8, 256),
                                                 (10, 320), (12, 384)])),
    ]
}
