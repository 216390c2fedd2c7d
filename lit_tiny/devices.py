"""Device and precision names, shared by training, evaluation and generation.

Precision has Lightning's names everywhere:

``32-true``     fp32 weights and compute (the CPU default)
``bf16-mixed``  fp32 weights, bf16 compute: FSDP's mixed-precision policy (the GPU default for training)
``bf16-true``   bf16 weights and compute (the GPU default for evaluation and generation)
``16-true``     fp16 weights and compute (evaluation and generation only)

Weights stored on disk (checkpoint conversion) have plain dtype names: ``float32``, ``bfloat16``, ``float16``.
"""

from __future__ import annotations

from typing import Literal, Optional, get_args

import torch

TrainingPrecision = Literal["32-true", "bf16-mixed", "bf16-true"]
InferencePrecision = Literal["32-true", "bf16-true", "16-true"]
TRAINING_PRECISIONS = get_args(TrainingPrecision)
INFERENCE_DTYPES = {"32-true": torch.float32, "bf16-true": torch.bfloat16, "16-true": torch.float16}
DtypeName = Literal["float32", "bfloat16", "float16"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` means the first CUDA GPU when there is one, else the CPU; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: Optional[str], device: torch.device, training: bool) -> str:
    """Check ``precision`` for training or inference on ``device``; None picks the default
    (``bf16-mixed`` to train on a GPU, ``bf16-true`` to evaluate or generate on one, ``32-true`` on a CPU)."""
    allowed = TRAINING_PRECISIONS if training else tuple(INFERENCE_DTYPES)
    if precision is None:
        if device.type != "cuda":
            return "32-true"
        return "bf16-mixed" if training else "bf16-true"
    if precision not in allowed:
        use = "training" if training else "evaluation and generation"
        hint = "; bf16-mixed is for training (fp32 weights for the optimizer): use bf16-true" * (precision == "bf16-mixed")
        raise ValueError(f"precision {precision!r} is not supported for {use}: choose one of {', '.join(allowed)}"
                         + hint)
    return precision


def inference_dtype(precision: str) -> torch.dtype:
    """The dtype weights and activations take under an inference precision."""
    return INFERENCE_DTYPES[precision]


def dtype_from_name(name: str) -> torch.dtype:
    """``float32``, ``bfloat16`` or ``float16`` as a torch dtype."""
    if name not in DTYPES:
        raise ValueError(f"Unknown dtype {name!r}; choose one of {', '.join(get_args(DtypeName))}")
    return DTYPES[name]
