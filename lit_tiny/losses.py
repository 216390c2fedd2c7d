"""Next-token cross-entropy from the final hidden states and the output head's weight.

Three backends compute the same mean cross-entropy of ``hidden @ weight.T`` against the targets:

``full``
    The plain reference: all logits (N, vocab) at once, upcast to fp32, ``F.cross_entropy``. Autograd
    keeps the fp32 logits for the backward pass, the largest single activation of a small-model run.

``chunked``
    ``ChunkedCrossEntropy`` walks over the N = B * T rows a chunk at a time. For each chunk it computes
    the logits in the compute dtype, the fp32 log-softmax loss, and at once the gradients with respect
    to the chunk's hidden states and to the weight (softmax - one-hot). The logits of a chunk are freed
    before the next one, so neither the full logits nor their fp32 copy ever exist; the backward pass
    only scales the saved gradients.

``liger``
    Liger-kernel's fused linear cross-entropy (Triton, CUDA only; ``lit_tiny.kernels``): the same idea with
    the softmax, loss and logit gradient in one kernel per chunk. It reads the number of counted targets on
    the host (one synchronisation per call), which ``chunked`` never does.

The compute dtype is the autocast dtype inside ``torch.autocast`` and the inputs' dtype otherwise,
so fp32, bf16-mixed and bf16-true runs see the same matmul precision under every backend.
"""

from __future__ import annotations

from typing import get_args

import torch
import torch.nn.functional as F

from lit_tiny import kernels
from lit_tiny.config import LossBackend

IGNORE_INDEX = -100
# Rows per chunk: 2048 rows x 32000 vocab is 131 MB of fp32 logits, large enough for efficient matmuls.
DEFAULT_CHUNK_ROWS = 2048


def cross_entropy_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                       backend: LossBackend = "full", chunk_rows: int = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` (B, T, vocab) against ``targets`` (B, T), in fp32.
    Targets equal to -100 are ignored, as in ``F.cross_entropy``."""
    if backend == "full":
        logits = F.linear(hidden, weight)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)
    if backend == "chunked":
        return chunked_cross_entropy(hidden.flatten(0, 1), weight, targets.flatten(), chunk_rows)
    if backend == "liger":
        return liger_cross_entropy(hidden.flatten(0, 1), weight, targets.flatten())
    raise ValueError(f"Unknown loss backend {backend!r}; choose one of {get_args(LossBackend)}")


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          chunk_rows: int = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
    """Mean cross-entropy of ``hidden`` (N, C) @ ``weight.T`` (C, V) against ``targets`` (N,),
    never holding more than ``chunk_rows`` rows of logits."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    dtype = compute_dtype(hidden, weight)
    if not torch.is_grad_enabled():
        # Evaluation: detached inputs tell the forward pass to skip the gradients it would precompute.
        hidden, weight = hidden.detach(), weight.detach()
    return ChunkedCrossEntropy.apply(hidden, weight, targets, dtype, chunk_rows)


def liger_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``hidden`` (N, C) @ ``weight.T`` by Liger's fused linear cross-entropy, with the
    matmuls in the compute dtype and the head's gradient accumulated in fp32, as ``chunked`` does."""
    dtype = compute_dtype(hidden, weight)
    fused = kernels.liger(hidden.device).liger_fused_linear_cross_entropy
    with torch.autocast(hidden.device.type, enabled=False):
        return fused(hidden.to(dtype), weight.to(dtype), targets, ignore_index=IGNORE_INDEX,
                     accum_dtype=torch.float32)


def compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The autocast dtype inside ``torch.autocast``, else the inputs' common dtype."""
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(hidden.dtype, weight.dtype)


class ChunkedCrossEntropy(torch.autograd.Function):
    """Loss and both input gradients in one pass over row chunks; see the module docstring."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                compute_dtype: torch.dtype, chunk_rows: int) -> torch.Tensor:
        need_hidden_grad, need_weight_grad = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(compute_dtype)
            h_all = hidden.to(compute_dtype)
            valid = targets != IGNORE_INDEX
            n_valid = valid.sum()
            # Gradients of the mean are per-row gradients divided by the number of counted rows.
            scale = 1.0 / n_valid.clamp(min=1).float()
            loss_sum = torch.zeros((), device=hidden.device, dtype=torch.float32)
            grad_hidden = torch.empty_like(hidden) if need_hidden_grad else None
            grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight_grad else None

            for start in range(0, hidden.size(0), chunk_rows):
                h = h_all[start : start + chunk_rows]
                t = targets[start : start + chunk_rows]
                v = valid[start : start + chunk_rows]
                log_probs = torch.log_softmax((h @ w.T).float(), dim=-1)
                safe_t = torch.where(v, t, 0).unsqueeze(1)
                loss_sum -= torch.where(v, log_probs.gather(1, safe_t).squeeze(1), 0.0).sum()
                if not (need_hidden_grad or need_weight_grad):
                    continue
                # d loss / d logits = (softmax - one_hot(target)) / n_valid on counted rows, 0 elsewhere.
                grad_logits = log_probs.exp_()
                grad_logits.scatter_add_(1, safe_t, torch.full(safe_t.shape, -1.0, device=safe_t.device))
                grad_logits.mul_((v.float() * scale).unsqueeze(1))
                grad_logits = grad_logits.to(compute_dtype)
                if need_hidden_grad:
                    grad_hidden[start : start + chunk_rows] = grad_logits @ w
                if need_weight_grad:
                    grad_weight += (grad_logits.T @ h).float()

        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype) if need_weight_grad else None)
        return loss_sum / n_valid

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_output.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = grad_weight * grad_output.to(grad_weight.dtype)
        return grad_hidden, grad_weight, None, None, None
