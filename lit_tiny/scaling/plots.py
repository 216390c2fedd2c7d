"""PNG plots of a scaling study. Figures are drawn on matplotlib's Agg canvas directly, so importing
this module changes no global matplotlib state and needs no display."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from matplotlib.lines import Line2D

from lit_tiny.scaling.accounting import Convention, get_convention
from lit_tiny.scaling.frontier import EnvelopeFit, IsoFlopFit, budget_compute, group_by_budget
from lit_tiny.scaling.parametric import ParametricFit
from lit_tiny.scaling.runs import Run

if TYPE_CHECKING:
    from lit_tiny.scaling.compare import Comparison


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(7, 5), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def _label(convention: Convention) -> str:
    return f"{convention.name}: N = {convention.params}, C = {convention.flops}"


def _log_colours(values: Sequence[float]) -> tuple[LogNorm, Colormap]:
    """A log-scale norm over ``values`` (widened when they are all equal) and the colour map to use with it."""
    low, high = min(values), max(values)
    if low == high:
        low, high = low / 2, high * 2
    return LogNorm(low, high), colormaps["viridis"]


def _colour_bar(figure: Figure, ax: Axes, norm: LogNorm, cmap: Colormap, label: str) -> None:
    figure.colorbar(ScalarMappable(norm, cmap), ax=ax, label=label)


def draw_loss_vs_compute(
    runs: Sequence[Run], convention: str | Convention = "chinchilla", envelope: EnvelopeFit | None = None
) -> Figure:
    """The figure of ``plot_loss_vs_compute``."""
    convention = get_convention(convention)
    if not runs:
        raise ValueError("plot_loss_vs_compute needs at least 1 run, got 0")
    figure, ax = _figure()
    norm, cmap = _log_colours([r.n_params(convention) for r in runs])
    for run in runs:
        colour = cmap(norm(run.n_params(convention)))
        if run.curve is not None:
            ax.plot(
                run.flops_per_token(convention) * np.array(run.curve.tokens),
                run.curve.loss,
                color=colour,
                alpha=0.6,
                lw=1,
            )
        ax.scatter([run.flops(convention)], [run.final_val_loss], color=colour, s=18, zorder=3)
    _colour_bar(figure, ax, norm, cmap, f"parameters N ({convention.params})")
    if envelope is not None:
        ax.plot(envelope.budgets, envelope.loss, color="black", ls="--", lw=1.5, label="envelope (Approach 1)")
        ax.legend(fontsize=8)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="compute C (FLOPs)",
        ylabel="loss (nats/token)",
        title=f"Loss against compute ({_label(convention)})",
    )
    return figure


def plot_loss_vs_compute(
    runs: Sequence[Run],
    path: str | Path,
    convention: str | Convention = "chinchilla",
    envelope: EnvelopeFit | None = None,
) -> Path:
    """Loss against compute, coloured by model size N on a log colour bar (readable with dozens of sizes):
    loss curves as lines, final losses as dots, and the Approach 1 envelope if given."""
    return _save(draw_loss_vs_compute(runs, convention, envelope), path)


def draw_isoflop(
    runs: Sequence[Run], convention: Convention, fit: IsoFlopFit | None = None, tolerance: float = 0.1
) -> Figure:
    """The figure of ``plot_isoflop``."""
    figure, ax = _figure()
    groups = [
        sorted(g, key=lambda r: r.n_params(convention))
        for g in group_by_budget(runs, convention, tolerance)
        if len(g) > 1
    ]
    centres = [budget_compute(g, convention) for g in groups]
    # Groups of one run, and no fit, leave nothing to draw; the colour scale still needs a range.
    norm, cmap = _log_colours(centres + [p.compute for p in (fit.parabolas if fit else [])] or [1.0])
    for group, compute in zip(groups, centres):
        ax.plot(
            [r.n_params(convention) for r in group],
            [r.final_val_loss for r in group],
            "o" if fit else "o-",
            color=cmap(norm(compute)),
            ms=4,
            lw=0.8,
        )
    for parabola in fit.parabolas if fit else []:
        colour = cmap(norm(parabola.compute))
        grid = np.geomspace(min(parabola.n_params) / 1.5, max(parabola.n_params) * 1.5, 100)
        ax.plot(grid, parabola(grid), color=colour, lw=1)
        ax.scatter(
            [parabola.n_opt],
            [parabola.loss_opt],
            marker="*",
            s=140,
            edgecolors=colour,
            facecolors=colour if parabola.interior else "none",
            zorder=4,
        )
    if fit:
        ax.legend(
            handles=[
                Line2D([], [], marker="*", ls="", ms=10, color="grey", label="minimum (in the frontier fit)"),
                Line2D([], [], marker="*", ls="", ms=10, color="grey", mfc="none", label="minimum outside the sizes"),
            ],
            fontsize=8,
        )
    _colour_bar(figure, ax, norm, cmap, "IsoFLOP budget C (FLOPs)")
    ax.set(
        xscale="log",
        xlabel="parameters N",
        ylabel="final loss (nats/token)",
        title=f"IsoFLOP curves ({_label(convention)})" + ("" if fit else ": no Approach 2 fit"),
    )
    return figure


def plot_isoflop(
    runs: Sequence[Run],
    convention: Convention,
    path: str | Path,
    fit: IsoFlopFit | None = None,
    tolerance: float = 0.1,
) -> Path:
    """Final loss against N for each IsoFLOP group of ``runs`` (grouped with ``tolerance``, see
    ``group_by_budget``), coloured by budget on a log colour bar; with an Approach 2 ``fit``, its parabolas
    in ln N and their minima too (hollow stars: minima outside the sampled sizes, not used in the
    frontier fit). Without a fit the measured points still show where each budget's minimum lies."""
    return _save(draw_isoflop(runs, convention, fit, tolerance), path)


