"""The optimizer and learning-rate schedule of the TinyLlama / LLaMA recipe."""

from __future__ import annotations

import math
from typing import Optional

import torch


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, betas: tuple[float, float],
                   eps: float, fused: Optional[bool] = None) -> torch.optim.AdamW:
    """AdamW over every parameter, decay included on norms and embeddings as in TinyLlama's script.

    ``fused=None`` picks PyTorch's fused (single-kernel) AdamW when the parameters live on a GPU.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if fused is None:
        fused = params[0].device.type == "cuda"
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps, fused=fused)


def cosine_lr(step: int, max_steps: int, lr: float, min_lr: float, warmup_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup over ``warmup_steps`` steps to
    ``lr``, then half a cosine down to ``min_lr`` at ``max_steps``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
