"""Scaling sweep: train a grid of model sizes and token counts (or IsoFLOP budgets) with the real
pretraining script, then fit scaling laws to the results and plot them. ``pretrain/scaling_sweep.py``
is its command line; :func:`run_sweep` is the whole sweep.

Every point of the grid is one run of ``script`` (``pretrain/tinyllama.py`` by default) in its own
process, so a sweep trains exactly what a single run trains. Run the same command again after an
interruption: finished points are skipped, an interrupted point continues from its last saved state
(``--resume auto``), and a sweep whose settings changed since a point was launched refuses to mix them.

Layout of ``sweep_dir``:

    models/<model>.yaml          every model shape (``Config.save``), passed to the script as --model
    runs/<point>/point.json      the point's settings, written at its first launch and compared later
    runs/<point>/train.log       the script's output, every launch appended
    runs/<point>/...             the script's own run folder (``lit_tiny.training.run_dir``)
    runs.jsonl, runs.csv         one row per finished point (``lit_tiny.scaling.save_runs``, and a CSV)
    scaling/                     fits_<convention>.json and the PNGs of ``lit_tiny.scaling.analyze``
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from textwrap import indent
from typing import Any, Literal, Optional, Union

import yaml

from lit_tiny.config import Config
from lit_tiny.files import atomic_write_text
from lit_tiny.scaling.accounting import CONVENTIONS, count_params, flops_per_token, get_convention
from lit_tiny.scaling.analysis import ScalingReport, analyze
from lit_tiny.scaling.ladder import ladder_config, make_ladder
from lit_tiny.scaling.law import ParametricLaw, get_law
from lit_tiny.scaling.parametric import ParametricFit, fit_parametric
from lit_tiny.scaling.runs import LossCurve, Run, save_runs
from lit_tiny.training.run_dir import RunDir, flatten

PREDICTION_FILE = "prediction.json"
ConventionName = Literal["kaplan", "chinchilla", "exact", "exact_non_embedding"]


class SweepError(ValueError):
    """A sweep that cannot start or cannot finish; the message says what to do."""


@dataclass
class LadderArgs:
    """Model shapes with log-spaced parameter counts (``lit_tiny.scaling.make_ladder``).

    Args:
        smallest: Parameter count of the smallest rung.
        largest: Parameter count of the largest rung.
        n_models: Rungs.
        count: ``non_embedding`` (Kaplan's N) or ``total`` (Chinchilla's N) parameters.
        aspect_ratio: Target width / depth.
        tolerance: Largest relative miss of each rung's count (raise it below ~300K parameters).
        head_size: Dimension per attention head (default: 32 below width 512, 64 from there); 16 gives
            the finer widths a ladder below ~200K parameters needs.
        vocab_size: Must match the tokenizer of the data.
        block_size: Training sequence length.
    """

    smallest: float
    largest: float
    n_models: int
    count: Literal["non_embedding", "total"] = "non_embedding"
    aspect_ratio: float = 32.0
    tolerance: float = 0.03
    head_size: Optional[int] = None
    vocab_size: int = 32000
    block_size: int = 2048


@dataclass
class PointArgs:
    """Training settings shared by every point (passed to the script as --train.* and --eval.* flags).

    Args:
        global_batch_tokens: Tokens per optimizer step. Every point trains a whole number of steps, so its
            token count is rounded to a multiple of this.
        micro_batch_size: Sequences per device per forward/backward pass. It changes memory use, not the
            optimisation, and may differ between launches of a sweep.
        lr: Peak learning rate of a model with ``lr_reference_params`` parameters.
        lr_exponent: The per-size rule: a model of N parameters (counted as ``budget_convention`` counts
            them) trains with peak ``lr * (lr_reference_params / N) ** lr_exponent``; 0 gives every size ``lr``.
        lr_reference_params: N at which the peak learning rate is ``lr``.
        warmup_fraction: Warmup as a fraction of each point's steps (at least one step).
        warmup_steps: A fixed warmup in steps instead; every point must train for more steps than this.
        warmup_tokens_per_param: A warmup of this many tokens per parameter instead (Porian et al. 2024 warm
            up for N tokens: 1.0), rounded up to whole steps; it must stay below each point's steps.
        evals_per_run: Validations spread evenly over each run (``eval.interval = steps // evals_per_run``);
            they form the loss curves that Chinchilla's Approach 1 reads. The end of a run is always validated.
        eval_max_sequences: Validation sequences per evaluation (default: the base config's, or the script's).
    """

    global_batch_tokens: int = 8192
    micro_batch_size: int = 16
    lr: float = 3e-3
    lr_exponent: float = 0.0
    lr_reference_params: float = 1e6
    warmup_fraction: Optional[float] = 0.1
    warmup_steps: Optional[int] = None
    warmup_tokens_per_param: Optional[float] = None
    evals_per_run: int = 8
    eval_max_sequences: Optional[int] = None


# Flags the sweep sets itself for every point; ``overrides`` may not name them.
OWN_FLAGS = {
    "config": "base_config", "model": "models or ladder", "out_dir": "sweep_dir", "resume": "(set by the sweep)",
    "devices": "devices", "precision": "precision", "seed": "seed", "train.max_tokens": "tokens or flop_budgets",
    "train.max_steps": "tokens or flop_budgets", "train.global_batch_tokens": "train.global_batch_tokens",
    "train.micro_batch_size": "train.micro_batch_size", "train.lr": "train.lr",
    "train.warmup_steps": "train.warmup_fraction, warmup_steps or warmup_tokens_per_param",
    "eval.interval": "train.evals_per_run",
    "eval.max_sequences": "train.eval_max_sequences",
}


@dataclass
class Point:
    """One training run of the grid."""

    name: str
    config: Config
    model_file: Path
    steps: int
    tokens: int
    flop_budget: Optional[float]
    settings: dict[str, Any]
    run_dir: Path
    status: str = "pending"
    final_val_loss: Optional[float] = None
    wall_time_s: Optional[float] = None

    def finish(self, summary: dict[str, Any], status: str) -> None:
        self.status = status
        self.final_val_loss = summary["final_val_loss"]
        self.wall_time_s = summary.get("wall_time_s")


def run_sweep(
    sweep_dir: Path = Path("out/scaling_sweep"),
    script: Path = Path("pretrain/tinyllama.py"),
    base_config: Optional[Path] = None,
    models: Optional[list[str]] = None,
    ladder: Optional[LadderArgs] = None,
    tokens: Optional[list[float]] = None,
    flop_budgets: Optional[list[float]] = None,
    budget_convention: ConventionName = "chinchilla",
    min_steps: int = 20,
    min_tokens_per_param: Optional[float] = None,
    max_tokens_per_param: Optional[float] = None,
    train: PointArgs = PointArgs(),
    devices: int = 1,
    precision: Optional[str] = None,
    seed: int = 42,
    overrides: Optional[dict[str, Any]] = None,
    conventions: Optional[list[ConventionName]] = None,
    n_bootstrap: int = 100,
    planning_law: Optional[Union[str, dict[str, float]]] = None,
    sizes_per_budget: Optional[int] = None,
    bracket: int = 2,
    holdout_budget: Optional[float] = None,
    keep_going: bool = False,
    verbose: bool = False,
    dry_run: bool = False,
) -> None:
    """Train a grid of (model, tokens) points or IsoFLOP budgets, then fit and plot scaling laws.

    Args:
        sweep_dir: Folder of the sweep; run the same command again to resume it.
        script: The pretraining script each point runs (a copy of pretrain/tinyllama.py works too).
        base_config: Pretraining YAML passed to the script as --config; the sweep's flags override it.
        models: Preset names (``ladder_0`` ...) or model_config YAML paths.
        ladder: Shapes built for target parameter counts; added to ``models``.
        tokens: Explicit grid: train every model on each of these token counts.
        flop_budgets: IsoFLOP grid: train every model on ``budget / flops_per_token`` tokens, for each budget.
        budget_convention: How FLOPs per token are counted for the IsoFLOP grid (and N for the
            tokens-per-parameter limits): ``kaplan``, ``chinchilla``, ``exact`` or ``exact_non_embedding``.
        min_steps: Points with fewer optimizer steps are skipped (with a printed reason).
        min_tokens_per_param: Skip points with fewer tokens per parameter (IsoFLOP: sizes far too large for the budget).
        max_tokens_per_param: Skip points with more tokens per parameter (IsoFLOP: sizes far too small).
        train: Training settings shared by every point.
        devices: Devices per point (``--devices`` of the script).
        precision: ``--precision`` of the script (default: the base config's, or the script's).
        seed: Seed of every point.
        overrides: Further flags for every point, e.g. ``{"train.min_lr": 3e-4, "data.demo_dir": "data/demo"}``
            (nested mappings are flattened to dotted names).
        conventions: Counting conventions to fit under (default: chinchilla and kaplan).
        n_bootstrap: Bootstrap resamples for the intervals on every approach's exponent (0 skips them).
        planning_law: The law the planner trusts before anything is trained: a preset of
            ``lit_tiny.scaling.LAW_PRESETS`` or ``{E: ..., A: ..., B: ..., alpha: ..., beta: ...}`` (e.g. fitted
            on a pilot sweep), N counted as ``budget_convention``. Every IsoFLOP budget must then bracket the
            law's compute-optimal size with ``bracket`` sizes on each side: a ``ladder`` is widened (rungs
            added at its own spacing) until it does, explicit ``models`` that cannot are refused.
        sizes_per_budget: Train each budget on this many sizes, those nearest its predicted compute-optimal
            size (needs ``planning_law``; default: every size on every budget).
        bracket: Sizes needed on each side of each budget's predicted optimum.
        holdout_budget: A budget above every ``flop_budgets`` entry, held out of the fits: once the grid is
            trained, Approach 3 fitted on it predicts the compute-optimal size and its loss at this budget
            (``prediction.json``, written before training), then a model of the predicted size is trained on
            the budget and the measured loss is compared with the prediction (needs a 6ND budget_convention).
        keep_going: Carry on with the other points when one fails (the sweep still exits with an error).
        verbose: Stream each run's output to the console as well as to its train.log.
        dry_run: Print the plan and exit without training.
    """
    conventions = conventions or ["chinchilla", "kaplan"]
    for name in [budget_convention, *conventions]:
        if name not in CONVENTIONS:
            raise SweepError(f"Unknown counting convention {name!r}. Known: {', '.join(CONVENTIONS)}")
    flags = flatten(overrides or {})
    for key in flags:
        if key in OWN_FLAGS:
            raise SweepError(f"overrides may not set {key!r}: the sweep sets it for every point (use {OWN_FLAGS[key]})")
    if not script.is_file():
        raise SweepError(f"Pretraining script {script} does not exist")
    if base_config is not None and not base_config.is_file():
        raise SweepError(f"Base config {base_config} does not exist")
    if devices < 1 or min_steps < 1 or train.evals_per_run < 1:
        raise SweepError(f"Need devices >= 1, min_steps >= 1 and train.evals_per_run >= 1; got {devices}, "
                         f"{min_steps}, {train.evals_per_run}")
    warmups = {"warmup_fraction": train.warmup_fraction, "warmup_steps": train.warmup_steps,
               "warmup_tokens_per_param": train.warmup_tokens_per_param}
    if sum(v is not None for v in warmups.values()) != 1:
        raise SweepError(f"Give exactly one of train.{', train.'.join(warmups)} (set the others to null); got "
                         f"{ {k: v for k, v in warmups.items() if v is not None} }")
    if not train.lr > 0 or not train.lr_reference_params > 0:
        raise SweepError(f"Need train.lr > 0 and train.lr_reference_params > 0, got {train.lr}, "
                         f"{train.lr_reference_params}")

    law = None if planning_law is None else planner_law(planning_law, budget_convention)
    if law is not None and not flop_budgets:
        raise SweepError("planning_law checks IsoFLOP budgets: give flop_budgets")
    if sizes_per_budget is not None and (law is None or sizes_per_budget < 4):
        raise SweepError(f"sizes_per_budget (got {sizes_per_budget}) needs a planning_law and at least 4 sizes")
    if holdout_budget is not None:
        if not flop_budgets or not holdout_budget > max(flop_budgets):
            raise SweepError(f"holdout_budget {holdout_budget:g} must exceed every flop_budgets entry {flop_budgets}")
        if budget_convention not in ("kaplan", "chinchilla"):
            raise SweepError(f"holdout_budget needs a 6ND budget_convention (kaplan or chinchilla), got "
                             f"{budget_convention!r}: the compute-optimal allocation is solved under C = 6ND")
    common = {
        "global_batch_tokens": train.global_batch_tokens, "lr": train.lr, "seed": seed, "precision": precision,
        "eval_max_sequences": train.eval_max_sequences, "overrides": flags,
        "base_config": yaml.safe_load(base_config.read_text()) if base_config is not None else None,
    }

    def plan(ladder: Optional[LadderArgs]) -> tuple[list[Config], list[Point], list[str]]:
        configs = model_configs(models or [], ladder)
        points, skipped = plan_points(configs, tokens or [], flop_budgets or [], budget_convention, min_steps,
                                      min_tokens_per_param, max_tokens_per_param, train, common, sweep_dir, law,
                                      sizes_per_budget)
        return configs, points, skipped

    configs, points, skipped = plan(ladder)
    if law is not None:
        for _ in range(MAX_WIDENINGS):
            gaps = bracket_gaps(points, configs, flop_budgets, law, budget_convention, bracket)
            if not any(any(gap) for gap in gaps.values()):
                break
            ladder = widen_ladder(ladder, gaps, law)
            configs, points, skipped = plan(ladder)
        else:
            raise SweepError(f"The ladder still cannot bracket the predicted optima after {MAX_WIDENINGS} widenings; "
                             "check planning_law and the flop_budgets")
    print_plan(points, skipped, budget_convention, law)
    if dry_run:
        return
    if not points:
        raise SweepError("Every point of the grid was skipped (reasons above); nothing to train")
    check_settings(points)
    grid = {p.run_dir.name for p in points}
    for folder in sorted((sweep_dir / "runs").glob("*/point.json")):
        if folder.parent.name not in grid:
            print(f"note: {folder.parent} is not part of this grid; it is left out of the run table")

    (sweep_dir / "models").mkdir(parents=True, exist_ok=True)
    for config in configs:
        config.save(sweep_dir / "models" / f"{config.name}.yaml")
    failed = []
    for number, point in enumerate(points, start=1):
        command = point_command(point, script, base_config, devices, precision, seed, train, flags)
        run_point(point, f"[{number}/{len(points)}] {point.name}", command, script, verbose)
        if point.status.startswith("failed"):
            failed.append(point)
            if not keep_going:
                raise SweepError(f"{point.name} {point.status}; see {point.run_dir / 'train.log'}. Fix the cause and "
                                 "run the same command again: finished points are kept and this one resumes.")

    finished = [p for p in points if p.final_val_loss is not None]
    print_table(points, budget_convention)
    reports, broken = write_results(finished, sweep_dir, conventions, n_bootstrap)
    fitted = any(report.fits for report in reports.values())
    if holdout_budget is not None and not failed:
        report = reports.get(budget_convention)
        point = holdout_point(finished, holdout_budget, budget_convention, ladder, train, common, sweep_dir,
                              report.fits.get("approach_3") if report else None)
        check_settings([point])
        point.config.save(point.model_file)
        command = point_command(point, script, base_config, devices, precision, seed, train, flags)
        run_point(point, f"[held out] {point.name}", command, script, verbose)
        if point.status.startswith("failed"):
            raise SweepError(f"The held-out point {point.name} {point.status}; see {point.run_dir / 'train.log'}. "
                             "Run the same command again: it resumes, and the prediction made before it is kept.")
        record_measurement(point, sweep_dir)
    if failed:
        raise SweepError(f"{len(failed)} point(s) failed: {', '.join(p.name for p in failed)}. Their logs are in "
                         f"{sweep_dir / 'runs'}; run the same command again to retry them.")
    if broken:
        raise SweepError(f"The analysis broke under {'; '.join(broken)}. The runs table is kept: refit with "
                         f"python -m lit_tiny.scaling fit --runs {sweep_dir / 'runs.jsonl'} --out_dir "
                         f"{sweep_dir / 'scaling'} --convention <name> (try --n_bootstrap 0).")
    if not fitted:
        raise SweepError(f"No fit could run on {len(finished)} finished run(s) (reasons above); add points. "
                         f"The runs table is in {sweep_dir / 'runs.jsonl'} and {sweep_dir / 'runs.csv'}.")


# ------------------------------------------------------------------------------------------------ the grid


def model_configs(models: list[str], ladder: Optional[LadderArgs]) -> list[Config]:
    """The sweep's model shapes, smallest first; names must be unique (they name files and points)."""
    configs = []
    for model in models:
        try:
            configs.append(Config.from_file(model) if model.endswith((".yaml", ".yml")) else Config.from_name(model))
        except (ValueError, FileNotFoundError) as err:
            raise SweepError(f"models: {err}") from err
    if ladder is not None:
        try:
            configs += make_ladder(ladder.smallest, ladder.largest, ladder.n_models, count=ladder.count,
                                   aspect_ratio=ladder.aspect_ratio, tolerance=ladder.tolerance,
                                   head_size=ladder.head_size, vocab_size=ladder.vocab_size,
                                   block_size=ladder.block_size)
        except ValueError as err:
            raise SweepError(f"ladder: {err}") from err
    if not configs:
        raise SweepError("Give models (preset names or model_config YAML paths), a ladder, or both")
    names = [c.name for c in configs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SweepError(f"Model names must be unique, {repeated} repeat; rename the YAML's `name` field")
    for config in configs:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", config.name):
            raise SweepError(f"Model name {config.name!r} names files: use letters, digits, '.', '_' and '-' only")
    return sorted(configs, key=lambda c: c.num_params())


def plan_points(configs: list[Config], tokens: list[float], budgets: list[float], convention: str, min_steps: int,
                min_tokens_per_param: Optional[float], max_tokens_per_param: Optional[float], train: PointArgs,
                common: dict[str, Any], sweep_dir: Path, law: Optional[ParametricLaw] = None,
                sizes_per_budget: Optional[int] = None) -> tuple[list[Point], list[str]]:
    """Points of the explicit (``tokens``) or IsoFLOP (``budgets``) grid, and why others were skipped.

    With a planning ``law`` and ``sizes_per_budget``, each budget keeps the sizes nearest (in log N) the
    law's compute-optimal size for it, as Chinchilla centred each IsoFLOP profile on its expected optimum."""
    if bool(tokens) == bool(budgets):
        raise SweepError("Give either tokens (an explicit grid of models x token counts) or flop_budgets "
                         "(an IsoFLOP grid), not both or neither")
    values = tokens or budgets
    if any(not v > 0 for v in values):
        raise SweepError(f"{'tokens' if tokens else 'flop_budgets'} must be positive, got {values}")
    if len(set(values)) != len(values):
        raise SweepError(f"{'tokens' if tokens else 'flop_budgets'} repeat a value: {values}")
    points, skipped = [], []
    for value in sorted(values):
        group = []
        for config in configs:
            point = make_point(config, None if tokens else value, value if tokens else None, convention, train,
                               common, sweep_dir)
            ratio = point.tokens / count_params(config, convention)
            if point.steps < min_steps:
                skipped.append(f"{point.name}: {point.steps} steps of {train.global_batch_tokens:,} tokens < "
                               f"min_steps {min_steps}")
            elif min_tokens_per_param is not None and ratio < min_tokens_per_param:
                skipped.append(f"{point.name}: {ratio:.3g} tokens/param < min_tokens_per_param {min_tokens_per_param:g}")
            elif max_tokens_per_param is not None and ratio > max_tokens_per_param:
                skipped.append(f"{point.name}: {ratio:.3g} tokens/param > max_tokens_per_param {max_tokens_per_param:g}")
            else:
                check_warmup(point)
                group.append(point)
        if budgets and law is not None and sizes_per_budget is not None and len(group) > sizes_per_budget:
            centre = math.log(law.compute_optimal(value).n_params)
            nearest = sorted(group, key=lambda p: abs(math.log(count_params(p.config, convention)) - centre))
            group = sorted(nearest[:sizes_per_budget], key=lambda p: p.config.num_params())
        points += group
    if budgets:
        for budget in sorted(budgets):
            sizes = sum(p.flop_budget == budget for p in points)
            if 0 < sizes < 4:
                skipped.append(f"C{short(budget)}: only {sizes} model size(s) left; Approach 2 fits a parabola "
                               "through 4 or more")
    return points, skipped


def check_warmup(point: Point) -> None:
    if point.settings["warmup_steps"] >= point.steps:
        raise SweepError(f"{point.name}: a warmup of {point.settings['warmup_steps']} steps is not below its "
                         f"{point.steps} steps; lower train.warmup_steps, warmup_fraction or warmup_tokens_per_param")


def make_point(config: Config, budget: Optional[float], tokens: Optional[float], convention: str, train: PointArgs,
               common: dict[str, Any], sweep_dir: Path) -> Point:
    """The run of ``config`` on ``budget`` FLOPs (counted as ``convention``) or on ``tokens`` tokens, in whole
    steps, with its learning rate and warmup from the per-size rule of ``train``."""
    wanted = tokens if budget is None else budget / flops_per_token(config, convention)
    steps = max(1, round(wanted / train.global_batch_tokens))
    name = f"{f'D{short(tokens)}' if budget is None else f'C{short(budget)}'}-{config.name}"
    n_tokens = steps * train.global_batch_tokens
    n_params = count_params(config, convention)
    if train.warmup_steps is not None:
        warmup = train.warmup_steps
    elif train.warmup_fraction is not None:
        warmup = max(1, round(train.warmup_fraction * steps))
    else:
        warmup = max(1, math.ceil(train.warmup_tokens_per_param * n_params / train.global_batch_tokens))
    settings = {
        "model": asdict(config), "tokens": n_tokens, "steps": steps, "flop_budget": budget,
        "budget_convention": None if budget is None else convention, "warmup_steps": warmup,
        "eval_interval": max(1, steps // train.evals_per_run), **common,
        "lr": train.lr * (train.lr_reference_params / n_params) ** train.lr_exponent,
    }
    return Point(name, config, sweep_dir / "models" / f"{config.name}.yaml", steps, n_tokens, budget,
                 json.loads(json.dumps(settings, default=str)), sweep_dir / "runs" / name)


# ------------------------------------------------------------------------------------------------ the planner

MAX_WIDENINGS = 8


def planner_law(law: Union[str, dict[str, float]], convention: str) -> ParametricLaw:
    """The planning law from a preset name or its five constants (N counted as ``convention``)."""
    if get_convention(convention).flops != "6ND":
        raise SweepError(f"planning_law needs a 6ND budget_convention (kaplan or chinchilla), got {convention!r}")
    if isinstance(law, str):
        try:
            return get_law(law)
        except ValueError as err:
            raise SweepError(f"planning_law: {err}") from err
    try:
        return ParametricLaw(**law, convention=convention, name="planning")
    except (TypeError, ValueError) as err:
        raise SweepError(f"planning_law: give a preset name or exactly E, A, B, alpha and beta ({err})") from err


def bracket_gaps(points: list[Point], configs: list[Config], budgets: list[float], law: ParametricLaw,
                 convention: str, bracket: int) -> dict[float, tuple[int, int]]:
    """Per budget, how many more sizes it needs below and above the law's compute-optimal size. A shortfall
    the ladder cannot fix (the sizes exist but were skipped: min_steps or the tokens-per-parameter limits)
    is refused here with the reason."""
    every = sorted({count_params(c, convention) for c in configs})
    gaps = {}
    for budget in sorted(budgets):
        n_opt = law.compute_optimal(budget).n_params
        sizes = sorted(count_params(p.config, convention) for p in points if p.flop_budget == budget)
        if not sizes:
            raise SweepError(f"C{short(budget)}: every size is skipped (see the plan's skipped lines); lower "
                             "min_steps, relax the tokens-per-parameter limits, or change the budget")
        below, above = sum(n < n_opt for n in sizes), sum(n > n_opt for n in sizes)
        for side, count, edge in (("below", below, every[0]), ("above", above, every[-1])):
            if count < bracket and edge not in sizes and (edge < n_opt) == (side == "below"):
                raise SweepError(
                    f"C{short(budget)}: the planning law's compute-optimal size N = {n_opt:.3g} has {count} trained "
                    f"size(s) {side} it ({bracket} needed), but the sizes there are skipped (see the plan's skipped "
                    "lines): lower min_steps, relax the tokens-per-parameter limits, or change the budget")
        gaps[budget] = (max(0, bracket - below), max(0, bracket - above))
    return gaps


def widen_ladder(ladder: Optional[LadderArgs], gaps: dict[float, tuple[int, int]], law: ParametricLaw) -> LadderArgs:
    """The ladder with rungs added at its own log spacing on the side(s) some budget needs; without a ladder,
    a refusal that names the sizes needed."""
    short_of = {b: g for b, g in gaps.items() if any(g)}
    if ladder is None:
        lines = [f"C{short(b)}: N_opt = {law.compute_optimal(b).n_params:.3g}, {below} more size(s) below and "
                 f"{above} above needed" for b, (below, above) in short_of.items()]
        raise SweepError("The models cannot bracket the planning law's compute-optimal sizes:\n  " + "\n  ".join(lines)
                         + "\nAdd models on those sides, or give a ladder (the planner widens it).")
    ratio = (ladder.largest / ladder.smallest) ** (1 / (ladder.n_models - 1))
    below = max(g[0] for g in short_of.values())
    above = max(g[1] for g in short_of.values())
    widened = replace(ladder, smallest=ladder.smallest / ratio**below, largest=ladder.largest * ratio**above,
                      n_models=ladder.n_models + below + above)
    print(f"Planner: the {law.name} law puts compute-optimal sizes outside the ladder ("
          + ", ".join(f"C{short(b)}: N_opt = {law.compute_optimal(b).n_params:.3g}" for b in short_of)
          + f"); widened it to {widened.n_models} rungs from {widened.smallest:.3g} to {widened.largest:.3g}")
    return widened


# ------------------------------------------------------------------------------------------------ held-out budget


def holdout_point(grid: list[Point], budget: float, convention: str, ladder: Optional[LadderArgs], train: PointArgs,
                  common: dict[str, Any], sweep_dir: Path, fit: Optional[ParametricFit]) -> Point:
    """The held-out budget's point. Its prediction (``prediction.json``) comes from ``fit``, Approach 3 on the
    grid's runs alone (fitted here if None), is made before the point trains, and is kept across relaunches
    (a changed grid is refused)."""
    path = sweep_dir / PREDICTION_FILE
    fitted_on = sorted(p.name for p in grid)
    made_before = path.is_file()
    if made_before:
        prediction = json.loads(path.read_text())
        if prediction["fitted_on"] != fitted_on or prediction["budget"] != budget:
            raise SweepError(f"{path} was made from other grid points or for another budget than this sweep's; "
                             "delete it (and runs/C*-holdout_*) to predict again")
        config = Config(**prediction["model"])
    else:
        try:
            fit = fit or fit_parametric([collect_run(p) for p in grid], convention)
        except ValueError as err:
            raise SweepError(f"Cannot predict the held-out budget: Approach 3 failed on the grid ({err})") from err
        optimum = fit.law.compute_optimal(budget)
        first = grid[0].config
        shape = ladder or LadderArgs  # without a ladder, the shape rule of LadderArgs' defaults
        try:
            config = ladder_config(optimum.n_params, count="total" if get_convention(convention).params == "total"
                                   else "non_embedding", aspect_ratio=shape.aspect_ratio,
                                   tolerance=max(shape.tolerance, 0.05), head_size=shape.head_size,
                                   vocab_size=first.vocab_size,
                                   block_size=first.block_size)
        except ValueError as err:
            raise SweepError(f"No model shape for the predicted N_opt = {optimum.n_params:.4g}: {err}") from err
        config = replace(config, name=config.name.replace("scaling_", "holdout_", 1))  # not a grid model's file
    point = make_point(config, budget, None, convention, train, common, sweep_dir)
    if not made_before:
        n_params = count_params(config, convention)
        prediction = {
            "budget": budget, "convention": convention, "fitted_on": fitted_on,
            "approach_3": fit.to_dict(),
            "compute_optimal": {"n_params": optimum.n_params, "tokens": optimum.tokens, "loss": optimum.loss},
            "model": asdict(config), "n_params": n_params, "tokens": point.tokens,
            "predicted_loss": float(fit.law.loss(n_params, point.tokens)),
        }
        atomic_write_text(path, json.dumps(prediction, indent=2) + "\n")
        print(f"\nPrediction for the held-out budget C = {budget:.3g} (Approach 3 on {len(grid)} runs, written to "
              f"{path} before training): N_opt = {optimum.n_params:.4g}, D_opt = {optimum.tokens:.4g}, loss "
              f"{optimum.loss:.4f}; trained as {config.name} (N = {n_params:,}) on {point.tokens:,} tokens: "
              f"predicted loss {prediction['predicted_loss']:.4f}")
    check_warmup(point)
    return point


def record_measurement(point: Point, sweep_dir: Path) -> None:
    """Add the held-out point's measured loss and the relative error of the prediction to prediction.json."""
    path = sweep_dir / PREDICTION_FILE
    prediction = json.loads(path.read_text())
    predicted, measured = prediction["predicted_loss"], point.final_val_loss
    prediction["measured"] = {"point": point.name, "final_val_loss": measured, "wall_time_s": point.wall_time_s,
                              "relative_error": (predicted - measured) / measured}
    atomic_write_text(path, json.dumps(prediction, indent=2) + "\n")
    print(f"Held-out budget C = {prediction['budget']:.3g}: predicted loss {predicted:.4f}, measured "
          f"{measured:.4f}, relative error {100 * (predicted - measured) / measured:+.2f}% ({path})")


def check_settings(points: list[Point]) -> None:
    """Refuse, before anything is trained, a sweep whose settings differ from those its points were launched with."""
    changed = []
    for point in points:
        path = point.run_dir / "point.json"
        if path.is_file():
            differences = diff(json.loads(path.read_text())["settings"], point.settings)
            if differences:
                changed.append(f"  {point.name}: " + "; ".join(differences[:4]) +
                               (f"; and {len(differences) - 4} more" if len(differences) > 4 else ""))
    if changed:
        raise SweepError(
            "These points were launched with other settings than this sweep's:\n" + "\n".join(changed) +
            "\nA sweep must not mix settings. Use another sweep_dir, restore the settings, or delete the "
            "points' folders under runs/ to train them again.")


# ------------------------------------------------------------------------------------------------ running


def finished_summary(point: Point) -> Optional[dict[str, Any]]:
    """The point's summary.json if it says the run finished; an error if that run trained something else."""
    run = RunDir(point.run_dir)
    summary = run.read_summary()
    if summary is None or summary.get("status") != "finished":
        return None
    if summary.get("tokens_seen") != point.tokens or summary.get("model") != point.settings["model"]:
        raise SweepError(
            f"{run.summary_file} reports {summary.get('tokens_seen')} tokens of model "
            f"{summary.get('model', {}).get('name')!r}, "
            f"but the point is {point.tokens} tokens of {point.config.name!r}. Does the base config or the script "
            "set the run length or the model in a way the sweep's flags do not override?")
    return summary


def run_point(point: Point, prefix: str, command: list[str], script: Path, verbose: bool) -> None:
    """Skip a finished point, or train it (resuming it if it was launched before), and set its status."""
    summary = finished_summary(point)
    if summary is not None:
        point.finish(summary, "done earlier")
        print(f"{prefix}: finished earlier (val loss {point.final_val_loss:.4f}), skipped")
        return
    resume = (point.run_dir / "point.json").is_file()
    print(f"{prefix}: {point.config.name} ({point.config.num_params():,} params) on {point.tokens:,} tokens "
          f"({point.steps:,} steps){', resuming' if resume else ''}", flush=True)
    if not resume:
        write_point_file(point, script)
    elif script_digest(script) != json.loads((point.run_dir / "point.json").read_text())["script_sha256"]:
        print(f"  note: {script} changed since this point was first launched")
    code, stopped = launch(command + ["--resume", "auto" if resume else "false"], point.run_dir / "train.log", verbose)
    summary = finished_summary(point)
    if stopped:
        raise SweepError(f"Stopped by SIGTERM during {point.name} (passed on to the script, which saves its state "
                         "once training has started). Run the same command again to resume the sweep.")
    if code == 0 and summary is not None:
        point.finish(summary, "trained")
        print(f"  finished in {point.wall_time_s:.0f} s: validation loss {point.final_val_loss:.4f}", flush=True)
        return
    log = point.run_dir / "train.log"
    print(f"  {'failed' if code else 'stopped'} (exit {code}); last lines of {log}:\n{tail(log)}", flush=True)
    if code == 0:
        raise SweepError(f"{point.name} stopped before its last step (exit 0, no finished summary.json); "
                         "run the same command again to resume it")
    point.status = f"failed (exit {code})"


def point_command(point: Point, script: Path, base_config: Optional[Path], devices: int, precision: Optional[str],
                  seed: int, train: PointArgs, flags: dict[str, Any]) -> list[str]:
    """The script's command line for one point, all but ``--resume``."""
    command = [sys.executable, str(script)]
    if base_config is not None:
        command += ["--config", str(base_config)]
    command += [
        "--model", str(point.model_file), "--out_dir", str(point.run_dir), "--devices", str(devices),
        "--seed", str(seed), "--train.max_tokens", str(point.tokens), "--train.max_steps", str(point.steps),
        "--train.global_batch_tokens", str(train.global_batch_tokens),
        "--train.micro_batch_size", str(train.micro_batch_size), "--train.lr", str(point.settings["lr"]),
        "--train.warmup_steps", str(point.settings["warmup_steps"]),
        "--eval.interval", str(point.settings["eval_interval"]),
    ]
    if train.eval_max_sequences is not None:
        command += ["--eval.max_sequences", str(train.eval_max_sequences)]
    if precision is not None:
        command += ["--precision", precision]
    for key, value in flags.items():
        command += [f"--{key}", flag_value(value)]
    return command


def write_point_file(point: Point, script: Path) -> None:
    point.run_dir.mkdir(parents=True, exist_ok=True)
    data = {"name": point.name, "settings": point.settings, "script": str(script),
            "script_sha256": script_digest(script)}
    atomic_write_text(point.run_dir / "point.json", json.dumps(data, indent=2) + "\n")


def launch(command: list[str], log_path: Path, verbose: bool) -> tuple[int, bool]:
    """Run ``command``, appending its output to ``log_path``. A SIGTERM to the sweep is passed on to the run
    (the pretraining script then saves its state and exits); returns (exit code, whether that happened)."""
    stopped = []
    with log_path.open("a", buffering=1) as log:  # line-buffered, so that the log can be followed
        log.write(f"\n$ {shlex.join(command)}\n")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})  # train.log follows live

        def forward(signum, frame) -> None:
            stopped.append(signum)
            process.send_signal(signal.SIGTERM)

        previous = signal.signal(signal.SIGTERM, forward)
        try:
            for line in process.stdout:
                log.write(line)
                if verbose:
                    print(line, end="", flush=True)
            return process.wait(), bool(stopped)
        except KeyboardInterrupt:
            process.send_signal(signal.SIGTERM)
            process.wait()
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------------------ results


