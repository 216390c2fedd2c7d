"""Scaling-law tooling: counting conventions, model ladders, Kaplan and Chinchilla fits, a
compute-optimal calculator, and plots. See tutorials/scaling.md.

Modules, in reading order:
    accounting  which parameters are N and which FLOPs are C (``Convention``)
    runs        the run table every fit reads (``Run``, ``LossCurve``, JSON Lines I/O)
    table       anyone's CSV or JSON Lines table of runs, read into ``Run``s
    ladder      Llama shapes for a target parameter count
    kaplan      L(N), L(D), L(N, D) power laws
    law         the parametric law E + A/N^alpha + B/D^beta, presets, calculator
    frontier    Chinchilla Approaches 1 (envelope) and 2 (IsoFLOP parabolas)
    parametric  Chinchilla Approach 3 (Huber fit on log loss, bootstrap intervals)
    plots       PNGs
    analysis    every fit at once, written to JSON and PNG
"""

from lit_tiny.scaling.accounting import (
    CONVENTIONS,
    Convention,
    count_params,
    flops_per_token,
    get_convention,
    training_flops,
)
from lit_tiny.scaling.analysis import ScalingReport, analyze, save_json
from lit_tiny.scaling.frontier import (
    EnvelopeFit,
    FrontierLaw,
    IsoFlopFit,
    IsoFlopParabola,
    budget_compute,
    fit_envelope,
    fit_frontier,
    fit_isoflop,
    group_by_budget,
)
from lit_tiny.scaling.kaplan import (
    KaplanLaw,
    PowerLaw,
    fit_kaplan_d,
    fit_kaplan_n,
    fit_kaplan_nd,
    fit_kaplan_nd_arrays,
    fit_power_law,
)
from lit_tiny.scaling.ladder import ladder_config, llama_shape, make_ladder
from lit_tiny.scaling.law import LAW_PRESETS, Allocation, Calculation, ParametricLaw, calculate, get_law
from lit_tiny.scaling.parametric import CHINCHILLA_GRID, ParametricFit, fit_parametric, fit_parametric_arrays
from lit_tiny.scaling.plots import plot_frontier, plot_isoflop, plot_loss_vs_compute
from lit_tiny.scaling.runs import LossCurve, Run, load_runs, save_runs
from lit_tiny.scaling.table import read_table

__all__ = [
    "CHINCHILLA_GRID",
    "CONVENTIONS",
    "LAW_PRESETS",
    "Allocation",
    "Calculation",
    "Convention",
    "EnvelopeFit",
    "FrontierLaw",
    "IsoFlopFit",
    "IsoFlopParabola",
    "KaplanLaw",
    "LossCurve",
    "ParametricFit",
    "ParametricLaw",
    "PowerLaw",
    "Run",
    "ScalingReport",
    "analyze",
    "budget_compute",
    "calculate",
    "count_params",
    "fit_envelope",
    "fit_frontier",
    "fit_isoflop",
    "fit_kaplan_d",
    "fit_kaplan_n",
    "fit_kaplan_nd",
    "fit_kaplan_nd_arrays",
    "fit_parametric",
    "fit_parametric_arrays",
    "fit_power_law",
    "flops_per_token",
    "get_convention",
    "get_law",
    "group_by_budget",
    "ladder_config",
    "llama_shape",
    "load_runs",
    "make_ladder",
    "plot_frontier",
    "plot_isoflop",
    "plot_loss_vs_compute",
    "read_table",
    "save_json",
    "save_runs",
    "training_flops",
]