def plot_frontier(
    path: str | Path,
    envelope: EnvelopeFit | None = None,
    isoflop: IsoFlopFit | None = None,
    parametric: ParametricFit | None = None,
    compute_range: tuple[float, float] | None = None,
) -> Path:
    """N_opt against compute from each fit given (all must share one convention). ``compute_range``
    sets the C axis; by default it spans the budgets of the envelope and IsoFLOP fits."""
    fits = [f for f in (envelope, isoflop, parametric) if f is not None]
    if not fits:
        raise ValueError("plot_frontier needs at least one of envelope, isoflop or parametric")
    conventions = {f.law.convention if isinstance(f, ParametricFit) else f.convention for f in fits}
    if len(conventions) > 1:
        raise ValueError(f"The fits use different counting conventions {sorted(conventions)}; plot them separately")
    budgets = list(envelope.budgets if envelope else []) + [p.compute for p in (isoflop.parabolas if isoflop else [])]
    if compute_range is None:
        if not budgets:
            raise ValueError("Give compute_range when plotting only a parametric fit")
        compute_range = (min(budgets), max(budgets))
    grid = np.geomspace(*compute_range, 100)

    figure, ax = _figure()
    if envelope is not None:
        used = np.array(envelope.used)
        ax.scatter(np.array(envelope.budgets)[used], np.array(envelope.n_opt)[used], s=6, color="C0", alpha=0.5)
        ax.plot(grid, envelope.n_law(grid), color="C0", label=f"Approach 1: a = {envelope.n_law.exponent:.3f}")
    if isoflop is not None:
        interior = [p for p in isoflop.parabolas if p.interior]
        ax.scatter([p.compute for p in interior], [p.n_opt for p in interior], marker="*", s=80, color="C1")
        ax.plot(grid, isoflop.n_law(grid), color="C1", label=f"Approach 2: a = {isoflop.n_law.exponent:.3f}")
    if parametric is not None:
        law = parametric.law
        ax.plot(
            grid,
            [law.compute_optimal(c).n_params for c in grid],
            color="C2",
            label=f"Approach 3: a = {law.a:.3f} (alpha {law.alpha:.3f}, beta {law.beta:.3f})",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="compute C (FLOPs)",
        ylabel="compute-optimal N",
        title=f"Compute-optimal frontier ({_label(get_convention(conventions.pop()))})",
    )
    ax.legend(fontsize=8)
    return _save(figure, path)


def plot_approaches(runs: Sequence[Run], comparison: Comparison, fits: dict, path: str | Path) -> Path:
    """One figure for the three approaches: the IsoFLOP profiles with Approach 2's parabolas (left), and
    N_opt against C from each approach with its exponent and interval (right)."""
    convention = get_convention(comparison.convention)
    figure = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(figure)
    profiles, frontier = figure.subplots(1, 2)
    isoflop: IsoFlopFit | None = fits.get("approach_2")
    groups = [sorted(g, key=lambda r: r.n_params(convention)) for g in group_by_budget(runs, convention) if len(g) > 1]
    if groups:
        norm, cmap = _log_colours([budget_compute(g, convention) for g in groups])
        for group in groups:
            compute = budget_compute(group, convention)
            profiles.plot([r.n_params(convention) for r in group], [r.final_val_loss for r in group], "o", ms=4,
                          color=cmap(norm(compute)), label=f"C = {compute:.2g}")
        for parabola in isoflop.parabolas if isoflop else []:
            grid = np.geomspace(min(parabola.n_params), max(parabola.n_params), 100)
            colour = cmap(norm(parabola.compute))
            profiles.plot(grid, parabola(grid), color=colour, lw=1)
            profiles.scatter([parabola.n_opt], [parabola.loss_opt], marker="*", s=120, color=colour, zorder=4)
        if len(groups) <= 8:
            profiles.legend(fontsize=7)
        else:
            _colour_bar(figure, profiles, norm, cmap, "FLOP budget C")
    profiles.set(xscale="log", xlabel="parameters N", ylabel="final loss (nats/token)", title="IsoFLOP profiles")

    budgets = [r.flops(convention) for r in runs]
    grid = np.geomspace(min(budgets) / 2, max(budgets) * 4, 100)
    for estimate, colour in zip(comparison.estimates, ("C0", "C1", "C2")):
        fit = fits.get(estimate.approach)
        if fit is None:
            continue
        interval = f" [{estimate.interval[0]:.3f}, {estimate.interval[1]:.3f}]" if estimate.interval else ""
        label = f"{estimate.approach.replace('_', ' ').capitalize()}: a = {estimate.a:.3f}{interval}"
        if estimate.approach == "approach_3":
            frontier.plot(grid, [fit.law.compute_optimal(c).n_params for c in grid], color=colour, label=label)
        else:
            frontier.plot(grid, fit.n_law(grid), color=colour, label=label)
    if isoflop is not None:
        interior = [p for p in isoflop.parabolas if p.interior]
        frontier.scatter([p.compute for p in interior], [p.n_opt for p in interior], marker="*", s=80, color="C1")
    verdict = {None: "", True: ": intervals overlap", False: ": intervals do not overlap"}[comparison.overlap]
    frontier.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="compute-optimal N",
                 title=f"N_opt ~ C^a ({_label(convention)}){verdict}")
    frontier.xaxis.set_minor_formatter(NullFormatter())
    if frontier.get_legend_handles_labels()[0]:
        frontier.legend(fontsize=8)
    return _save(figure, path)