def collect_run(point: Point) -> Run:
    """A ``Run`` for a finished point, with its validation curve from metrics.jsonl."""
    rows = RunDir(point.run_dir).validation_curve()
    curve = LossCurve([r["tokens"] for r in rows], [r["val_loss"] for r in rows]) if len(rows) >= 2 else None
    return Run.from_config(point.config, tokens=point.tokens, final_val_loss=point.final_val_loss,
                           flop_budget=point.flop_budget, curve=curve)


def write_results(points: list[Point], sweep_dir: Path, conventions: list[str],
                  n_bootstrap: int) -> tuple[dict[str, ScalingReport], list[str]]:
    """runs.jsonl, runs.csv and the fits under each convention. Returns the report of each convention, and
    the conventions whose analysis broke (each is independent, and the runs cost far more than a refit)."""
    runs = [collect_run(p) for p in points]
    print(f"\nWrote {save_runs(runs, sweep_dir / 'runs.jsonl')} and {write_csv(points, runs, sweep_dir / 'runs.csv')}")
    if not runs:
        print("No finished runs to fit.")
        return {}, []
    reports, broken = {}, []
    for convention in conventions:
        print(f"\nFits under the {convention} convention ({len(runs)} runs):")
        try:
            report = analyze(runs, sweep_dir / "scaling", convention, {"n_bootstrap": n_bootstrap})
        except Exception as err:  # noqa: BLE001  (reported below and in the sweep's final error)
            print(f"  analysis failed: {type(err).__name__}: {err}")
            broken.append(f"{convention} ({type(err).__name__}: {err})")
            continue
        print(indent(report.table(), "  "))
        for name, reason in report.skipped.items():
            print(f"  {name}: skipped: {reason}")
        print("\n  The exponent a of N_opt ~ C^a from each approach:\n" + indent(report.comparison.table(), "  "))
        for path in report.files:
            print(f"  wrote {path}")
        reports[convention] = report
    return reports, broken


