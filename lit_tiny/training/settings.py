"""The argument groups of the pretraining script (``--train.*``, ``--eval.*``, ``--checkpoint.*``,
``--data.*``). jsonargparse turns each docstring into ``--help`` text and each field into a flag and a
YAML key (see ``configs/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lit_tiny.data.demo import DemoCorpus
from lit_tiny.data.sources import DEFAULT_TRAIN_DIRS, DEFAULT_VAL_DIRS, TINYLLAMA_WEIGHTS


@dataclass
class TrainArgs:
    """Optimisation and the length of the run.

    Args:
        global_batch_tokens: Tokens per optimizer step summed over all devices (TinyLlama: 1024 x 2048).
            Gradient accumulation is derived from it, the world size and the micro batch.
        micro_batch_size: Sequences per device per forward/backward pass.
        max_tokens: Tokens to train on; the run takes ceil(max_tokens / global_batch_tokens) steps.
        max_steps: Optimizer steps to train for; overrides ``max_tokens`` when set.
        stop_at_step: End this job (with a checkpoint) after this step while the learning-rate schedule
            still runs to ``max_steps``; resume later with ``--resume auto``. For time-sliced jobs.
        lr: Peak learning rate.
        min_lr: Learning rate at the end of the cosine decay.
        warmup_steps: Linear warmup, in optimizer steps.
        weight_decay: AdamW decoupled weight decay.
        beta1: AdamW beta1.
        beta2: AdamW beta2.
        eps: AdamW epsilon.
        grad_clip: Clip the global gradient norm to this value (0 disables).
        log_interval: Print and log every this many optimizer steps.
    """

    global_batch_tokens: int = 2_097_152
    micro_batch_size: int = 8
    max_tokens: int = 3_000_000_000_000
    max_steps: Optional[int] = None
    stop_at_step: Optional[int] = None
    lr: float = 4e-4
    min_lr: float = 4e-5
    warmup_steps: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-5
    grad_clip: float = 1.0
    log_interval: int = 1


@dataclass
class EvalArgs:
    """Validation during training: the same sequences every time, whatever the number of processes.

    Args:
        interval: Validate every this many optimizer steps, and at the end of the run.
        max_sequences: Validation sequences per evaluation, summed over all processes, spread evenly over
            the validation folders so that each is represented by its size (null: all of them). The
            validation set does not depend on the world size.
    """

    interval: int = 1000
    max_sequences: Optional[int] = 12_800


@dataclass
class CheckpointArgs:
    """What is saved and when. ``<out_dir>/train_state/step-N`` holds sharded, resumable state (model,
    optimizer, step, data-loader position, RNG); ``<out_dir>/checkpoints/step-N`` holds consolidated
    lit_tiny checkpoints (the README's format) that eval and export scripts read.

    Args:
        interval: Save resumable sharded state every this many optimizer steps (and on SIGTERM).
        keep_last: Keep this many most recent resumable states; older ones are deleted.
        consolidated_interval: Write a consolidated checkpoint every this many steps (the final one is always written).
    """

    interval: int = 1000
    keep_last: int = 3
    consolidated_interval: int = 50_000


@dataclass
class DataArgs:
    """Prepared token folders (from ``pretrain/prepare_*.py``) and how they are mixed.

    Args:
        train_dirs: Prepared training folders, one per source.
        weights: Sampling weight of each training folder (normalised). TinyLlama: 0.693584 SlimPajama, 0.306416 Starcoderdata.
        val_dirs: Prepared validation folders.
        tokenizer_dir: Folder with the tokenizer the data was prepared with, copied into consolidated
            checkpoints. Default: the tokenizer recorded in the first training folder's prepare_summary.json.
        demo_dir: Train on the built-in demo corpus instead (built here on first use from the Python
            standard library); replaces train_dirs, val_dirs and tokenizer_dir (``weights`` then mix its
            English and code).
        demo_vocab_size: Tokens of the demo corpus's tokenizer (the model's vocab_size must hold them).
        demo_code_bytes: Bytes of standard-library code in the demo corpus (up to about 30 MB with its tests).
        num_workers: Dataloader worker processes per device.
    """

    train_dirs: list[Path] = field(default_factory=lambda: list(DEFAULT_TRAIN_DIRS))
    weights: list[float] = field(default_factory=lambda: list(TINYLLAMA_WEIGHTS.values()))
    val_dirs: list[Path] = field(default_factory=lambda: list(DEFAULT_VAL_DIRS))
    tokenizer_dir: Optional[Path] = None
    demo_dir: Optional[Path] = None
    demo_vocab_size: int = 4096
    demo_code_bytes: int = 4_000_000
    num_workers: int = 2

    def demo(self) -> Optional[DemoCorpus]:
        """The demo corpus these settings ask for, if any."""
        return None if self.demo_dir is None else DemoCorpus(self.demo_dir, self.demo_vocab_size, self.demo_code_bytes)
