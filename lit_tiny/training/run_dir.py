"""The run folder of one pretraining run: every path inside it, and the files in it that others read.

    <out_dir>/
      config.yaml                  every setting of the run's first launch (never rewritten)
      config_history.jsonl         every later launch that changed a setting: when, from which step, what
      run.lock                     the host and pid of the live run (one run per folder)
      metrics.jsonl                one JSON object per logged step and per validation
      summary.json                 written when the run reaches max_steps
      loss.png                     training and validation loss and the learning rate against tokens
      logs/                        TensorBoard (scalars, the settings, the final sample)
      train_state/step-00001000/   resumable sharded state (``lit_tiny.training.train_state``)
      checkpoints/step-00001000/   a consolidated lit_tiny checkpoint plus progress.json
      eval/                        scores of those checkpoints (eval/training_run.py)

The pretraining script writes it, the scaling sweep reads summaries and validation curves from it, and
evaluation across a run reads its checkpoints: all through :class:`RunDir`, so the layout is spelled
out here only. :class:`RunLock` keeps a second launch out of a live run's folder, and
:func:`setting_changes` decides what a resumed launch may change.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lit_tiny.files import atomic_write_text

PROGRESS_FILE = "progress.json"
PROGRESS_SCHEMA = '{"step": int, "tokens_seen": int}'
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def step_name(step: int) -> str:
    return f"step-{step:08d}"


@dataclass(frozen=True)
class CheckpointProgress:
    """A consolidated checkpoint of a run and how far training was when it was written."""

    path: Path
    step: int
    tokens_seen: int


def progress_text(step: int, tokens_seen: int) -> str:
    """The ``progress.json`` a consolidated checkpoint carries."""
    return json.dumps({"step": step, "tokens_seen": tokens_seen})


def read_progress(checkpoint_dir: Path) -> CheckpointProgress:
    """Step and tokens seen of a checkpoint, from its ``progress.json``."""
    file = Path(checkpoint_dir) / PROGRESS_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} is missing: a checkpoint of a training run holds {PROGRESS_FILE} = {PROGRESS_SCHEMA}, "
            "which pretraining writes beside the weights"
        )
    try:
        progress = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{file} is not valid JSON ({e}); it should hold {PROGRESS_SCHEMA}") from e
    values = {}
    for key in ("step", "tokens_seen"):
        value = progress.get(key) if isinstance(progress, dict) else None
        if type(value) is not int or value < 0:
            raise ValueError(f"{file}: {key!r} must be a non-negative integer, got {value!r}; "
                             f"expected {PROGRESS_SCHEMA}")
        values[key] = value
    return CheckpointProgress(Path(checkpoint_dir), values["step"], values["tokens_seen"])


class RunDir:
    """Paths and files of one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def history_file(self) -> Path:
        return self.root / "config_history.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.root / "run.lock"

    @property
    def metrics_file(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def summary_file(self) -> Path:
        return self.root / "summary.json"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def loss_plot(self) -> Path:
        return self.root / "loss.png"

    @property
    def states_dir(self) -> Path:
        return self.root / "train_state"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def eval_dir(self) -> Path:
        """Scores of the run's checkpoints (``eval/training_run.py``)."""
        return self.root / "eval"

    @classmethod
    def of_checkpoint(cls, checkpoint_dir: str | Path) -> "RunDir":
        """The run folder a consolidated checkpoint ``<run>/checkpoints/step-N`` belongs to."""
        checkpoint_dir = Path(checkpoint_dir).resolve()
        run = cls(checkpoint_dir.parent.parent)
        if checkpoint_dir.parent != run.checkpoints_dir:
            raise ValueError(f"{checkpoint_dir} is not inside a run folder's {run.checkpoints_dir.name}/ folder")
        return run

    # ------------------------------------------------------------------ states and checkpoints

    def state_path(self, step: int) -> Path:
        return self.states_dir / step_name(step)

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / step_name(step)

    def states(self) -> list[Path]:
        """Complete saved states, oldest first (temporary folders of unfinished saves are hidden)."""
        return _step_dirs(self.states_dir)

    def latest_state(self) -> Optional[Path]:
        states = self.states()
        return states[-1] if states else None

    def checkpoints(self) -> list[CheckpointProgress]:
        """Every consolidated checkpoint with its progress, by step."""
        if not self.checkpoints_dir.is_dir():
            raise FileNotFoundError(
                f"{self.checkpoints_dir} does not exist: a run folder holds checkpoints/step-XXXXXXXX/ folders")
        found = [read_progress(d) for d in _step_dirs(self.checkpoints_dir)]
        if not found:
            raise FileNotFoundError(f"{self.checkpoints_dir} holds no step-XXXXXXXX checkpoint folders")
        return sorted(found, key=lambda c: c.step)

    # ------------------------------------------------------------------ metrics and summary

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.is_file():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.metrics_file.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def keep_metrics_through(self, step: int) -> list[dict[str, Any]]:
        """Drop the lines logged after ``step`` (a resumed run logs those steps again); return the rest."""
        kept = [m for m in self.read_metrics() if m["step"] <= step]
        if self.metrics_file.is_file():
            atomic_write_text(self.metrics_file, "".join(json.dumps(m) + "\n" for m in kept))
        return kept

    def validation_curve(self) -> list[dict[str, Any]]:
        """The validation rows of ``metrics.jsonl`` (step, tokens, val_loss, ...), one per step, by step."""
        by_step = {m["step"]: m for m in self.read_metrics() if "val_loss" in m}
        return [by_step[s] for s in sorted(by_step)]

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary_file, json.dumps(summary, indent=2))

    def read_summary(self) -> Optional[dict[str, Any]]:
        """``summary.json``, or None before the run finished."""
        if not self.summary_file.is_file():
            return None
        return json.loads(self.summary_file.read_text())


    # ------------------------------------------------------------------ settings across launches

    def last_settings(self) -> Optional[dict[str, Any]]:
        """The settings of the latest launch: the history's last entry, else ``config.yaml``, else None."""
        import yaml

        if self.history_file.is_file():
            lines = [line for line in self.history_file.read_text().splitlines() if line.strip()]
            if lines:
                return json.loads(lines[-1])["settings"]
        if self.config_file.is_file():
            return yaml.safe_load(self.config_file.read_text())
        return None

    def record_settings(self, settings: dict[str, Any], changes: list[str], step: int) -> None:
        """Write ``config.yaml`` at the first launch; later, append the launch to the history when a setting
        changed. ``config.yaml`` itself is never rewritten."""
        import yaml

        if not self.config_file.is_file():
            atomic_write_text(self.config_file, yaml.safe_dump(settings))
        elif changes:
            entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_at_step": step, "changes": changes,
                     "settings": settings}
            with self.history_file.open("a") as f:
                f.write(json.dumps(entry) + "\n")