def write_csv(points: list[Point], runs: list[Run], path: Path) -> Path:
    columns = ["point", "model_name", "n_params_total", "n_params_non_embedding", "tokens", "steps",
               "tokens_per_param", "flop_budget", "final_val_loss", "wall_time_s"] + [f"flops_{c}" for c in CONVENTIONS]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for point, run in zip(points, runs):
            writer.writerow([point.name, run.model_name, run.n_params_total, run.n_params_non_embedding, point.tokens,
                             point.steps, f"{point.tokens / run.n_params_total:.4g}", run.flop_budget or "",
                             run.final_val_loss, point.wall_time_s or ""]
                            + [f"{run.flops(c):.6g}" for c in CONVENTIONS])
    return path


# ------------------------------------------------------------------------------------------------ printing


def print_plan(points: list[Point], skipped: list[str], convention: str, law: Optional[ParametricLaw]) -> None:
    total = sum(p.config.flops_per_token() * p.tokens for p in points)
    print(f"Sweep plan: {len(points)} points, {total:.3g} training FLOPs in all (exact count)")
    print(table(points, convention, with_results=False))
    for budget in sorted({p.flop_budget for p in points if p.flop_budget is not None} if law else []):
        sizes = [count_params(p.config, convention) for p in points if p.flop_budget == budget]
        n_opt = law.compute_optimal(budget).n_params
        print(f"  C{short(budget)}: the {law.name} law's compute-optimal N = {n_opt:.3g}; trained sizes "
              f"{min(sizes):.3g} to {max(sizes):.3g}, {sum(n < n_opt for n in sizes)} below and "
              f"{sum(n > n_opt for n in sizes)} above")
    for reason in skipped:
        print(f"  skipped {reason}")
    print(flush=True)


