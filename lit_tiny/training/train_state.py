"""Resumable training states: pickle-free, checked against a manifest, valid for any world size.

``<out_dir>/train_state/step-00001000/`` (``RunDir.state_path``) holds:

    model.safetensors      the full weights, under GPT's parameter names
    optimizer.safetensors  the optimizer's tensors, ``<parameter>::<name>`` (AdamW: step, exp_avg, exp_avg_sq)
    rng.safetensors        every rank's random-generator states, ``rank<r>::cpu`` (and ``::cuda``)
    meta.json              step and tokens, the data loader's position, the world size, the optimizer's
                           param groups and any non-tensor optimizer state
    manifest.json          the size and SHA-256 of each file above, written last

Loading reads safetensors and JSON only: nothing is unpickled, so a state cannot run code. The tensors
are whole (gathered from the FSDP shards on rank 0 when saving, and broadcast from rank 0 when loading),
so a state saved by 16 processes resumes on 8 or on 1; rank 0's host then holds the full weights and
optimizer moments (16 bytes per parameter, 18 GB for the 1.1B model). A state is written into a hidden
temporary folder, manifest last, and renamed into place, so a folder named ``step-N`` is always complete;
loading checks the manifest first, so a truncated, garbled, flipped or deleted file is named instead of
loaded, and ``--resume auto`` moves such a state aside (:func:`choose_state`) and takes the newest intact one.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist

from lit_tiny.files import DamagedFolder, ordinary_permissions, verify_manifest, write_manifest
from lit_tiny.training.run_dir import RunDir

FORMAT = "lit_tiny train state 2"
SEPARATOR = "::"


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
    """Every rank's RNG states, in rank order (rank 0 writes them all into the state)."""
    if fabric.world_size == 1:
        return [rng_states()]
    gathered: list[Any] = [None] * fabric.world_size
    dist.all_gather_object(gathered, rng_states())
    return gathered


def _unwrap(obj):
    """The torch object under Fabric's wrapper."""
    from lightning.fabric.wrappers import _unwrap_objects

    return _unwrap_objects(obj)


