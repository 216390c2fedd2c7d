"""A Llama-2-architecture decoder in one file.

Read top to bottom: RMSNorm, rotary embeddings, attention (grouped-query, with a KV cache for
generation), the SwiGLU MLP, the pre-norm block, and the GPT that stacks them. Logits match
Hugging Face's ``LlamaForCausalLM`` holding the same weights (see ``lit_tiny.hf_interop``). The optional
fast kernels that the config's backend fields select live in ``lit_tiny.kernels``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from lit_tiny import kernels
from lit_tiny.config import Config, KernelBackend
from lit_tiny.losses import cross_entropy_loss


class RMSNorm(nn.Module):
    """x / rms(x) * weight. The statistic is computed in fp32 whatever the input dtype, since
    bf16's 8-bit mantissa loses the mean of squares in wide layers."""

    def __init__(self, size: int, eps: float = 1e-5, backend: KernelBackend = "pytorch") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "liger":
            return kernels.rms_norm(x, self.weight, self.eps)
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def build_rope_cache(seq_len: int, head_size: int, base: float, device: torch.device | None = None):
    """cos and sin tables of shape (seq_len, head_size), built in fp32.

    Channel i and channel i + head_size/2 form one rotating pair ("half-rotation" layout, as in
    Hugging Face Llama), with frequency base^(-2i/head_size). Each half repeats the frequencies.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, head_size, 2, device=device, dtype=torch.float32) / head_size))
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (x_i, x_{i+h/2}) pair by its angle: [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin]."""
    dtype = x.dtype
    x = x.float()
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x * cos + rotated * sin).to(dtype)


class KVCache(nn.Module):
    """Keys and values of the positions seen so far, for one attention layer."""

    def __init__(self, batch_size: int, n_query_groups: int, max_seq_len: int, head_size: int, device, dtype):
        super().__init__()
        shape = (batch_size, n_query_groups, max_seq_len, head_size)
        self.register_buffer("k", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        self.register_buffer("v", torch.zeros(shape, device=device, dtype=dtype), persistent=False)

    def update(self, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + k.size(2)
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        hs = config.head_size
        # One matmul for queries, keys and values: rows are [q heads | k groups | v groups].
        self.qkv = nn.Linear(config.n_embd, (config.n_head + 2 * config.n_query_groups) * hs, bias=False)
        self.proj = nn.Linear(config.n_head * hs, config.n_embd, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, start: int = 0) -> torch.Tensor:
        B, T, _ = x.shape
        c = self.config
        hs = c.head_size
        q, k, v = self.qkv(x).split((c.n_head * hs, c.n_query_groups * hs, c.n_query_groups * hs), dim=-1)
        q = q.view(B, T, c.n_head, hs).transpose(1, 2)  # (B, n_head, T, hs)
        k = k.view(B, T, c.n_query_groups, hs).transpose(1, 2)  # (B, n_query_groups, T, hs)
        v = v.view(B, T, c.n_query_groups, hs).transpose(1, 2)
        if c.kernel_backend == "liger":
            q, k = kernels.rope(q, k, cos, sin)
        else:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

        if self.kv_cache is not None:
            k, v = self.kv_cache.update(start, k, v)
        elif c.attention_backend == "flash":
            return self.proj(kernels.flash_attention(q, k, v).reshape(B, T, c.n_head * hs))

        # Query t may see keys 0 .. start + t. Without earlier context that is the plain causal mask
        # (computed by the SDPA kernel the config chose), and a single new query sees every cached key.
        if start == 0:
            with kernels.sdpa_kernel(c.attention_backend, x.device):
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            mask = None
            if T > 1:
                rows = torch.arange(T, device=x.device).unsqueeze(1) + start
                mask = torch.arange(k.size(2), device=x.device).unsqueeze(0) <= rows
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        y = y.transpose(1, 2).reshape(B, T, c.n_head * hs)
        return self.proj(y)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); gate and up share one matmul."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.gate_up = nn.Linear(config.n_embd, 2 * config.intermediate_size, bias=False)
        self.proj = nn.Linear(config.intermediate_size, config.n_embd, bias=False)
        self.backend = config.kernel_backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.proj(kernels.swiglu(gate, up) if self.backend == "liger" else F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.norm_1 = RMSNorm(config.n_embd, config.norm_eps, config.kernel_backend)
        self.attn = CausalSelfAttention(config)
        self.norm_2 = RMSNorm(config.n_embd, config.norm_eps, config.kernel_backend)
        self.mlp = SwiGLU(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, start: int = 0) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), cos, sin, start)
        return x + self.mlp(self.norm_2(x))


class GPT(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd, config.norm_eps, config.kernel_backend)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.max_seq_len = config.block_size
        self.reset_parameters()

    # The RoPE tables are derived state: rebuilt on demand, never saved, and kept in fp32 even
    # when the module is cast to bf16.
    def rope_cache(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        cached = getattr(self, "_rope", None)
        if cached is None or cached[0].device != device or cached[0].size(0) < self.max_seq_len:
            self._rope = build_rope_cache(self.max_seq_len, self.config.head_size, self.config.rope_base, device)
        return self._rope

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """TinyLlama's init: N(0, sqrt(2 / 5d)) for embeddings and linears; the two residual output
        projections get std 1 / sqrt(d) / n_layer so the residual stream stays small at depth."""
        std = math.sqrt(2.0 / (5 * self.config.n_embd))
        out_std = 1.0 / math.sqrt(self.config.n_embd) / self.config.n_layer
        for name, p in self.named_parameters():
            if name.endswith("norm_1.weight") or name.endswith("norm_2.weight") or name == "norm.weight":
                p.fill_(1.0)
            elif name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                p.normal_(0.0, out_std)
            else:
                p.normal_(0.0, std)

    def forward(self, idx: torch.Tensor, start: int = 0, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids ``idx`` (B, T) placed at positions start .. start+T-1.
        ``start`` > 0 is only meaningful with KV caches set (see ``set_kv_cache``).

        With ``targets`` (B, T), returns the mean next-token cross-entropy instead, computed by
        ``lit_tiny.losses`` with ``config.loss_backend`` (``chunked`` never holds the full logits)."""
        T = idx.size(1)
        if start + T > self.max_seq_len:
            raise ValueError(f"Sequence of {start + T} tokens exceeds the model's max_seq_len {self.max_seq_len}")
        cos, sin = self.rope_cache(idx.device)
        cos, sin = cos[start : start + T], sin[start : start + T]
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x, cos, sin, start)
        x = self.norm(x)
        if targets is not None:
            return cross_entropy_loss(x, self.lm_head.weight, targets, self.config.loss_backend)
        return self.lm_head(x)

    def set_kv_cache(self, batch_size: int, max_seq_len: int | None = None) -> None:
        """Allocate a KV cache in every layer for generation; ``clear_kv_cache`` drops them."""
        if max_seq_len is not None:
            self.max_seq_len = max_seq_len
        p = self.lm_head.weight
        for block in self.blocks:
            block.attn.kv_cache = KVCache(
                batch_size, self.config.n_query_groups, self.max_seq_len, self.config.head_size, p.device, p.dtype
            )

    def clear_kv_cache(self) -> None:
        """Drop the KV caches and restore the sequence limit ``set_kv_cache`` may have raised."""
        for block in self.blocks:
            block.attn.kv_cache = None
        self.max_seq_len = self.config.block_size
