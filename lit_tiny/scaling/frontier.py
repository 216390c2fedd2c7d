"""Chinchilla Approaches 1 and 2: the compute-optimal frontier N_opt(C) and D_opt(C) from runs.

Approach 1 (envelope): interpolate every run's loss curve against compute, take the run with the lowest
loss at each FLOP budget, and fit N_opt = k C^a and D_opt = k' C^b through the winners.

Approach 2 (IsoFLOP): for each FLOP budget, fit a parabola to final loss against log N over the runs
trained with that budget, take its minimum, and fit N_opt = k C^a through the minima.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np

from lit_tiny.scaling.accounting import Convention, get_convention
from lit_tiny.scaling.runs import Run
from lit_tiny.scaling.validation import positive_array, require_points, same_length


@dataclass(frozen=True)
class FrontierLaw:
    """y = coefficient * C^exponent (N_opt or D_opt against compute)."""

    coefficient: float
    exponent: float

    def __call__(self, compute: float | np.ndarray) -> float | np.ndarray:
        return self.coefficient * np.asarray(compute, dtype=float) ** self.exponent

    def to_dict(self) -> dict[str, float]:
        return {"coefficient": self.coefficient, "exponent": self.exponent}


def fit_frontier(compute: Sequence[float] | np.ndarray, optimum: Sequence[float] | np.ndarray) -> FrontierLaw:
    """Least-squares line through (log C, log optimum)."""
    compute, optimum = positive_array("compute", compute), positive_array("optimum", optimum)
    same_length(compute=compute, optimum=optimum)
    require_points("A frontier fit", len(np.unique(compute)), 2, "It needs at least 2 distinct FLOP budgets.")
    slope, intercept = np.polyfit(np.log(compute), np.log(optimum), 1)
    return FrontierLaw(float(np.exp(intercept)), float(slope))


# ---------------------------------------------------------------------------------------------- Approach 1


@dataclass(frozen=True)
class EnvelopeFit:
    """Result of Approach 1. Per-budget arrays are aligned with ``budgets``; ``used`` marks the budgets
    in the frontier fit (those won by the smallest or largest model are left out: there the ladder, not
    the law, sets the winner)."""

    budgets: tuple[float, ...]
    n_opt: tuple[float, ...]
    d_opt: tuple[float, ...]
    loss: tuple[float, ...]
    winners: tuple[str, ...]
    used: tuple[bool, ...]
    n_law: FrontierLaw
    d_law: FrontierLaw
    convention: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "Chinchilla Approach 1: envelope of training curves",
            "convention": get_convention(self.convention).to_dict(),
            "n_opt_law": self.n_law.to_dict(),
            "d_opt_law": self.d_law.to_dict(),
            "a": self.n_law.exponent,
            "b": self.d_law.exponent,
            "budgets": [
                {"compute": c, "n_opt": n, "d_opt": d, "loss": loss, "model": m, "used": u}
                for c, n, d, loss, m, u in zip(self.budgets, self.n_opt, self.d_opt, self.loss, self.winners, self.used)
            ],
        }


class _Winner(NamedTuple):
    """The run with the lowest loss at one FLOP budget."""

    compute: float
    n_params: int
    tokens: float
    loss: float
    model: str


def fit_envelope(
    runs: Sequence[Run],
    convention: str | Convention = "chinchilla",
    n_budgets: int = 200,
    exclude_edge_models: bool = True,
) -> EnvelopeFit:
    """Chinchilla Approach 1 on the loss curves of a run table.

    Args:
        runs: Runs; those without a ``curve`` are ignored.
        convention: How N and C are counted.
        n_budgets: FLOP budgets, log-spaced over the range the curves cover.
        exclude_edge_models: Leave budgets won by the smallest or largest model out of the frontier fit.

    Curves taken part-way through a cosine schedule overstate the loss a run of that length would reach;
    Chinchilla trained each size with several schedule lengths so that the envelope is made of (nearly)
    finished runs. Do the same, or read the result as an upper bound on the frontier.
    """
    convention = get_convention(convention)
    with_curves = [r for r in runs if r.curve is not None]
    sizes = sorted({r.n_params(convention) for r in with_curves})
    require_points(
        "Approach 1 (distinct model sizes with loss curves)",
        len(sizes),
        3,
        "Record a loss curve (Run.curve) for runs of at least 3 model sizes.",
    )
    require_points("Approach 1 (FLOP budgets)", n_budgets, 3)
    log_c = [np.log(r.flops_per_token(convention) * np.array(r.curve.tokens)) for r in with_curves]
    log_loss = [np.log(r.curve.loss) for r in with_curves]
    budgets = np.exp(np.linspace(min(c[0] for c in log_c), max(c[-1] for c in log_c), n_budgets))

    winners: list[_Winner] = []
    for budget in budgets:
        x = np.log(budget)
        # Loss of every run whose curve spans this budget, interpolated linearly in (log C, log L).
        covering = [
            (float(np.exp(np.interp(x, run_log_c, run_log_loss))), run)
            for run_log_c, run_log_loss, run in zip(log_c, log_loss, with_curves)
            if run_log_c[0] <= x <= run_log_c[-1]
        ]
        if len({run.n_params(convention) for _, run in covering}) < 2:
            continue  # a budget reached by one model size says nothing about the optimum
        loss, run = min(covering, key=lambda item: item[0])
        winners.append(
            _Winner(
                float(budget), run.n_params(convention), budget / run.flops_per_token(convention), loss, run.model_name
            )
        )

    edges = {sizes[0], sizes[-1]} if exclude_edge_models else set()
    used = [w.n_params not in edges for w in winners]
    chosen = [w for w, keep in zip(winners, used) if keep]
    hint = "Train a wider range of model sizes, or longer, so that inner sizes win some budgets."
    require_points("Approach 1 (budgets won by an inner model size)", len(chosen), 3, hint)
    require_points("Approach 1 (distinct winning sizes)", len({w.n_params for w in chosen}), 2, hint)
    compute = [w.compute for w in chosen]
    return EnvelopeFit(
        budgets=tuple(w.compute for w in winners),
        n_opt=tuple(float(w.n_params) for w in winners),
        d_opt=tuple(float(w.tokens) for w in winners),
        loss=tuple(w.loss for w in winners),
        winners=tuple(w.model for w in winners),
        used=tuple(used),
        n_law=fit_frontier(compute, [w.n_params for w in chosen]),
        d_law=fit_frontier(compute, [w.tokens for w in chosen]),
        convention=convention.name,
    )


# ---------------------------------------------------------------------------------------------- Approach 2


@dataclass(frozen=True)
class IsoFlopParabola:
    """One IsoFLOP group: loss = c2 x^2 + c1 x + c0 with x = ln N, and its minimum.

    ``compute`` is the group's C (see ``budget_compute``) and ``label`` its runs' ``flop_budget``.
    ``interior`` is False when the minimum lies outside the sampled sizes (an extrapolation)."""

    compute: float
    n_params: tuple[float, ...]
    tokens: tuple[float, ...]
    loss: tuple[float, ...]
    coefficients: tuple[float, float, float]
    n_opt: float
    d_opt: float
    loss_opt: float
    interior: bool
    label: float | str | None = None

    def __call__(self, n_params: float | np.ndarray) -> float | np.ndarray:
        return np.polyval(self.coefficients, np.log(np.asarray(n_params, dtype=float)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "compute": self.compute,
            "budget_label": self.label,
            "n_opt": self.n_opt,
            "d_opt": self.d_opt,
            "loss_opt": self.loss_opt,
            "interior": self.interior,
            "coefficients_ln_n": list(self.coefficients),
            "points": [
                {"n_params": n, "tokens": d, "loss": loss} for n, d, loss in zip(self.n_params, self.tokens, self.loss)
            ],
        }


@dataclass(frozen=True)
class IsoFlopFit:
    """Result of Approach 2: the parabolas, the frontier laws through their interior minima, and the
    groups that could not be used (with the reason)."""

    parabolas: tuple[IsoFlopParabola, ...]
    n_law: FrontierLaw
    d_law: FrontierLaw
    convention: str
    skipped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "Chinchilla Approach 2: IsoFLOP parabolas in ln N",
            "convention": get_convention(self.convention).to_dict(),
            "n_opt_law": self.n_law.to_dict(),
            "d_opt_law": self.d_law.to_dict(),
            "a": self.n_law.exponent,
            "b": self.d_law.exponent,
            "parabolas": [p.to_dict() for p in self.parabolas],
            "skipped": list(self.skipped),
        }


def _geometric_mean_compute(runs: Sequence[Run], convention: str | Convention) -> float:
    return float(np.exp(np.mean(np.log([r.flops(convention) for r in runs]))))


def group_by_budget(runs: Sequence[Run], convention: str | Convention, tolerance: float = 0.1) -> list[list[Run]]:
    """IsoFLOP groups, in increasing compute.

    Runs that share a ``flop_budget`` label (a number or any string) form one group, however far apart
    their C. When no run has a label, the runs are sorted by C under ``convention`` and a new group starts
    wherever a run's C is more than a factor ``1 + tolerance`` above the previous run's: one budget whose
    runs spread wider than the tolerance stays whole as long as no gap between neighbours does, and
    distinct budgets must lie more than that factor apart.
    """
    if not tolerance > 0:
        raise ValueError(f"The IsoFLOP grouping tolerance must be positive, got {tolerance}")
    runs = list(runs)
    labelled = [r.flop_budget is not None for r in runs]
    if any(labelled) and not all(labelled):
        raise ValueError(
            f"{labelled.count(False)} of {len(runs)} runs have no flop_budget (budget label); label all runs or "
            "none (unlabelled runs are grouped by their computed FLOPs)"
        )
    if all(labelled) and runs:
        labels = dict.fromkeys(r.flop_budget for r in runs)
        groups = [[r for r in runs if r.flop_budget == label] for label in labels]
        return sorted(groups, key=lambda group: _geometric_mean_compute(group, convention))
    groups: list[list[Run]] = []
    for run in sorted(runs, key=lambda r: r.flops(convention)):
        if groups and run.flops(convention) <= groups[-1][-1].flops(convention) * (1 + tolerance):
            groups[-1].append(run)
        else:
            groups.append([run])
    return groups


LABEL_RTOL = 0.02  # how far a group's C may be from its numeric budget label for the label to be its C


def budget_compute(group: Sequence[Run], convention: str | Convention) -> float:
    """The C an IsoFLOP group stands for: its numeric budget label when the geometric mean of its runs'
    C under ``convention`` is within ``LABEL_RTOL`` (2%) of it (the label is then this convention's
    budget, which the runs miss only by rounding their token counts), else that geometric mean (no label,
    a string label, or a budget counted under another convention, such as a sweep planned under
    ``exact`` and read under ``chinchilla``)."""
    centre = _geometric_mean_compute(group, convention)
    label = group[0].flop_budget
    if isinstance(label, (int, float)) and abs(label / centre - 1) <= LABEL_RTOL:
        return float(label)
    return centre


def _where(label: float | str | None, compute: float) -> str:
    """'C = 1e+18', or "budget 'small' (C = 1.02e+18)" for a string label."""
    return f"budget {label!r} (C = {compute:.3g})" if isinstance(label, str) else f"C = {compute:.3g}"


def fit_parabola(runs: Sequence[Run], convention: str | Convention, min_sizes: int = 4) -> IsoFlopParabola:
    """Parabola in ln N through one IsoFLOP group of at least ``min_sizes`` distinct sizes; D at the
    minimum comes from a line through (ln N, ln D) of the group (exactly C / 6N under a 6ND convention).
    The group's C is ``budget_compute(runs, convention)``."""
    n = np.array([r.n_params(convention) for r in runs], dtype=float)
    d = np.array([r.tokens for r in runs], dtype=float)
    loss = np.array([r.final_val_loss for r in runs], dtype=float)
    compute = budget_compute(runs, convention)
    where = _where(runs[0].flop_budget, compute)
    require_points(
        f"An IsoFLOP parabola ({where})",
        len(np.unique(n)),
        min_sizes,
        f"Each FLOP budget needs runs of at least {min_sizes} model sizes: 3 points fit any parabola exactly "
        "and say nothing about its shape (Chinchilla used 9 per budget).",
    )
    x = np.log(n)
    c2, c1, c0 = np.polyfit(x, loss, 2)
    if c2 <= 0:
        raise ValueError(
            f"The IsoFLOP group at {where} is not convex in ln N (curvature {c2:.3g}); "
            "it has no minimum. Add sizes on both sides of the best one."
        )
    x_opt = -c1 / (2 * c2)
    slope, intercept = np.polyfit(x, np.log(d), 1)
    return IsoFlopParabola(
        compute=compute,
        n_params=tuple(n.tolist()),
        tokens=tuple(d.tolist()),
        loss=tuple(loss.tolist()),
        coefficients=(float(c2), float(c1), float(c0)),
        n_opt=float(np.exp(x_opt)),
        d_opt=float(np.exp(intercept + slope * x_opt)),
        loss_opt=float(np.polyval([c2, c1, c0], x_opt)),
        interior=bool(x.min() < x_opt < x.max()),
        label=runs[0].flop_budget,
    )


