"""Sharded data parallelism (FSDP2) through Lightning Fabric's ``ModelParallelStrategy``.

The same code runs one CPU process (gloo), two CPU processes in the tests, and many GPUs over many
nodes (NCCL). Each transformer ``Block`` is one shard unit; the embedding, final norm and output head
form the root unit. Mixed precision is FSDP2's own policy: fp32 master weights, parameters gathered
and computed in bf16, gradients reduced in fp32.
"""

from __future__ import annotations

from functools import partial
from typing import Literal, Union

import torch
import torch.nn as nn

from lit_tiny.devices import TrainingPrecision



def resolve_devices(devices: Union[int, Literal["auto"]]) -> int:
    """``auto`` means every visible GPU, or one process on a CPU-only machine."""
    if devices == "auto":
        return max(1, torch.cuda.device_count())
    if devices < 1:
        raise ValueError(f"devices must be >= 1 or 'auto', got {devices}")
    return devices


def parallelize(model: nn.Module, device_mesh, precision: TrainingPrecision, activation_checkpointing: bool,
                compile: bool) -> nn.Module:
    """Wrap every block (checkpointing and compiling it if asked), then shard blocks and root."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = device_mesh["data_parallel"]
    if precision == "bf16-mixed":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        policy = MixedPrecisionPolicy()
    for i, block in enumerate(model.blocks):
        if activation_checkpointing:
            block = checkpoint_wrapper(block)
            model.blocks[i] = block
        if compile:
            block.compile()
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def make_fabric(devices: int, num_nodes: int, precision: TrainingPrecision, activation_checkpointing: bool = False,
                compile: bool = False, loggers=None):
    """A Fabric whose world of ``devices * num_nodes`` processes is one data-parallel (FSDP) group."""
    from lightning.fabric import Fabric
    from lightning.fabric.strategies import ModelParallelStrategy

    strategy = ModelParallelStrategy(
        parallelize_fn=partial(parallelize, precision=precision, activation_checkpointing=activation_checkpointing,
                               compile=compile),
        data_parallel_size=devices * num_nodes,
        tensor_parallel_size=1,
    )
    # bf16-mixed lives in the FSDP policy above, so Fabric itself keeps fp32 (no autocast on top).
    fabric_precision = "bf16-true" if precision == "bf16-true" else "32-true"
    accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    return Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                  precision=fabric_precision, loggers=loggers)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded weights on CPU, under GPT's own parameter names (collective: call on every rank;
    only rank 0 receives the tensors)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def total_norm(norm: torch.Tensor) -> torch.Tensor:
    """The global gradient norm as a plain tensor (``clip_grad_norm_`` returns a DTensor under FSDP2)."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm
