"""The Chinchilla parametric law L(N, D) = E + A / N^alpha + B / D^beta and what it implies:
compute-optimal allocation, the loss a budget buys, and the cost of over-training.

Compute is C = 6 N D with N counted as the law's convention counts it (the closed forms need 6ND).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lit_tiny.scaling.accounting import get_convention
from lit_tiny.scaling.validation import check_positive


def _human(x: float) -> str:
    """1.1e9 -> '1.1B'."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if x >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


@dataclass(frozen=True)
class Allocation:
    """A model size and token count for one compute budget, and the loss the law predicts for them."""

    compute: float
    n_params: float
    tokens: float
    loss: float

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.n_params


@dataclass(frozen=True)
class ParametricLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, Approach 3).

    Args:
        E: Irreducible loss (nats per token).
        A, alpha: Scale and exponent of the model-size term.
        B, beta: Scale and exponent of the data term.
        convention: Name of the counting convention the constants were fitted under.
        name: Label for reports.
        source: Where the constants come from (paper, table, fit), printed by the calculator.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    convention: str = "chinchilla"
    name: str = "custom"
    source: str | None = None

    def __post_init__(self) -> None:
        for field in ("E", "A", "B", "alpha", "beta"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"Parametric law {self.name!r}: {field} must be positive and finite, got {value}")
        get_convention(self.convention)

    def loss(self, n_params: float | np.ndarray, tokens: float | np.ndarray) -> float | np.ndarray:
        """Predicted loss of N parameters trained on D tokens."""
        n, d = np.asarray(n_params, dtype=float), np.asarray(tokens, dtype=float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    # Minimising A N^-alpha + B D^-beta subject to 6 N D = C gives alpha A N^-alpha = beta B D^-beta, hence
    # N_opt = G (C/6)^a and D_opt = (C/6)^b / G with the three quantities below.

    @property
    def a(self) -> float:
        """Exponent of N_opt in C: beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt in C: alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """(alpha A / (beta B))^(1 / (alpha + beta))."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def compute_optimal(self, compute: float) -> Allocation:
        """The allocation of ``compute`` FLOPs (C = 6ND) that minimises the predicted loss."""
        check_positive("compute", compute)
        n_opt = self.G * (compute / 6.0) ** self.a
        d_opt = (compute / 6.0) ** self.b / self.G
        return Allocation(compute, n_opt, d_opt, float(self.loss(n_opt, d_opt)))

    def compute_for_loss(self, loss: float) -> float:
        """The smallest compute whose compute-optimal allocation reaches ``loss``.

        At the optimum B / D^beta = (alpha / beta) A / N^alpha, so the reducible loss is
        (1 + alpha / beta) A G^-alpha (C/6)^(-alpha a), which inverts in closed form.
        """
        if not loss > self.E:
            raise ValueError(f"Loss {loss} is not above the irreducible loss E={self.E}; no compute reaches it")
        scale = (1.0 + self.alpha / self.beta) * self.A * self.G ** (-self.alpha)
        return 6.0 * ((loss - self.E) / scale) ** (-1.0 / (self.alpha * self.a))

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": "L(N, D) = E + A / N^alpha + B / D^beta",
            "name": self.name,
            "E": self.E,
            "A": self.A,
            "B": self.B,
            "alpha": self.alpha,
            "beta": self.beta,
            "a": self.a,
            "b": self.b,
            "G": self.G,
            "convention": get_convention(self.convention).to_dict(),
            "source": self.source,
        }


LAW_PRESETS: dict[str, ParametricLaw] = {
    "chinchilla": ParametricLaw(
        E=1.69,
        A=406.4,
        B=410.7,
        alpha=0.34,
        beta=0.28,
        name="chinchilla",
        source=(
            "Hoffmann et al. 2022, Approach 3, as printed in the paper's text (exponents rounded to 2 digits): "
            "they give N_opt = 32.2B at Gopher's 5.76e23 FLOPs, where the paper reports about 40B"
        ),
    ),
    "besiroglu": ParametricLaw(
        E=1.8172,
        A=482.01,
        B=2085.43,
        alpha=0.3478,
        beta=0.3658,
        name="besiroglu",
        source=(
            "Besiroglu et al. 2024 (arXiv:2404.10102), Table 1: their published estimate for the 240 runs they "
            "reconstructed from Hoffmann et al.'s Figure 4 (245, less 5 outliers), from a likelihood-based fit, "
            "not the optimum of the summed Huber loss"
        ),
    ),
}


