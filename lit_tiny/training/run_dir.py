"""The run folder of one pretraining run: every path inside it, and the files in it that others read.

    <out_dir>/
      config.yaml                  every setting of the run
      metrics.jsonl                one JSON object per logged step and per validation
      summary.json                 written when the run reaches max_steps
      loss.png                     training and validation loss and the learning rate against tokens
      logs/                        TensorBoard (scalars, the settings, the final sample)
      train_state/step-00001000/   resumable sharded state (``lit_tiny.training.train_state``)
      checkpoints/step-00001000/   a consolidated lit_tiny checkpoint plus progress.json
      eval/                        scores of those checkpoints (eval/training_run.py)

The pretraining script writes it, the scaling sweep reads summaries and validation curves from it, and
evaluation across a run reads its checkpoints: all through :class:`RunDir`, so the layout is spelled
out here only.
"""

from __future__ import annotations

import json
import re
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


def _step_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]