def print_table(points: list[Point], convention: str) -> None:
    print(f"\nSweep results ({sum(p.final_val_loss is not None for p in points)} of {len(points)} points finished)")
    print(table(points, convention, with_results=True))


def table(points: list[Point], convention: str, with_results: bool) -> str:
    header = f"{'point':<24} {'model':<14} {'N':>12} {'D':>14} {'D/N':>7} {'C (' + convention + ')':>18} {'steps':>6}"
    if with_results:
        header += f" {'val loss':>9} {'time':>7}  status"
    lines = [header]
    for p in points:
        n = count_params(p.config, convention)
        line = (f"{p.name:<24} {p.config.name:<14} {n:>12,} {p.tokens:>14,} {p.tokens / n:>7.3g} "
                f"{flops_per_token(p.config, convention) * p.tokens:>18.3e} {p.steps:>6,}")
        if with_results:
            loss = f"{p.final_val_loss:.4f}" if p.final_val_loss is not None else "-"
            seconds = f"{p.wall_time_s:.0f} s" if p.wall_time_s is not None else "-"
            line += f" {loss:>9} {seconds:>7}  {p.status}"
        lines.append(line)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ helpers


def flag_value(value: Any) -> str:
    """A value as the script's command line reads it (YAML)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON values, by dotted key."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new), key=str)
                for line in diff(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [f"{prefix.rstrip('.') or 'value'}: {old!r} -> {new!r}"]


def short(value: float) -> str:
    """1e13 -> '1e13', 2.5e6 -> '2.5e6', 4096 -> '4096'."""
    return f"{value:.4g}".replace("e+0", "e").replace("e+", "e")


def script_digest(script: Path) -> str:
    return hashlib.sha256(script.read_bytes()).hexdigest()


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
