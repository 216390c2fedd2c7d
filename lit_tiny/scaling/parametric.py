"""Chinchilla Approach 3: fit L(N, D) = E + A / N^alpha + B / D^beta to final losses.

As in Hoffmann et al. (2022) and the replication by Besiroglu et al. (2024), the law is fitted on
log loss with parameters (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta):

    log L_hat = LSE(a - alpha log N, b - beta log D, e)

minimising the *summed* Huber loss (delta = 1e-3) of log L_hat - log L with L-BFGS from a grid of
initial points, keeping the best. Confidence intervals come from refitting bootstrap resamples.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from lit_tiny.scaling.accounting import Convention, get_convention
from lit_tiny.scaling.law import ParametricLaw
from lit_tiny.scaling.runs import Run, run_arrays
from lit_tiny.scaling.validation import positive_array, require_points, same_length

# Hoffmann et al. (2022) Appendix D.2 initialisation grid, in the order (a, b, e, alpha, beta): 4500 points.
CHINCHILLA_GRID: tuple[tuple[float, ...], ...] = (
    (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    (-1.0, -0.5, 0.0, 0.5, 1.0),
    (0.0, 0.5, 1.0, 1.5, 2.0),
    (0.0, 0.5, 1.0, 1.5, 2.0),
)
INTERVAL_NAMES = ("E", "A", "B", "alpha", "beta", "a", "b")


@dataclass(frozen=True)
class ParametricFit:
    """Result of Approach 3.

    Attributes:
        law: The fitted law (usable by ``calculate``).
        objective: Summed Huber loss at the optimum.
        n_points: Runs used.
        huber_delta: Huber threshold on log-loss residuals.
        n_starts: L-BFGS starts tried on the full data.
        intervals: Bootstrap confidence intervals of E, A, B, alpha, beta, a, b (empty without bootstrap).
        confidence: Coverage of ``intervals``.
        n_bootstrap: Resamples behind ``intervals``.
    """

    law: ParametricLaw
    objective: float
    n_points: int
    huber_delta: float
    n_starts: int
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    confidence: float = 0.95
    n_bootstrap: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "Chinchilla Approach 3: summed Huber loss on log loss, L-BFGS from a grid",
            **self.law.to_dict(),
            "objective": self.objective,
            "n_points": self.n_points,
            "huber_delta": self.huber_delta,
            "n_starts": self.n_starts,
            "n_bootstrap": self.n_bootstrap,
            "confidence": self.confidence,
            "intervals": {k: list(v) for k, v in self.intervals.items()},
        }


def initial_grid(axes: Sequence[Sequence[float]] = CHINCHILLA_GRID) -> np.ndarray:
    """All combinations of the per-parameter values in ``axes`` (order a, b, e, alpha, beta), shape (G, 5)."""
    if len(axes) != 5:
        raise ValueError(f"The grid needs values for 5 parameters (a, b, e, alpha, beta), got {len(axes)}")
    return np.array(list(itertools.product(*axes)), dtype=float)


def _terms(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """The three log-terms (a - alpha log N, b - beta log D, e) for parameter rows ``theta`` (..., 5):
    shape (..., n_points, 3)."""
    a, b, e, alpha, beta = (theta[..., i, None] for i in range(5))
    return np.stack(np.broadcast_arrays(a - alpha * log_n, b - beta * log_d, e), axis=-1)


def _log_sum_exp(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LSE over the last axis and its gradient (the softmax weights), computed stably."""
    top = terms.max(axis=-1, keepdims=True)
    exp = np.exp(terms - top)
    total = exp.sum(axis=-1, keepdims=True)
    return (top + np.log(total))[..., 0], exp / total


def _huber(residual: np.ndarray, delta: float) -> np.ndarray:
    absolute = np.abs(residual)
    return np.where(absolute <= delta, 0.5 * residual**2, delta * (absolute - 0.5 * delta))


def _objective_and_gradient(
    theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, delta: float
) -> tuple[float, np.ndarray]:
    """Summed Huber loss of the log-loss residuals, and its gradient in (a, b, e, alpha, beta)."""
    predicted, weights = _log_sum_exp(_terms(theta, log_n, log_d))
    residual = predicted - log_loss
    # d LSE / d term_k is the softmax weight of term k; the Huber derivative is the residual clipped to +-delta.
    psi = np.clip(residual, -delta, delta)
    gradient = np.array(
        [
            psi @ weights[:, 0],
            psi @ weights[:, 1],
            psi @ weights[:, 2],
            -psi @ (weights[:, 0] * log_n),
            -psi @ (weights[:, 1] * log_d),
        ]
    )
    return float(_huber(residual, delta).sum()), gradient


def _best_fit(
    starts: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, delta: float
) -> tuple[np.ndarray, float]:
    """Run L-BFGS from every start; return the best parameters and objective. BLAS is held to one thread:
    the problems are tiny, and threads only fight each other (and any other job on the machine)."""
    best_theta, best_value = starts[0], math.inf
    with threadpool_limits(1):
        for start in starts:
            result = minimize(
                _objective_and_gradient,
                start,
                args=(log_n, log_d, log_loss, delta),
                jac=True,
                method="L-BFGS-B",
                # Tight tolerances: the summed Huber objective is tiny near the optimum, and stopping early
                # was one of the flaws Besiroglu et al. found in the original fit.
                options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12},
            )
            if np.all(np.isfinite(result.x)) and result.fun < best_value:
                best_theta, best_value = result.x, float(result.fun)
    if not np.isfinite(best_value):
        raise RuntimeError(f"L-BFGS found no finite optimum from any of {len(starts)} starts")
    return best_theta, best_value