def get_law(law: str | ParametricLaw) -> ParametricLaw:
    """A ``ParametricLaw`` from itself or from one of the names in ``LAW_PRESETS``."""
    if isinstance(law, ParametricLaw):
        return law
    if law not in LAW_PRESETS:
        raise ValueError(f"Unknown parametric law {law!r}. Known: {', '.join(LAW_PRESETS)}")
    return LAW_PRESETS[law]


@dataclass(frozen=True)
class Calculation:
    """What a law says about one training run: the run itself, the compute-optimal run with the
    same compute, and how much compute the compute-optimal frontier needs for the run's loss."""

    law: ParametricLaw
    run: Allocation
    optimal: Allocation
    compute_for_same_loss: float

    @property
    def ratio_to_optimal(self) -> float:
        """Tokens per parameter of the run over those of the compute-optimal run (>1: over-trained)."""
        return self.run.tokens_per_param / self.optimal.tokens_per_param

    @property
    def compute_efficiency(self) -> float:
        """Compute the frontier needs for the run's loss, over the run's compute (1 at the optimum)."""
        return self.compute_for_same_loss / self.run.compute

    def summary(self, label: str | None = None) -> str:
        """A few lines of plain text."""
        run, opt = self.run, self.optimal
        label = label or f"{_human(run.n_params)} parameters"
        return "\n".join(
            [
                f"Law: {self.law.name} (E={self.law.E:g}, A={self.law.A:g}, B={self.law.B:g}, "
                f"alpha={self.law.alpha:g}, beta={self.law.beta:g}; N counted as {self.law.convention}, C = 6ND)",
                *([f"Source: {self.law.source}"] if self.law.source else []),
                f"{label} on {_human(run.tokens)} tokens is {run.tokens_per_param:.1f} tokens/param, "
                f"{self.ratio_to_optimal:.3g} times the compute-optimal ratio ({opt.tokens_per_param:.1f}).",
                f"Compute C = {run.compute:.3e} FLOPs; predicted loss {run.loss:.4f}.",
                f"Compute-optimal at this C: N_opt = {_human(opt.n_params)}, D_opt = {_human(opt.tokens)} tokens, "
                f"loss {opt.loss:.4f}.",
                f"The compute-optimal frontier reaches loss {run.loss:.4f} with C = {self.compute_for_same_loss:.3e} "
                f"FLOPs ({100 * self.compute_efficiency:.1f}% of this run's compute).",
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        def allocation(a: Allocation) -> dict[str, float]:
            return {
                "compute": a.compute,
                "n_params": a.n_params,
                "tokens": a.tokens,
                "loss": a.loss,
                "tokens_per_param": a.tokens_per_param,
            }

        return {
            "law": self.law.to_dict(),
            "run": allocation(self.run),
            "compute_optimal": allocation(self.optimal),
            "ratio_to_optimal": self.ratio_to_optimal,
            "compute_for_same_loss": self.compute_for_same_loss,
            "compute_efficiency": self.compute_efficiency,
        }


def calculate(
    law: str | ParametricLaw = "besiroglu",
    compute: float | None = None,
    n_params: float | None = None,
    tokens: float | None = None,
) -> Calculation:
    """Evaluate a run under ``law``. Give ``compute`` alone (the run is then the compute-optimal one),
    or any two of ``compute``, ``n_params`` and ``tokens`` (the third follows from C = 6ND)."""
    law = get_law(law)
    given = {k: v for k, v in (("compute", compute), ("n_params", n_params), ("tokens", tokens)) if v is not None}
    for name, value in given.items():
        check_positive(name, value)
    if set(given) == {"compute"}:
        run = law.compute_optimal(compute)
    elif len(given) == 2:
        if compute is None:
            compute = 6.0 * n_params * tokens
        elif n_params is None:
            n_params = compute / (6.0 * tokens)
        else:
            tokens = compute / (6.0 * n_params)
        run = Allocation(compute, n_params, tokens, float(law.loss(n_params, tokens)))
    else:
        raise ValueError(
            f"Give compute alone, or exactly two of compute, n_params and tokens; got {sorted(given) or 'none'}"
        )
    return Calculation(law, run, law.compute_optimal(run.compute), law.compute_for_loss(run.loss))
