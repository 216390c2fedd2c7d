"""The model checkpoint folder: what it holds, and how it is written (atomically) and read (safely).

A checkpoint folder holds:

* ``model.safetensors``: the weights, named as in :class:`lit_tiny.model.GPT`;
* ``model_config.yaml``: the :class:`lit_tiny.config.Config` fields;
* the tokenizer files: ``tokenizer.json`` or ``tokenizer.model``, plus ``tokenizer_config.json`` if any;
* ``manifest.json``, written last: every file's size and SHA-256, and the tokenizer's digest
  (:meth:`lit_tiny.tokenizer.Tokenizer.digest`).

Weights are read with safetensors, which never unpickles anything; loading checks the manifest first,
so a truncated, flipped or replaced file is named instead of loaded.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Mapping, Optional

import torch

from lit_tiny.config import Config
from lit_tiny.files import MANIFEST_FILE, atomic_write_dir, verify_manifest, write_manifest
from lit_tiny.tokenizer import TOKENIZER_FILES, Tokenizer

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
        has_tokenizer = any((tmp / name).is_file() for name in TOKENIZER_FILES)
        write_manifest(tmp, tokenizer_sha256=Tokenizer(tmp).digest() if has_tokenizer else None)

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
    verify_checkpoint(checkpoint_dir)
    try:
        state_dict = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from e
    check_state_dict(state_dict, config, source=str(path))
    return config, state_dict


def verify_checkpoint(checkpoint_dir: str | Path) -> Optional[dict]:
    """Check the folder against its manifest (None for folders written before manifests existed). The
    config may be edited (say, to another attention backend); the weights are checked against it by shape."""
    if not (Path(checkpoint_dir) / MANIFEST_FILE).is_file():
        return None
    return verify_manifest(checkpoint_dir, editable=(CONFIG_FILE,))


def load_tokenizer(checkpoint_dir: str | Path) -> Tokenizer:
    """The checkpoint's tokenizer, refused when its content is not the one the checkpoint was written with."""
    tokenizer = Tokenizer(checkpoint_dir)
    manifest = verify_checkpoint(checkpoint_dir)
    expected = (manifest or {}).get("tokenizer_sha256")
    if expected is not None and tokenizer.digest() != expected:
        raise ValueError(
            f"{tokenizer.path} is not the tokenizer {Path(checkpoint_dir) / MANIFEST_FILE} records for these "
            "weights (the model was trained on other ids). Restore the checkpoint's own tokenizer files.")
    return tokenizer


def check_initial_weights(checkpoint_dir: str | Path, config: Config, tokenizer_sha256: str) -> None:
    """Refuse to start a run of ``config`` on data tokenized as ``tokenizer_sha256`` from a checkpoint that
    does not fit: another shape or architecture (the fields that change what the weights mean), or another
    tokenizer. ``name``, ``block_size`` and the kernel backends may differ."""
    theirs = load_config(checkpoint_dir)
    free = {"name", "block_size", "attention_backend", "loss_backend", "kernel_backend"}
    differ = [f"{k}: {v!r} in the checkpoint, {getattr(config, k)!r} in this run"
              for k, v in asdict(theirs).items() if k not in free and v != getattr(config, k)]
    if differ:
        raise ValueError(f"{Path(checkpoint_dir) / CONFIG_FILE} does not fit this run's model ({'; '.join(differ)}). "
                         f"Pass --model {Path(checkpoint_dir) / CONFIG_FILE} to train that model.")
    tokenizer = load_tokenizer(checkpoint_dir)
    if tokenizer.digest() != tokenizer_sha256:
        raise ValueError(f"{tokenizer.path} is not the tokenizer the training data was prepared with: the "
                         "checkpoint's weights would read its ids as other text. Prepare the data with "
                         f"--tokenizer_dir {Path(checkpoint_dir)}.")


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
        raise FileNotFoundError(
            f"Checkpoint folder {path} does not exist: pass a lit_tiny checkpoint folder (a run's "
            "checkpoints/step-XXXXXXXX, or one written by `lit-tiny convert_from_hf`)")
    return path
