"""The run table that every fit reads: one ``Run`` per finished training run.

A sweep runner builds runs with ``Run.from_config`` and stores them with ``save_runs`` (JSON Lines,
one run per line). Each line holds the raw counts; N and C under any convention are derived from them,
and ``to_dict`` also writes C under every named convention for readers of the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from lit_tiny.config import Config
from lit_tiny.scaling.accounting import CONVENTIONS, Convention, get_convention
from lit_tiny.scaling.validation import check_positive


@dataclass(frozen=True)
class LossCurve:
    """Validation (or smoothed training) loss during one run.

    Args:
        tokens: Tokens seen at each evaluation, strictly increasing.
        loss: Loss at each evaluation, positive (nats per token).
    """

    tokens: tuple[float, ...]
    loss: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(float(t) for t in self.tokens))
        object.__setattr__(self, "loss", tuple(float(v) for v in self.loss))
        if len(self.tokens) != len(self.loss):
            raise ValueError(f"Loss curve has {len(self.tokens)} token counts but {len(self.loss)} losses")
        if len(self.tokens) < 2:
            raise ValueError(f"A loss curve needs at least 2 points, got {len(self.tokens)}")
        for t in self.tokens:
            check_positive("Loss curve token count", t)
        for v in self.loss:
            check_positive("Loss curve loss", v)
        if any(b <= a for a, b in zip(self.tokens, self.tokens[1:])):
            raise ValueError("Loss curve token counts must be strictly increasing")


@dataclass(frozen=True)
class Run:
    """One training run of the sweep.

    Args:
        model_name: Name of the model shape; runs that share it share N.
        n_params_total: All parameters, embedding and output head included (Chinchilla's N).
        n_params_non_embedding: Parameters outside the embedding and the output head (Kaplan's N).
        tokens: Training tokens D.
        final_val_loss: Validation loss at the end of training (nats per token).
        flops_per_token_exact: ``Config.flops_per_token(seq_len)`` for the run's sequence length.
        flop_budget: The IsoFLOP group the run belongs to: the FLOP budget it was launched for, or any
            string naming the group; runs with the same value form one group in Approach 2.
        curve: Loss during training, used by Approach 1 (the envelope of training curves).
    """

    model_name: str
    n_params_total: int
    n_params_non_embedding: int
    tokens: float
    final_val_loss: float
    flops_per_token_exact: float
    flop_budget: float | str | None = None
    curve: LossCurve | None = None

    def __post_init__(self) -> None:
        for name in ("n_params_total", "n_params_non_embedding", "tokens", "final_val_loss", "flops_per_token_exact"):
            check_positive(f"Run {self.model_name!r}: {name}", getattr(self, name))
        if isinstance(self.flop_budget, str):
            if not self.flop_budget.strip():
                raise ValueError(f"Run {self.model_name!r}: flop_budget is an empty label; give a name or a number")
        elif self.flop_budget is not None:
            check_positive(f"Run {self.model_name!r}: flop_budget", self.flop_budget)
        if self.n_params_non_embedding > self.n_params_total:
            raise ValueError(
                f"Run {self.model_name!r}: n_params_non_embedding={self.n_params_non_embedding} exceeds "
                f"n_params_total={self.n_params_total}"
            )

    @classmethod
    def from_config(
        cls,
        config: Config,
        tokens: float,
        final_val_loss: float,
        seq_len: int | None = None,
        flop_budget: float | None = None,
        curve: LossCurve | None = None,
    ) -> "Run":
        """A run of ``config`` trained on ``tokens`` tokens of length ``seq_len`` (default ``block_size``)."""
        return cls(
            model_name=config.name,
            n_params_total=config.num_params(),
            n_params_non_embedding=config.num_params(non_embedding=True),
            tokens=tokens,
            final_val_loss=final_val_loss,
            flops_per_token_exact=float(config.flops_per_token(seq_len)),
            flop_budget=flop_budget,
            curve=curve,
        )

    def n_params(self, convention: str | Convention) -> int:
        """N under ``convention``."""
        if get_convention(convention).params == "non_embedding":
            return self.n_params_non_embedding
        return self.n_params_total

    def flops_per_token(self, convention: str | Convention) -> float:
        """Training FLOPs per token under ``convention``."""
        convention = get_convention(convention)
        if convention.flops == "exact":
            return self.flops_per_token_exact
        return 6.0 * self.n_params(convention)

    def flops(self, convention: str | Convention) -> float:
        """C of the whole run under ``convention``."""
        return self.flops_per_token(convention) * self.tokens

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready row; ``flops`` lists C under every named convention (derived, checked on load)."""
        row: dict[str, Any] = {
            "model_name": self.model_name,
            "n_params_total": self.n_params_total,
            "n_params_non_embedding": self.n_params_non_embedding,
            "tokens": self.tokens,
            "final_val_loss": self.final_val_loss,
            "flops_per_token_exact": self.flops_per_token_exact,
            "flop_budget": self.flop_budget,
            "flops": {name: self.flops(name) for name in CONVENTIONS},
        }
        if self.curve is not None:
            row["curve"] = {"tokens": list(self.curve.tokens), "loss": list(self.curve.loss)}
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Run":
        """Inverse of ``to_dict``. A ``flops`` entry, if present, must agree with the counts."""
        row = dict(row)
        derived = row.pop("flops", None) or {}
        curve = row.pop("curve", None)
        run = cls(**row, curve=LossCurve(curve["tokens"], curve["loss"]) if curve else None)
        for name, value in derived.items():
            if not math.isclose(value, run.flops(name), rel_tol=1e-6):
                raise ValueError(
                    f"Run {run.model_name!r}: stored flops[{name!r}]={value:.6g} disagrees with "
                    f"{run.flops(name):.6g} computed from the parameter and token counts"
                )
        return run


def save_runs(runs: Iterable[Run], path: str | Path) -> Path:
    """Write runs as JSON Lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(run.to_dict()) + "\n" for run in runs))
    return path


def load_runs(path: str | Path) -> list[Run]:
    """Read runs written by ``save_runs``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Run table {path} does not exist")
    runs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                runs.append(Run.from_dict(json.loads(line)))
            except (ValueError, TypeError) as err:
                raise ValueError(f"{path}:{number}: {err}") from err
    return runs


def run_arrays(runs: Iterable[Run], convention: str | Convention) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D, final loss) as float arrays under ``convention``."""
    runs = list(runs)
    n = np.array([r.n_params(convention) for r in runs], dtype=float)
    d = np.array([r.tokens for r in runs], dtype=float)
    loss = np.array([r.final_val_loss for r in runs], dtype=float)
    return n, d, loss
