"""Resumable training state: sharded, atomic, pruned, found again by ``--resume auto``.

``<out_dir>/train_state/step-00001000/`` (``RunDir.state_path``) is a distributed checkpoint (each rank
writes its own shards of the model and the optimizer) plus ``meta.pt`` with the step, the data loader's
position and every rank's RNG state. It is written to a hidden temporary folder and renamed into place by rank 0 only after all
ranks finished, so a crash mid-save never leaves a folder that looks complete. Loading uses
``weights_only=True``: nothing but tensors and plain containers is unpickled.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from lit_tiny.training.run_dir import RunDir


def rng_states() -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def all_rng_states(fabric) -> list[dict[str, torch.Tensor]]:
    """Every rank's RNG states, in rank order (rank 0 writes them all into the checkpoint)."""
    if fabric.world_size == 1:
        return [rng_states()]
    gathered: list[Any] = [None] * fabric.world_size
    dist.all_gather_object(gathered, rng_states())
    return gathered


def save_train_state(fabric, run: RunDir, step: int, state: dict[str, Any], keep_last: int) -> Path:
    """Save ``state`` (model, optimizer and plain metadata) as step ``step``; collective on all ranks."""
    final = run.state_path(step)
    tmp = final.with_name(f".{final.name}.tmp")
    if fabric.global_rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    fabric.barrier()
    fabric.save(tmp, {**state, "rng": all_rng_states(fabric)})
    fabric.barrier()
    if fabric.global_rank == 0:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in run.states()[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    fabric.barrier()
    return final


def load_train_state(fabric, path: Path, state: dict[str, Any]) -> None:
    """Restore ``state`` in place from ``path`` (collective), including this rank's RNG."""
    path = Path(path)
    if not (path / "meta.pt").is_file():
        raise FileNotFoundError(
            f"{path} is not a complete training state (no meta.pt). Pick another folder under "
            f"{path.parent}, or start with --resume false and a new out_dir."
        )
    state["rng"] = None
    fabric.load(path, state, weights_only=True)
    ranks = state.pop("rng")
    if len(ranks) == fabric.world_size:
        set_rng_states(ranks[fabric.global_rank])
    else:
        # The model and optimizer reshard and the data order is global, so training continues the same
        # run; only the per-rank random streams (unused by the default recipe: no dropout) start fresh.
        fabric.print(f"{path} was saved by {len(ranks)} processes and this job has {fabric.world_size}: "
                     "weights, optimizer and data position are restored, per-rank RNG states are not.")