def save_train_state(fabric, run: RunDir, step: int, state: dict[str, Any], keep_last: int) -> Path:
    """Save ``state`` (``model``, ``optimizer``, and JSON-able ``progress`` and ``data``) as step ``step``;
    collective on all ranks. Older states beyond ``keep_last`` are pruned once this one is complete."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model, optimizer = _unwrap(state["model"]), _unwrap(state["optimizer"])
    weights, optim = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    rng = all_rng_states(fabric)
    final = run.state_path(step)
    if fabric.global_rank == 0:
        tmp = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tensors, scalars = {}, {}
        for name, values in optim["state"].items():
            for key, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{name}{SEPARATOR}{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{name}{SEPARATOR}{key}"] = value
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        save_file({f"rank{r}{SEPARATOR}{k}": v for r, states in enumerate(rng) for k, v in states.items()},
                  str(tmp / "rng.safetensors"))
        meta = {"format": FORMAT, "step": step, "progress": state["progress"], "data": state["data"],
                "world_size": fabric.world_size, "param_groups": optim["param_groups"], "optimizer_scalars": scalars}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        write_manifest(tmp)
        ordinary_permissions(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in run.states()[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    fabric.barrier()
    return final


STATE_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "meta.json")


def verify_state(path: Path) -> dict:
    """Check a state folder against its manifest, and that each file parses as what it should be (a
    safetensors header, JSON); ``DamagedFolder`` names the first file that does not."""
    from safetensors import safe_open

    path = Path(path)
    if not (path / "manifest.json").is_file() and ((path / "meta.pt").is_file() or (path / ".metadata").is_file()):
        raise DamagedFolder(path, f"{path} is a train state of an older lit_tiny (a torch distributed checkpoint, "
                                  "which loads with pickle); this version loads only pickle-free states. Finish that "
                                  "run with the older version, or start anew from one of its consolidated "
                                  "checkpoints with --initial_checkpoint_dir.")
    manifest = verify_manifest(path)
    for name in STATE_FILES:
        file = path / name
        if name not in manifest["files"]:
            raise DamagedFolder(file, f"{file} is not listed in {path / 'manifest.json'}: the state is incomplete")
        try:
            if name.endswith(".safetensors"):
                with safe_open(str(file), framework="pt"):
                    pass
            elif json.loads(file.read_text(encoding="utf-8")).get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT!r} file")
        except Exception as e:  # noqa: BLE001  (any parse failure means the file is not what it should be)
            raise DamagedFolder(file, f"{file} is not a readable {name.rsplit('.', 1)[-1]} file ({e})") from None
    return manifest


def choose_state(run: RunDir, explicit: Optional[Path] = None) -> Optional[Path]:
    """The state to resume from (rank 0 only): ``explicit`` if it is intact, else the newest intact state
    of the run. A damaged newest state is named, moved aside to ``train_state/damaged-step-N-<time>``
    (never deleted) and passed over; if states exist and none is intact, nothing is guessed."""
    if explicit is not None:
        verify_state(explicit)
        return Path(explicit)
    for path in reversed(run.states()):
        try:
            verify_state(path)
            return path
        except DamagedFolder as damage:
            aside = path.with_name(f"damaged-{path.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            path.rename(aside)
            print(f"warning: {damage} Moved {path.name} aside to {aside}; trying the next newest state.", flush=True)
    damaged = sorted(run.states_dir.glob("damaged-step-*")) if run.states_dir.is_dir() else []
    if damaged:
        raise DamagedFolder(damaged[-1], f"Every saved state of {run.root} is damaged (moved aside: "
                                         f"{', '.join(p.name for p in damaged)}). Nothing was started; restore a state "
                                         "or start a new run with another --out_dir.")
    return None


def load_train_state(fabric, path: Path, state: dict[str, Any]) -> None:
    """Restore ``state`` from ``path`` (collective; rank 0 has verified it): the model and optimizer in
    place, ``progress`` and ``data`` replaced, and this rank's RNG when the world size is the same."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    path = Path(path)
    model, optimizer = _unwrap(state["model"]), _unwrap(state["optimizer"])
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    first = fabric.global_rank == 0
    set_model_state_dict(model, load_file(str(path / "model.safetensors")) if first else {}, options=options)
    optim: dict[str, Any] = {}
    if first:
        per_param: dict[str, dict[str, Any]] = {}
        for key, value in load_file(str(path / "optimizer.safetensors")).items():
            name, _, field = key.rpartition(SEPARATOR)
            per_param.setdefault(name, {})[field] = value
        for key, value in meta["optimizer_scalars"].items():
            name, _, field = key.rpartition(SEPARATOR)
            per_param.setdefault(name, {})[field] = value
        # JSON has no tuples: give each hyperparameter the type the live optimizer uses (AdamW's betas).
        live = optimizer.param_groups[0]
        groups = [{k: tuple(v) if isinstance(live.get(k), tuple) else v for k, v in g.items()}
                  for g in meta["param_groups"]]
        optim = {"state": per_param, "param_groups": groups}
    set_optimizer_state_dict(model, optimizer, optim, options=options)
    state["progress"], state["data"] = meta["progress"], meta["data"]
    rng = load_file(str(path / "rng.safetensors"))
    if meta["world_size"] == fabric.world_size:
        prefix = f"rank{fabric.global_rank}{SEPARATOR}"
        set_rng_states({k.removeprefix(prefix): v for k, v in rng.items() if k.startswith(prefix)})
    else:
        # The model and optimizer reshard and the data order is global, so training continues the same
        # run; only the per-rank random streams (unused by the default recipe: no dropout) start fresh.
        fabric.print(f"{path} was saved by {meta['world_size']} processes and this job has {fabric.world_size}: "
                     "weights, optimizer and data position are restored, per-rank RNG states are not.")


def clean_leftovers(run: RunDir) -> list[Path]:
    """Remove the temporary folders of saves that a kill interrupted (rank 0, under the run lock)."""
    found = []
    for folder, pattern in ((run.states_dir, ".step-*.tmp"), (run.checkpoints_dir, ".step-*.tmp-*"),
                            (run.checkpoints_dir, ".step-*.old-*")):
        found += [p for p in folder.glob(pattern) if p.is_dir()] if folder.is_dir() else []
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return found