def _ranked_starts(
    grid: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, delta: float, n_starts: int | None
) -> np.ndarray:
    """The ``n_starts`` grid points with the lowest objective (all of them for None), best first."""
    values = _huber(_log_sum_exp(_terms(grid, log_n, log_d))[0] - log_loss, delta).sum(axis=-1)
    order = np.argsort(values, kind="stable")
    return grid[order if n_starts is None else order[:n_starts]]


def _law(theta: np.ndarray, convention: str) -> ParametricLaw:
    a, b, e, alpha, beta = (float(v) for v in theta)
    return ParametricLaw(
        E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta, convention=convention, name="approach_3"
    )


def fit_parametric_arrays(
    n: Sequence[float] | np.ndarray,
    d: Sequence[float] | np.ndarray,
    loss: Sequence[float] | np.ndarray,
    convention: str | Convention = "chinchilla",
    huber_delta: float = 1e-3,
    grid: Sequence[Sequence[float]] = CHINCHILLA_GRID,
    n_starts: int | None = 100,
    n_bootstrap: int = 0,
    bootstrap_starts: int = 4,
    confidence: float = 0.95,
    seed: int = 0,
) -> ParametricFit:
    """Fit the parametric law to (N, D, loss) triples.

    Args:
        n, d, loss: Parameters (under ``convention``), training tokens and final loss of each run.
        convention: Counting convention of ``n``; recorded in the result.
        huber_delta: Huber threshold on log-loss residuals (1e-3 in both papers).
        grid: Initial values per parameter (a, b, e, alpha, beta); L-BFGS starts from their product.
        n_starts: Start from the ``n_starts`` grid points with the lowest objective. None starts from all
            of them, as the papers do: 4500 L-BFGS runs for the default grid, one to two minutes on 2 cores,
            where the best 100 (about a second) have found the same optimum in our checks.
        n_bootstrap: Resamples (with replacement) for confidence intervals; 0 skips the bootstrap.
        bootstrap_starts: Starts per resample: the full-data optimum plus this many best grid points.
        confidence: Coverage of the percentile intervals.
        seed: Seed of the resampling.
    """
    n, d, loss = positive_array("N", n), positive_array("D", d), positive_array("loss", loss)
    n_points = same_length(N=n, D=d, loss=loss)
    require_points(
        "Approach 3 (5 parameters)", n_points, 6, "Fit it on a sweep of several model sizes and token counts."
    )
    for name, values in (("model sizes N", n), ("token counts D", d)):
        require_points(f"Approach 3 (distinct {name})", len(np.unique(values)), 3)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if (n_starts is not None and n_starts < 1) or bootstrap_starts < 0 or n_bootstrap < 0:
        raise ValueError(
            f"Need n_starts >= 1 (or None), bootstrap_starts >= 0 and n_bootstrap >= 0; "
            f"got {n_starts}, {bootstrap_starts}, {n_bootstrap}"
        )
    convention = get_convention(convention).name
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)
    axes = initial_grid(grid)
    starts = _ranked_starts(axes, log_n, log_d, log_loss, huber_delta, n_starts)
    theta, objective = _best_fit(starts, log_n, log_d, log_loss, huber_delta)

    intervals: dict[str, tuple[float, float]] = {}
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(n_bootstrap):
            i = rng.integers(0, n_points, n_points)
            resample_starts = np.vstack(
                [theta, _ranked_starts(axes, log_n[i], log_d[i], log_loss[i], huber_delta, bootstrap_starts)]
            )
            a, b, e, alpha, beta = _best_fit(resample_starts, log_n[i], log_d[i], log_loss[i], huber_delta)[0]
            # A degenerate resample can drive a log-coefficient past float range: it becomes inf, not a crash.
            with np.errstate(over="ignore"):
                samples.append(
                    [np.exp(e), np.exp(a), np.exp(b), alpha, beta, beta / (alpha + beta), alpha / (alpha + beta)]
                )
        tails = 100 * (1 - confidence) / 2
        low, high = np.percentile(np.array(samples), [tails, 100 - tails], axis=0)
        intervals = {name: (float(lo), float(hi)) for name, lo, hi in zip(INTERVAL_NAMES, low, high)}

    return ParametricFit(
        law=_law(theta, convention),
        objective=objective,
        n_points=n_points,
        huber_delta=huber_delta,
        n_starts=len(starts),
        intervals=intervals,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
    )


def fit_parametric(runs: Sequence[Run], convention: str | Convention = "chinchilla", **kwargs: Any) -> ParametricFit:
    """Approach 3 on the final losses of a run table; ``kwargs`` go to ``fit_parametric_arrays``."""
    n, d, loss = run_arrays(runs, convention)
    return fit_parametric_arrays(n, d, loss, convention, **kwargs)
