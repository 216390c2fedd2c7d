"""Kaplan et al. (2020) power laws: L(N), L(D) and L(N, D) (their eq. 1.5).

    L(N)    = (N_c / N)^alpha_N
    L(D)    = (D_c / D)^alpha_D
    L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D

All three are fitted by least squares on log loss. Kaplan's N is the non-embedding count; pass
another convention to fit under it (it is recorded in the result).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from lit_tiny.scaling.accounting import Convention, get_convention
from lit_tiny.scaling.runs import Run, run_arrays
from lit_tiny.scaling.validation import positive_array, require_points, same_length


@dataclass(frozen=True)
class PowerLaw:
    """L(X) = (x_c / X)^alpha, for X = N (parameters) or D (tokens)."""

    variable: Literal["N", "D"]
    alpha: float
    x_c: float
    convention: str
    n_points: int

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return (self.x_c / np.asarray(x, dtype=float)) ** self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": f"L({self.variable}) = ({self.variable}_c / {self.variable})^alpha",
            "variable": self.variable,
            "alpha": self.alpha,
            "x_c": self.x_c,
            "convention": get_convention(self.convention).to_dict(),
            "n_points": self.n_points,
        }


@dataclass(frozen=True)
class KaplanLaw:
    """L(N, D) = [(n_c / N)^(alpha_n / alpha_d) + d_c / D]^alpha_d (Kaplan et al. eq. 1.5)."""

    alpha_n: float
    alpha_d: float
    n_c: float
    d_c: float
    convention: str
    n_points: int
    rms_log_residual: float

    def __call__(self, n: float | np.ndarray, d: float | np.ndarray) -> float | np.ndarray:
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        return ((self.n_c / n) ** (self.alpha_n / self.alpha_d) + self.d_c / d) ** self.alpha_d

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": "L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D",
            "alpha_n": self.alpha_n,
            "alpha_d": self.alpha_d,
            "n_c": self.n_c,
            "d_c": self.d_c,
            "convention": get_convention(self.convention).to_dict(),
            "n_points": self.n_points,
            "rms_log_residual": self.rms_log_residual,
        }


def fit_power_law(
    x: Sequence[float] | np.ndarray,
    loss: Sequence[float] | np.ndarray,
    variable: Literal["N", "D"] = "N",
    convention: str | Convention = "kaplan",
) -> PowerLaw:
    """Fit L = (x_c / x)^alpha: a straight line log L = alpha log x_c - alpha log x."""
    x, loss = positive_array(variable, x), positive_array("loss", loss)
    n_points = same_length(x=x, loss=loss)
    require_points(f"A power-law fit of L({variable})", n_points, 3)
    if np.ptp(np.log(x)) == 0:
        raise ValueError(f"A power-law fit of L({variable}) needs at least 2 distinct values of {variable}")
    slope, intercept = np.polyfit(np.log(x), np.log(loss), 1)
    if slope >= 0:
        raise ValueError(f"Loss does not decrease with {variable} (log-log slope {slope:.3g}); no power law to fit")
    alpha = -slope
    return PowerLaw(variable, float(alpha), float(np.exp(intercept / alpha)), get_convention(convention).name, n_points)


def fit_kaplan_nd_arrays(
    n: Sequence[float] | np.ndarray,
    d: Sequence[float] | np.ndarray,
    loss: Sequence[float] | np.ndarray,
    convention: str | Convention = "kaplan",
) -> KaplanLaw:
    """Fit Kaplan's L(N, D) to (N, D, loss) triples by least squares on log loss from a few starts."""
    n, d, loss = positive_array("N", n), positive_array("D", d), positive_array("loss", loss)
    n_points = same_length(N=n, D=d, loss=loss)
    require_points(
        "Kaplan's L(N, D) (4 parameters)", n_points, 5, "Use runs with several model sizes and token counts."
    )
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)

    def residuals(theta: np.ndarray) -> np.ndarray:
        alpha_n, alpha_d, log_n_c, log_d_c = theta
        # log L = alpha_D * log[exp((alpha_N / alpha_D) (log N_c - log N)) + exp(log D_c - log D)]
        inner = np.logaddexp((alpha_n / alpha_d) * (log_n_c - log_n), log_d_c - log_d)
        return alpha_d * inner - log_loss

    best = None
    with threadpool_limits(1):  # tiny problems: BLAS threads only contend
        for alpha_n, alpha_d in itertools.product((0.05, 0.1, 0.3, 0.6), repeat=2):
            # Start each term's scale so that it alone reproduces the mean loss.
            start = np.array(
                [alpha_n, alpha_d, log_n.mean() + log_loss.mean() / alpha_n, log_d.mean() + log_loss.mean() / alpha_d]
            )
            result = least_squares(residuals, start, bounds=([1e-4, 1e-4, -np.inf, -np.inf], np.inf), x_scale="jac")
            if best is None or result.cost < best.cost:
                best = result
    alpha_n, alpha_d, log_n_c, log_d_c = best.x
    rms = float(np.sqrt(np.mean(best.fun**2)))
    return KaplanLaw(
        float(alpha_n),
        float(alpha_d),
        float(np.exp(log_n_c)),
        float(np.exp(log_d_c)),
        get_convention(convention).name,
        n_points,
        rms,
    )


def fit_kaplan_n(runs: Sequence[Run], convention: str | Convention = "kaplan") -> PowerLaw:
    """L(N) from a run table: for each model, its lowest final loss (the run closest to convergence,
    which is what Kaplan's L(N) describes)."""
    best: dict[str, Run] = {}
    for run in runs:
        if run.model_name not in best or run.final_val_loss < best[run.model_name].final_val_loss:
            best[run.model_name] = run
    require_points("L(N)", len(best), 3, "Each point is one model size: train at least 3 sizes.")
    n, _, loss = run_arrays(best.values(), convention)
    return fit_power_law(n, loss, "N", convention)


def fit_kaplan_d(
    runs: Sequence[Run], convention: str | Convention = "kaplan", model_name: str | None = None
) -> PowerLaw:
    """L(D) from a run table: the final losses of one model (default: the largest) at different token
    counts. Kaplan measured L(D) with large models, where the model size is not the bottleneck."""
    runs = list(runs)
    require_points("L(D)", len(runs), 3)
    if model_name is None:
        model_name = max(runs, key=lambda r: r.n_params(convention)).model_name
    chosen = [r for r in runs if r.model_name == model_name]
    require_points(
        f"L(D) for model {model_name!r}",
        len({r.tokens for r in chosen}),
        3,
        "Each point is one token count: train this model on at least 3 different numbers of tokens.",
    )
    _, d, loss = run_arrays(chosen, convention)
    return fit_power_law(d, loss, "D", convention)


def fit_kaplan_nd(runs: Sequence[Run], convention: str | Convention = "kaplan") -> KaplanLaw:
    """Kaplan's L(N, D) on the final losses of all runs."""
    n, d, loss = run_arrays(runs, convention)
    return fit_kaplan_nd_arrays(n, d, loss, convention)
