"""The settings every eval/ script takes as one argument group, ``--eval.*``.

:class:`EvalSettings` is how a checkpoint is loaded and run; :class:`HarnessSettings` adds what
lm-evaluation-harness needs for the suites it scores (commonsense, MMLU, BBH, DROP). Every field is
recorded in the results JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lit_tiny.devices import InferencePrecision


@dataclass(frozen=True)
class EvalSettings:
    """How the checkpoint is loaded and run.

    Args:
        batch_size: Sequences per forward pass (log-likelihoods, right-padded) and prompts decoded together.
        device: cpu, cuda, cuda:1, or auto (cuda when available).
        precision: 32-true, bf16-true or 16-true (default: bf16-true on CUDA, 32-true on CPU).
        limit: Only the first documents of each task (a fraction if below 1), for smoke tests.
        max_new_tokens: Longest generation, for the tasks that generate and do not set their own.
        seed: Seed of sampling, and of lm-eval's generators and few-shot sampler.
        out_file: Results JSON (default: <checkpoint_dir>/eval/<suite>.json).
    """

    batch_size: int = 8
    device: str = "auto"
    precision: Optional[InferencePrecision] = None
    limit: Optional[float] = None
    max_new_tokens: int = 256
    seed: int = 1234
    out_file: Optional[Path] = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.limit is not None and not self.limit > 0:
            raise ValueError(f"limit must be positive, got {self.limit}")


@dataclass(frozen=True)
class HarnessSettings(EvalSettings):
    """How the checkpoint is loaded and run (the fields above), and how lm-evaluation-harness scores it.

    Args:
        num_fewshot: Examples per prompt (default: the suite's, as in the paper: 0, MMLU 5, BBH 3, DROP 3).
        bootstrap_iters: Bootstrap resamples for standard errors of non-mean metrics (0: skip all standard errors).
        log_samples: Also write every request and response to <out_file stem>.samples.json.
    """

    num_fewshot: Optional[int] = None
    bootstrap_iters: int = 100_000
    log_samples: bool = False
