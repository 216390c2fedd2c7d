"""The three Chinchilla approaches side by side: the exponent a of N_opt ~ C^a from each, with bootstrap
intervals, and whether the intervals overlap (Hoffmann et al. 2022, Table 2, did this for their runs).

Each approach is resampled the way its data varies:

* Approach 1 (envelope): the runs, with replacement; the envelope of the drawn runs' curves is refitted.
* Approach 2 (IsoFLOP): the residuals of each budget's parabola, with replacement (a residual bootstrap: every
  size stays, so each budget keeps the sizes its parabola needs; residuals are scaled by sqrt(n / (n - 3))
  for the three fitted coefficients); parabolas and frontier refitted.
* Approach 3 (parametric): the runs, with replacement (``fit_parametric_arrays``'s own bootstrap).

A resample an approach cannot fit (e.g. a drawn IsoFLOP group with too few distinct sizes) is counted in
``n_failed`` and left out of the interval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import numpy as np

from lit_tiny.scaling.accounting import Convention, get_convention
from lit_tiny.scaling.frontier import fit_envelope, fit_isoflop, group_by_budget
from lit_tiny.scaling.runs import Run

APPROACHES = {
    "approach_1": "envelope of training curves",
    "approach_2": "IsoFLOP parabolas",
    "approach_3": "parametric fit L(N, D)",
}


@dataclass(frozen=True)
class Estimate:
    """One approach's exponent a and its interval; ``skipped`` says why there is no estimate."""

    approach: str
    a: Optional[float] = None
    interval: Optional[tuple[float, float]] = None
    n_resamples: int = 0
    n_failed: int = 0
    skipped: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return {"approach": self.approach, "method": APPROACHES[self.approach], "a": self.a,
                "interval": list(self.interval) if self.interval else None, "n_resamples": self.n_resamples,
                "n_failed": self.n_failed, "skipped": self.skipped}


@dataclass(frozen=True)
class Comparison:
    """The exponent a from every approach under one convention."""

    convention: str
    confidence: float
    estimates: tuple[Estimate, ...]

    @property
    def overlap(self) -> Optional[bool]:
        """Whether one value of a lies in every interval (None unless all three approaches have one)."""
        intervals = [e.interval for e in self.estimates]
        if len(intervals) < len(APPROACHES) or any(i is None for i in intervals):
            return None
        return max(lo for lo, _ in intervals) <= min(hi for _, hi in intervals)

    def to_dict(self) -> dict[str, Any]:
        return {"convention": get_convention(self.convention).to_dict(), "confidence": self.confidence,
                "estimates": [e.to_dict() for e in self.estimates], "intervals_overlap": self.overlap}

    def table(self) -> str:
        """A plain-text table, one row per approach."""
        share = f"{100 * self.confidence:.0f}%"
        lines = [f"{'approach':<12} {'method':<28} {'a':>7} {share + ' interval':>18} {'resamples':>10}"]
        for e in self.estimates:
            if e.a is None:
                lines.append(f"{e.approach:<12} {APPROACHES[e.approach]:<28} skipped: {e.skipped}")
                continue
            interval = f"[{e.interval[0]:.3f}, {e.interval[1]:.3f}]" if e.interval else "-"
            resamples = f"{e.n_resamples - e.n_failed}/{e.n_resamples}" if e.n_resamples else "-"
            lines.append(f"{e.approach:<12} {APPROACHES[e.approach]:<28} {e.a:>7.3f} {interval:>18} {resamples:>10}")
        verdict = {None: "not all three have an interval", True: "yes", False: "no"}[self.overlap]
        return "\n".join(lines + [f"intervals overlap: {verdict}"])

    def csv_rows(self) -> list[dict[str, Any]]:
        return [{"approach": e.approach, "method": APPROACHES[e.approach], "a": e.a,
                 "low": e.interval[0] if e.interval else None, "high": e.interval[1] if e.interval else None,
                 "resamples_fitted": e.n_resamples - e.n_failed, "resamples": e.n_resamples, "skipped": e.skipped}
                for e in self.estimates]


def _percentiles(samples: list[float], confidence: float) -> Optional[tuple[float, float]]:
    if len(samples) < 2:
        return None
    tails = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tails, 100 - tails])
    return float(low), float(high)


def _bootstrap(fit: Callable[[list[Run]], float], draw: Callable[[np.random.Generator], list[Run]],
               n_bootstrap: int, seed: int) -> tuple[list[float], int]:
    rng = np.random.default_rng(seed)
    samples, failed = [], 0
    for _ in range(n_bootstrap):
        try:
            samples.append(fit(draw(rng)))
        except ValueError:
            failed += 1
    return samples, failed


def compare_approaches(
    runs: Sequence[Run],
    convention: str | Convention,
    fits: dict[str, Any],
    skipped: dict[str, str],
    n_bootstrap: int,
    confidence: float = 0.95,
    seed: int = 0,
    isoflop_tolerance: float = 0.1,
) -> Comparison:
    """The exponent a of Approaches 1-3 with percentile bootstrap intervals.

    Args:
        runs: The run table the fits were made on.
        convention: Their counting convention.
        fits: ``ScalingReport.fits`` (``approach_1``, ``approach_2``, ``approach_3`` when fitted).
        skipped: ``ScalingReport.skipped`` (the reason an approach has no fit).
        n_bootstrap: Resamples for Approaches 1 and 2 (Approach 3's interval comes from its own fit's bootstrap).
        confidence: Coverage of the intervals.
        seed: Seed of the resampling.
        isoflop_tolerance: Grouping tolerance of Approach 2 (see ``group_by_budget``).
    """
    runs = list(runs)
    convention = get_convention(convention)
    groups = group_by_budget(runs, convention, isoflop_tolerance)

    def draw_runs(rng: np.random.Generator) -> list[Run]:
        return [runs[i] for i in sorted(set(rng.integers(0, len(runs), len(runs))))]

    def draw_residuals(rng: np.random.Generator) -> list[Run]:
        drawn = []
        for group in groups:
            if len({r.n_params(convention) for r in group}) <= 3:
                drawn += group  # no residuals to draw from: the parabola passes through every point
                continue
            x = np.log([r.n_params(convention) for r in group])
            loss = np.array([r.final_val_loss for r in group])
            fitted = np.polyval(np.polyfit(x, loss, 2), x)
            residuals = (loss - fitted) * np.sqrt(len(group) / (len(group) - 3))
            new = fitted + residuals[rng.integers(0, len(group), len(group))]
            drawn += [replace(run, final_val_loss=float(max(value, 1e-9))) for run, value in zip(group, new)]
        return drawn

    resampling = {
        "approach_1": (lambda sample: fit_envelope(sample, convention).n_law.exponent, draw_runs),
        "approach_2": (lambda sample: fit_isoflop(sample, convention, isoflop_tolerance).n_law.exponent,
                       draw_residuals),
    }
    estimates = []
    for name in APPROACHES:
        fit = fits.get(name)
        if fit is None:
            estimates.append(Estimate(name, skipped=skipped.get(name, "not fitted")))
        elif name == "approach_3":
            interval = fit.intervals.get("a")
            estimates.append(Estimate(name, fit.law.a, tuple(interval) if interval else None, fit.n_bootstrap))
        else:
            samples, failed = _bootstrap(*resampling[name], n_bootstrap, seed) if n_bootstrap else ([], 0)
            estimates.append(Estimate(name, fit.n_law.exponent, _percentiles(samples, confidence), n_bootstrap, failed))
    return Comparison(convention.name, confidence, tuple(estimates))
