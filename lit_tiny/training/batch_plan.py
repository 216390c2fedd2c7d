"""Batch arithmetic: from a global batch in tokens to per-device micro batches and accumulation.

The global batch is fixed in tokens and the accumulation is derived from the real world size, so
changing the number of GPUs never silently changes the optimisation (a trap of TinyLlama's script,
which derived it from a hard-coded device count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class BatchConfigError(ValueError):
    """The batch settings do not fit together; raised before any training starts."""


@dataclass(frozen=True)
class BatchPlan:
    global_batch_tokens: int
    micro_batch_size: int
    block_size: int
    world_size: int
    max_steps: int
    warmup_steps: int

    @classmethod
    def make(cls, global_batch_tokens: int, micro_batch_size: int, block_size: int, world_size: int,
             max_tokens: int, max_steps: int | None = None, warmup_steps: int = 0) -> "BatchPlan":
        for name, value in (("global_batch_tokens", global_batch_tokens), ("micro_batch_size", micro_batch_size),
                            ("block_size", block_size), ("world_size", world_size)):
            if value <= 0:
                raise BatchConfigError(f"{name} must be positive, got {value}")
        if global_batch_tokens % block_size:
            raise BatchConfigError(
                f"global_batch_tokens={global_batch_tokens:,} is not a whole number of {block_size}-token sequences. "
                f"Use a multiple of block_size, e.g. {max(1, round(global_batch_tokens / block_size)) * block_size:,}."
            )
        sequences = global_batch_tokens // block_size
        per_pass = micro_batch_size * world_size
        if sequences % per_pass:
            options = [m for m in range(1, micro_batch_size + 1) if sequences % (m * world_size) == 0]
            hint = f"micro_batch_size {options[-1]} divides it" if options else "change global_batch_tokens"
            raise BatchConfigError(
                f"The global batch of {sequences} sequences ({global_batch_tokens:,} tokens / {block_size}) does not "
                f"divide into micro batches of {micro_batch_size} on {world_size} devices ({per_pass} per pass): "
                f"{hint}, or pick a world size that divides it."
            )
        if max_steps is None:
            if max_tokens <= 0:
                raise BatchConfigError(f"max_tokens must be positive, got {max_tokens}")
            max_steps = math.ceil(max_tokens / global_batch_tokens)
        if max_steps <= 0:
            raise BatchConfigError(f"max_steps must be positive, got {max_steps}")
        if warmup_steps < 0:
            raise BatchConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
        return cls(global_batch_tokens, micro_batch_size, block_size, world_size, max_steps, warmup_steps)

    @property
    def sequences_per_step(self) -> int:
        return self.global_batch_tokens // self.block_size

    @property
    def accumulation(self) -> int:
        """Micro batches each device runs before one optimizer step."""
        return self.sequences_per_step // (self.micro_batch_size * self.world_size)

    @property
    def total_tokens(self) -> int:
        return self.max_steps * self.global_batch_tokens

    def describe(self) -> str:
        return "\n".join([
            "Batch plan",
            f"  devices (world size)      {self.world_size}",
            f"  sequence length           {self.block_size}",
            f"  micro batch per device    {self.micro_batch_size} sequences",
            f"  gradient accumulation     {self.accumulation}",
            f"  global batch              {self.sequences_per_step:,} sequences = {self.global_batch_tokens:,} tokens",
            f"  optimizer steps           {self.max_steps:,} (warmup {self.warmup_steps:,})",
            f"  total tokens              {self.total_tokens:,} ({self.total_tokens / 1e9:,.3f}B)",
        ])
