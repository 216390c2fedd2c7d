"""Optional fast kernels behind the config's backend fields, each imported only when a config selects it,
so that lit_tiny imports and runs on a CPU-only machine.

``attention_backend``
    ``sdpa`` lets PyTorch's ``scaled_dot_product_attention`` pick its kernel. ``sdpa_cudnn``, ``sdpa_flash``,
    ``sdpa_efficient`` and ``sdpa_math`` force one of PyTorch's kernels (``torch.nn.attention.sdpa_kernel``)
    for causal attention without earlier context (training, prefill); decoding with the KV cache, which
    needs a mask, lets PyTorch pick. ``flash`` calls the flash-attn package's FlashAttention-2.
``kernel_backend: liger`` and ``loss_backend: liger``
    Liger-kernel's Triton kernels: RMSNorm, SwiGLU and RoPE, and the fused linear cross-entropy
    (``lit_tiny.losses``). Each is a drop-in for the reference path, tested against it on a GPU.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import ContextManager

import torch

SDPA_KERNELS = {"sdpa_cudnn": "CUDNN_ATTENTION", "sdpa_flash": "FLASH_ATTENTION",
                "sdpa_efficient": "EFFICIENT_ATTENTION", "sdpa_math": "MATH"}
CPU_SDPA_KERNELS = ("sdpa_flash", "sdpa_math")


def sdpa_kernel(backend: str, device: torch.device) -> ContextManager:
    """The context under which ``scaled_dot_product_attention`` runs for ``attention_backend=backend``."""
    if backend not in SDPA_KERNELS:
        return contextlib.nullcontext()
    if device.type != "cuda" and backend not in CPU_SDPA_KERNELS:
        raise ValueError(f"attention_backend={backend!r} is a CUDA kernel; on {device.type} use one of "
                         f"'sdpa', {', '.join(repr(b) for b in CPU_SDPA_KERNELS)}")
    from torch.nn.attention import SDPBackend
    from torch.nn.attention import sdpa_kernel as restrict

    return restrict([getattr(SDPBackend, SDPA_KERNELS[backend])])


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal FlashAttention-2 (the flash-attn package) on (B, heads, T, hs) inputs; returns (B, T, heads, hs).
    Grouped-query attention is handled by the kernel."""
    try:
        from flash_attn import flash_attn_func
    except ImportError as e:
        raise ImportError(
            "attention_backend='flash' needs the flash-attn package on a CUDA machine "
            "(pip install flash-attn --no-build-isolation); use attention_backend='sdpa' otherwise"
        ) from e
    return flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True)


def liger(device: torch.device) -> ModuleType:
    """``liger_kernel.transformers.functional``, for tensors on ``device``."""
    if device.type != "cuda":
        raise ValueError(f"Liger-kernel's Triton kernels run on CUDA GPUs, not on {device.type}: use "
                         "kernel_backend='pytorch' and loss_backend='chunked' there")
    try:
        from liger_kernel.transformers import functional
    except ImportError as e:
        raise ImportError("kernel_backend='liger' and loss_backend='liger' need the liger-kernel package "
                          "(pip install liger-kernel; it needs Triton and a CUDA GPU); use "
                          "kernel_backend='pytorch' and loss_backend='chunked' otherwise") from e
    return functional


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Liger's RMSNorm in Llama's casting: the statistic in fp32, normalised x cast back, then times weight."""
    return liger(x.device).liger_rms_norm(x, weight, eps, casting_mode="llama")


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up in one Liger kernel."""
    return liger(gate.device).liger_swiglu(gate, up)


def rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Liger's half-rotation RoPE of (B, heads, T, hs) queries and keys with (T, hs) tables."""
    return liger(q.device).liger_rope(q, k, cos, sin)
