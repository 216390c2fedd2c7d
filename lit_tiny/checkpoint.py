"""The model checkpoint folder: what it holds, and how it is written (atomically) and read (safely).

A checkpoint folder holds:

* ``model.safetensors``: the weights, named as in :class:`lit_tiny.model.GPT`;
* ``model_config.yaml``: the :class:`lit_tiny.config.Config` fields;
* the tokenizer files: ``tokenizer.json`` or ``tokenizer.model``, plus ``tokenizer_config.json`` if any.

Weights are read with safetensors, which never unpickles anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable, Mapping

import torch

from lit_tiny.config import Config
from lit_tiny.files import atomic_write_dir

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model_config.yaml"


def save_checkpoint(
    out_dir: str | Path,
    state_dict: dict[str, torch.Tensor],
    config: Config,
    tokenizer_files: Iterable[str | Path] = (),
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write a model checkpoint folder atomically; ``extra_files`` maps file names to text content
    (pretraining adds ``progress.json``)."""
    from safetensors.torch import save_file

    check_state_dict(state_dict, config, source=str(out_dir))
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}

    def fill(tmp: Path) -> None:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "lit_tiny_config": config.name})
        config.save(tmp / CONFIG_FILE)
        for f in tokenizer_files:
            shutil.copy2(f, tmp / Path(f).name)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")

    return atomic_write_dir(out_dir, fill)


def load_config(checkpoint_dir: str | Path) -> Config:
    checkpoint_dir = _existing_dir(checkpoint_dir)
    path = checkpoint_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: a lit_tiny checkpoint folder holds {WEIGHTS_FILE}, {CONFIG_FILE} and the tokenizer "
            "files. Convert a Hugging Face folder with `lit-tiny convert_from_hf`."
        )
    return Config.from_file(path)


def load_checkpoint(checkpoint_dir: str | Path) -> tuple[Config, dict[str, torch.Tensor]]:
    """Read config and weights, checking every tensor's name and shape against the config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = load_config(checkpoint_dir)
    path = Path(checkpoint_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the checkpoint folder has a config but no weights")
    try:
        state_dict = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from e
    check_state_dict(state_dict, config, source=str(path))
    return config, state_dict


def load_model(checkpoint_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """Build a :class:`GPT` from a checkpoint folder."""
    from lit_tiny.model import GPT

    config, state_dict = load_checkpoint(checkpoint_dir)
    with torch.device("meta"):
        model = GPT(config)
    model.load_state_dict(state_dict, assign=True)
    return model.to(device=device, dtype=dtype)


def expected_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """Name and shape of every parameter of ``GPT(config)``, without allocating it."""
    from lit_tiny.model import GPT

    with torch.device("meta"):
        model = GPT(config)
    return {name: tuple(p.shape) for name, p in model.state_dict().items()}


def check_state_dict(state_dict: dict[str, torch.Tensor], config: Config, source: str) -> None:
    """Raise a ValueError naming ``source`` and every missing, unexpected or mis-shaped tensor."""
    expected = expected_shapes(config)
    problems = []
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing[:6]}{' ...' if len(missing) > 6 else ''}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}")
    for name, shape in expected.items():
        if name in state_dict and tuple(state_dict[name].shape) != shape:
            problems.append(f"{name} has shape {tuple(state_dict[name].shape)} but config {config.name!r} needs {shape}")
    if problems:
        raise ValueError(
            f"{source}: weights do not fit the model config ({'; '.join(problems[:8])}). "
            "Check that the config file belongs to these weights."
        )


def _existing_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Checkpoint folder {path} does not exist")
    return path