def fit_isoflop(
    runs: Sequence[Run], convention: str | Convention = "chinchilla", tolerance: float = 0.1, min_sizes: int = 4
) -> IsoFlopFit:
    """Chinchilla Approach 2 on the final losses of a run table.

    Groups (see ``group_by_budget``, whose ``tolerance`` this is; each group's C is ``budget_compute``'s)
    with fewer than ``min_sizes`` distinct sizes or without a minimum are skipped and listed in ``skipped``;
    minima outside the sampled sizes are kept for plots but not fitted.
    """
    if min_sizes < 3:
        raise ValueError(f"min_sizes must be at least 3 (a parabola has 3 coefficients), got {min_sizes}")
    convention = get_convention(convention)
    parabolas, skipped = [], []
    for group in group_by_budget(runs, convention, tolerance):
        try:
            parabolas.append(fit_parabola(group, convention, min_sizes))
        except ValueError as err:
            skipped.append(str(err))
    interior = [p for p in parabolas if p.interior]
    skipped += [
        f"{_where(p.label, p.compute)}: minimum at N = {p.n_opt:.3g} lies outside the sampled sizes"
        for p in parabolas
        if not p.interior
    ]
    if len(interior) < 2:
        raise ValueError(
            f"Approach 2 needs at least 2 FLOP budgets with an interior parabola minimum, got {len(interior)}. "
            + (" | ".join(skipped) if skipped else "Add FLOP budgets.")
        )
    compute = [p.compute for p in interior]
    return IsoFlopFit(
        parabolas=tuple(parabolas),
        n_law=fit_frontier(compute, [p.n_opt for p in interior]),
        d_law=fit_frontier(compute, [p.d_opt for p in interior]),
        convention=convention.name,
        skipped=tuple(skipped),
    )
