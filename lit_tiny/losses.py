"""Next-token cross-entropy from the final hidden states and the output head's weight."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` (B, T, vocab) against ``targets`` (B, T), in fp32."""
    logits = F.linear(hidden, weight)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