# The settings that define a run: a resumed launch may not change them. Everything else (optimizer, schedule,
# intervals, devices, workers, paths of the same data) may change, and is recorded in the history.
FIXED_SETTINGS = ("model.", "seed", "data.identity.")
FREE_MODEL_SETTINGS = ("model.name", "model.attention_backend", "model.loss_backend", "model.kernel_backend")


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}``."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def setting_changes(previous: dict[str, Any], current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(refused, allowed) differences between two launches' settings, as ``key: old -> new`` lines."""
    old, new = flatten(previous), flatten(current)
    refused, allowed = [], []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        line = f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        fixed = key.startswith(FIXED_SETTINGS) and key not in FREE_MODEL_SETTINGS
        (refused if fixed else allowed).append(line)
    return refused, allowed


class RunInUse(FileExistsError):
    """The run folder belongs to a live run."""


class RunLock:
    """One live run per folder: ``run.lock`` holds the host, pid, start time and command of its owner.

    A lock left by a process of this host that no longer runs is taken over (with a note); a live one, or
    one from another host, is refused, naming the holder.
    """

    def __init__(self, run: RunDir) -> None:
        self.path = run.lock_file
        self.held = False

    def acquire(self) -> Optional[str]:
        """Take the lock; returns a note when a stale lock was taken over."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        note = None
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            holder = self.holder()
            if holder.get("host") != socket.gethostname() or _alive(holder.get("pid")):
                where = f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
                raise RunInUse(
                    f"{self.path.parent} belongs to a live run ({where}; {self.path}). Wait for it to end or use "
                    f"another --out_dir; if that run is gone (its machine failed), delete {self.path}.") from None
            note = (f"took over {self.path}: its run (pid {holder['pid']}, started {holder.get('started')}) no "
                    "longer runs")
            self.path.unlink()
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        record = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "command": sys.argv}
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record))
        self.held = True
        return note

    def holder(self) -> dict[str, Any]:
        try:
            holder = json.loads(self.path.read_text())
            if not isinstance(holder, dict):
                raise ValueError("not an object")
            return holder
        except (OSError, ValueError) as e:
            raise RunInUse(f"{self.path} is unreadable ({e}), so whether another run owns {self.path.parent} "
                           f"cannot be told. If none does, delete {self.path}.") from None

    def release(self) -> None:
        if self.held and self.path.is_file() and self.holder().get("pid") == os.getpid():
            self.path.unlink()
        self.held = False


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _step_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]
