"""One call that runs every fit a run table supports, under one counting convention, and writes the
results as JSON and PNGs. This is what a sweep runner calls at the end of a sweep."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from lit_tiny.scaling.accounting import Convention, get_convention
from lit_tiny.scaling.compare import Comparison, compare_approaches
from lit_tiny.scaling.frontier import EnvelopeFit, IsoFlopFit, fit_envelope, fit_isoflop
from lit_tiny.scaling.kaplan import fit_kaplan_d, fit_kaplan_n, fit_kaplan_nd
from lit_tiny.scaling.parametric import ParametricFit, fit_parametric
from lit_tiny.scaling.plots import plot_approaches, plot_frontier, plot_isoflop, plot_loss_vs_compute
from lit_tiny.scaling.runs import Run


@dataclass
class ScalingReport:
    """Fits of one run table under one convention.

    Attributes:
        convention: The counting convention of every fit.
        n_runs: Runs in the table.
        fits: Fit name (``kaplan_n``, ``kaplan_d``, ``kaplan_nd``, ``approach_1``, ``approach_2``,
            ``approach_3``) to its result object.
        skipped: Fit name to the reason it could not run (the fitter's error message).
        comparison: The exponent a from Approaches 1-3 with bootstrap intervals (``compare_approaches``).
        files: JSON, CSV and PNG files written.
    """

    convention: Convention
    n_runs: int
    fits: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    comparison: Comparison | None = None
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "convention": self.convention.to_dict(),
            "n_runs": self.n_runs,
            "fits": {name: fit.to_dict() for name, fit in self.fits.items()},
            "skipped": self.skipped,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }

    def table(self) -> str:
        """The fitted constants of every fit: Chinchilla's three approaches in one table
        (a and b: N_opt ~ C^a, D_opt ~ C^b), then the Kaplan laws, one line each."""
        chinchilla = ("a", "b", "E", "A", "B", "alpha", "beta")
        lines = [f"{'fit':<12}" + "".join(f"{name:>11}" for name in chinchilla)]
        for name in ("approach_1", "approach_2", "approach_3"):
            if name in self.fits:
                data = self.fits[name].to_dict()
                lines.append(
                    f"{name:<12}" + "".join(f"{data[k]:>11.4g}" if k in data else f"{'-':>11}" for k in chinchilla)
                )
        parametric = self.fits.get("approach_3")
        if parametric is not None and parametric.intervals:
            lines.append(
                f"{100 * parametric.confidence:.0f}% intervals of approach_3 ({parametric.n_bootstrap} bootstrap "
                "resamples): "
                + ", ".join(f"{k} [{low:.4g}, {high:.4g}]" for k, (low, high) in parametric.intervals.items())
            )
        kaplan = {
            "kaplan_n": ("alpha", "x_c"),
            "kaplan_d": ("alpha", "x_c"),
            "kaplan_nd": ("alpha_n", "alpha_d", "n_c", "d_c"),
        }
        for name, keys in kaplan.items():
            if name in self.fits:
                data = self.fits[name].to_dict()
                lines.append(f"{name:<12}{data['law']}: " + ", ".join(f"{k} = {data[k]:.4g}" for k in keys))
        return "\n".join(lines)


def save_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as indented JSON, making parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def save_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` (dicts sharing their keys) as CSV, making parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def analyze(
    runs: Sequence[Run],
    out_dir: str | Path,
    convention: str | Convention = "chinchilla",
    parametric_options: dict[str, Any] | None = None,
    isoflop_tolerance: float = 0.1,
) -> ScalingReport:
    """Run the Kaplan fits and Chinchilla Approaches 1-3 on ``runs``; write ``fits_<convention>.json``,
    the side-by-side exponents ``approaches_<convention>.{json,csv,png}`` (``compare_approaches``, with
    ``parametric_options["n_bootstrap"]`` resamples for every approach) and the plots
    ``loss_vs_compute_<convention>.png``, ``isoflop_<convention>.png`` (when the runs form IsoFLOP groups, with the parabolas when Approach 2 succeeds) and ``frontier_<convention>.png`` (when a
    frontier could be fitted) into ``out_dir``.

    A fit the table cannot support (too few sizes, no loss curves, no IsoFLOP groups) is recorded in
    ``skipped`` with its reason; ``parametric_options`` go to ``fit_parametric_arrays`` (e.g.
    ``{"n_bootstrap": 200}``) and ``isoflop_tolerance`` to ``fit_isoflop`` and ``plot_isoflop``.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("analyze needs at least 1 run, got 0")
    convention = get_convention(convention)
    out_dir = Path(out_dir)
    report = ScalingReport(convention, len(runs))
    fitters: dict[str, Callable[[], Any]] = {
        "kaplan_n": lambda: fit_kaplan_n(runs, convention),
        "kaplan_d": lambda: fit_kaplan_d(runs, convention),
        "kaplan_nd": lambda: fit_kaplan_nd(runs, convention),
        "approach_1": lambda: fit_envelope(runs, convention),
        "approach_2": lambda: fit_isoflop(runs, convention, isoflop_tolerance),
        "approach_3": lambda: fit_parametric(runs, convention, **(parametric_options or {})),
    }
    for name, fitter in fitters.items():
        try:
            report.fits[name] = fitter()
        except ValueError as err:
            report.skipped[name] = str(err)

    n_bootstrap = (parametric_options or {}).get("n_bootstrap", 0)
    report.comparison = compare_approaches(runs, convention, report.fits, report.skipped, n_bootstrap,
                                           isoflop_tolerance=isoflop_tolerance)
    comparison_file = out_dir / f"approaches_{convention.name}"
    report.files.append(save_json(report.comparison.to_dict(), comparison_file.with_suffix(".json")))
    report.files.append(save_csv(report.comparison.csv_rows(), comparison_file.with_suffix(".csv")))
    report.files.append(plot_approaches(runs, report.comparison, report.fits, comparison_file.with_suffix(".png")))

    envelope: EnvelopeFit | None = report.fits.get("approach_1")
    isoflop: IsoFlopFit | None = report.fits.get("approach_2")
    parametric: ParametricFit | None = report.fits.get("approach_3")
    suffix = convention.name
    report.files.append(plot_loss_vs_compute(runs, out_dir / f"loss_vs_compute_{suffix}.png", convention, envelope))
    if any(r.flop_budget is not None for r in runs) or isoflop is not None:
        report.files.append(
            plot_isoflop(runs, convention, out_dir / f"isoflop_{suffix}.png", isoflop, isoflop_tolerance)
        )
    if envelope or isoflop or parametric:
        compute = [r.flops(convention) for r in runs]
        report.files.append(
            plot_frontier(
                out_dir / f"frontier_{suffix}.png", envelope, isoflop, parametric, (min(compute), max(compute))
            )
        )
    report.files.append(save_json(report.to_dict(), out_dir / f"fits_{suffix}.json"))
    return report
