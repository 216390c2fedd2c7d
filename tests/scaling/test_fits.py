"""Scaling-law library: accounting, ladders, fits on synthetic data drawn from known laws, the
calculator against independent numerics, plots, and input errors."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.optimize import brentq, minimize_scalar

from lit_tiny.config import Config
from lit_tiny.model import GPT
from lit_tiny.scaling import (
    LAW_PRESETS,
    LossCurve,
    ParametricLaw,
    Run,
    analyze,
    calculate,
    count_params,
    fit_envelope,
    fit_isoflop,
    fit_kaplan_d,
    fit_kaplan_n,
    fit_kaplan_nd,
    fit_kaplan_nd_arrays,
    fit_parametric,
    fit_parametric_arrays,
    fit_power_law,
    flops_per_token,
    ladder_config,
    load_runs,
    make_ladder,
    plot_frontier,
    save_runs,
    training_flops,
)
from lit_tiny.scaling.__main__ import calc
from lit_tiny.scaling.parametric import initial_grid

TRUE_LAW = LAW_PRESETS["besiroglu"]
KAPLAN = {"alpha_n": 0.076, "alpha_d": 0.095, "n_c": 8.8e13, "d_c": 5.4e13}  # REFERENCE section 3


def synthetic_run(
    name: str, n: float, tokens: float, loss: float, budget: float | None = None, curve: LossCurve | None = None
) -> Run:
    """A run whose N is the same under every convention and whose exact FLOPs are 6N per token."""
    return Run(name, int(n), int(n), float(tokens), float(loss), 6.0 * int(n), budget, curve)


def noisy(values: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Multiplicative log-normal noise."""
    return values * np.exp(rng.normal(0.0, sigma, np.shape(values)))


# ---------------------------------------------------------------------------------------------- accounting


def test_conventions_on_tiny_llama():
    config = Config.from_name("tiny_LLaMA_1b")
    assert count_params(config, "kaplan") == 968_976_384
    assert count_params(config, "chinchilla") == count_params(config, "exact") == 1_100_048_384
    assert flops_per_token(config, "kaplan") == 6 * 968_976_384
    assert flops_per_token(config, "chinchilla") == 6 * 1_100_048_384
    assert round(flops_per_token(config, "exact", 2048) / 1e9, 3) == 7.314
    # The exact count adds attention but leaves out the embedding lookup: here it is 11% above 6 N_total.
    ratio = training_flops(config, 3e12, "exact", 2048) / training_flops(config, 3e12, "chinchilla")
    assert 1.05 < ratio < 1.2
    with pytest.raises(ValueError, match="Unknown counting convention 'palm'.*kaplan"):
        count_params(config, "palm")


def test_run_from_config_and_jsonl_round_trip(tmp_path):
    config = Config.from_name("ladder_3")
    curve = LossCurve([1e6, 2e6, 4e6], [5.0, 4.5, 4.2])
    run = Run.from_config(config, tokens=4e6, final_val_loss=4.2, seq_len=512, flop_budget=1e14, curve=curve)
    assert run.n_params("kaplan") == config.num_params(non_embedding=True)
    assert run.flops("exact") == config.flops_per_token(512) * 4e6
    assert run.flops("chinchilla") == 6 * config.num_params() * 4e6
    path = save_runs([run, dataclasses.replace(run, curve=None, tokens=8e6)], tmp_path / "runs.jsonl")
    assert load_runs(path) == [run, dataclasses.replace(run, curve=None, tokens=8e6)]

    row = json.loads(path.read_text().splitlines()[0])
    assert set(row["flops"]) == {"kaplan", "chinchilla", "exact", "exact_non_embedding"}
    row["flops"]["kaplan"] *= 2
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="runs.jsonl:1: .*flops\\['kaplan'\\].*disagrees"):
        load_runs(path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"final_val_loss": 0.0}, "final_val_loss must be a positive finite number, got 0.0"),
        ({"final_val_loss": float("nan")}, "final_val_loss must be a positive finite number"),
        ({"tokens": -5.0}, "tokens must be a positive finite number"),
        ({"n_params_non_embedding": 10**9}, "n_params_non_embedding=1000000000 exceeds n_params_total"),
    ],
)
def test_bad_runs_are_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        Run(
            **{
                "model_name": "m",
                "n_params_total": 1000,
                "n_params_non_embedding": 800,
                "tokens": 1e6,
                "final_val_loss": 3.0,
                "flops_per_token_exact": 6000.0,
                **change,
            }
        )


def test_bad_loss_curves_are_rejected():
    with pytest.raises(ValueError, match="at least 2 points, got 1"):
        LossCurve([1.0], [2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        LossCurve([2.0, 1.0], [3.0, 2.0])
    with pytest.raises(ValueError, match="loss must be a positive finite number, got -1.0"):
        LossCurve([1.0, 2.0], [3.0, -1.0])


# ---------------------------------------------------------------------------------------------- ladder


def test_ladder_reproduces_tiny_llama_shape():
    config = ladder_config(968_976_384, aspect_ratio=2048 / 22, heads_per_group=8, intermediate_multiple=256)
    assert dataclasses.replace(config, name="tiny_LLaMA_1b") == Config.from_name("tiny_LLaMA_1b")


@pytest.mark.parametrize("count, smallest", [("non_embedding", 1e6), ("total", 3e7)])
def test_ladder_shapes_are_llama_like_and_hit_their_targets(count, smallest):
    targets = np.geomspace(smallest, 1e9, 8)
    ladder = make_ladder(smallest, 1e9, 8, count=count, vocab_size=32000)
    for target, config in zip(targets, ladder):
        achieved = config.num_params(non_embedding=count == "non_embedding")
        assert abs(achieved / target - 1) <= 0.03, (config, target)
        assert config.head_size <= 64 and config.head_size % 2 == 0
        assert config.n_head % config.n_query_groups == 0
        assert abs(config.intermediate_size / (8 * config.n_embd / 3) - 1) <= 0.1
        assert config.intermediate_size % 8 == 0
        assert 16 <= config.n_embd / config.n_layer <= 64
    assert all(a.num_params() < b.num_params() for a, b in zip(ladder, ladder[1:]))
    with torch.device("meta"):
        model = GPT(ladder[3])
    assert sum(p.numel() for p in model.parameters()) == ladder[3].num_params()


def test_ladder_explains_unreachable_targets():
    with pytest.raises(ValueError, match="within 3% of 1000.*closest has .*Raise tolerance"):
        ladder_config(1000)
    with pytest.raises(ValueError, match="n_models >= 2"):
        make_ladder(1e6, 1e7, 1)


# ---------------------------------------------------------------------------------------------- Kaplan


def test_kaplan_power_laws_recover_their_exponents():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e5, 1e9, 9)
    fit = fit_power_law(n, noisy((KAPLAN["n_c"] / n) ** KAPLAN["alpha_n"], rng, 0.003), "N")
    assert fit.alpha == pytest.approx(KAPLAN["alpha_n"], rel=0.05)
    assert fit.x_c == pytest.approx(KAPLAN["n_c"], rel=0.5)

    # The table-level fits pick their points: L(N) the best run per model, L(D) the largest model's runs.
    runs = [synthetic_run(f"n{i}", ni, 1e12, (KAPLAN["n_c"] / ni) ** KAPLAN["alpha_n"]) for i, ni in enumerate(n)]
    runs += [dataclasses.replace(r, tokens=1e9, final_val_loss=r.final_val_loss * 1.3) for r in runs]
    assert fit_kaplan_n(runs).alpha == pytest.approx(KAPLAN["alpha_n"], rel=1e-6)
    d = np.geomspace(1e8, 1e12, 6)
    runs += [synthetic_run("big", 1e11, di, noisy((KAPLAN["d_c"] / di) ** KAPLAN["alpha_d"], rng, 0.003)) for di in d]
    fit_d = fit_kaplan_d(runs)
    assert fit_d.variable == "D" and fit_d.alpha == pytest.approx(KAPLAN["alpha_d"], rel=0.05)


def test_kaplan_nd_recovers_eq_1_5():
    rng = np.random.default_rng(1)
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 1e9, 7), np.geomspace(1e8, 1e11, 7)))
    p = KAPLAN
    loss = noisy(((p["n_c"] / n) ** (p["alpha_n"] / p["alpha_d"]) + p["d_c"] / d) ** p["alpha_d"], rng, 0.003)
    fit = fit_kaplan_nd_arrays(n, d, loss)
    assert fit.alpha_n == pytest.approx(p["alpha_n"], rel=0.05)
    assert fit.alpha_d == pytest.approx(p["alpha_d"], rel=0.05)
    assert fit.rms_log_residual < 0.005
    runs = [synthetic_run("m", ni, di, li) for ni, di, li in zip(n, d, loss)]
    assert fit_kaplan_nd(runs, "chinchilla").to_dict()["convention"]["name"] == "chinchilla"


# ---------------------------------------------------------------------------------------------- Chinchilla


@pytest.fixture(scope="module")
def curve_runs() -> list[Run]:
    """20 sizes, each with a loss curve drawn from TRUE_LAW (0.2% noise) spanning C = 1e17 .. 1e23."""
    rng = np.random.default_rng(2)
    runs = []
    for i, n in enumerate(np.geomspace(1e7, 1e10, 20)):
        tokens = np.geomspace(1e17 / (6 * n), 1e23 / (6 * n), 60)
        loss = noisy(TRUE_LAW.loss(n, tokens), rng, 0.002)
        runs.append(synthetic_run(f"m{i}", n, tokens[-1], loss[-1], curve=LossCurve(tokens, loss)))
    return runs


@pytest.fixture(scope="module")
def isoflop_runs() -> list[Run]:
    """5 FLOP budgets x 9 sizes, centred on the 20-tokens-per-parameter guess (not the true optimum)."""
    rng = np.random.default_rng(3)
    runs = []
    for budget in np.geomspace(1e18, 1e21, 5):
        for n in math.sqrt(budget / 6 / 20) * np.geomspace(1 / 6, 6, 9):
            tokens = budget / (6 * n)
            runs.append(synthetic_run(f"n{n:.3g}", n, tokens, noisy(TRUE_LAW.loss(n, tokens), rng, 0.003), budget))
    return runs


def test_approach_1_envelope_recovers_frontier_exponents(curve_runs):
    fit = fit_envelope(curve_runs)
    assert fit.n_law.exponent == pytest.approx(TRUE_LAW.a, abs=0.03)
    assert fit.d_law.exponent == pytest.approx(TRUE_LAW.b, abs=0.03)
    assert 0 < sum(fit.used) < len(fit.used)  # the smallest and largest models' budgets were left out
    assert fit.to_dict()["convention"]["name"] == "chinchilla"


def test_approach_2_isoflop_recovers_frontier_exponent(isoflop_runs):
    fit = fit_isoflop(isoflop_runs)
    assert len(fit.parabolas) == 5 and all(p.interior for p in fit.parabolas)
    assert fit.n_law.exponent == pytest.approx(TRUE_LAW.a, abs=0.03)
    assert fit.d_law.exponent == pytest.approx(TRUE_LAW.b, abs=0.03)
    # Each minimum is close to the law's compute-optimal size for that budget.
    for parabola in fit.parabolas:
        assert parabola.n_opt == pytest.approx(TRUE_LAW.compute_optimal(parabola.compute).n_params, rel=0.3)


def test_approach_2_groups_unlabelled_runs_by_compute(isoflop_runs):
    unlabelled = [dataclasses.replace(r, flop_budget=None) for r in isoflop_runs]
    # Labelled groups report C as their label, unlabelled ones the geometric mean of their runs' C, which
    # differs from it only by the rounding of N to whole parameters.
    assert fit_isoflop(unlabelled).n_law.exponent == pytest.approx(fit_isoflop(isoflop_runs).n_law.exponent, rel=1e-6)
    with pytest.raises(ValueError, match="1 of 45 runs have no flop_budget"):
        fit_isoflop(unlabelled[:1] + isoflop_runs[1:])


@pytest.fixture(scope="module")
def parametric_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e9, 1e12, 8)))
    return n, d, noisy(TRUE_LAW.loss(n, d), rng, 0.005)


def test_approach_3_recovers_alpha_and_beta_with_bootstrap_intervals(parametric_data):
    fit = fit_parametric_arrays(*parametric_data, n_starts=16, n_bootstrap=8, seed=0)
    law = fit.law
    assert law.alpha == pytest.approx(TRUE_LAW.alpha, rel=0.03)
    assert law.beta == pytest.approx(TRUE_LAW.beta, rel=0.03)
    assert law.E == pytest.approx(TRUE_LAW.E, rel=0.03)
    assert law.a == pytest.approx(TRUE_LAW.a, abs=0.01)
    assert set(fit.intervals) == {"E", "A", "B", "alpha", "beta", "a", "b"}
    assert all(low < high for low, high in fit.intervals.values())
    saved = fit.to_dict()
    assert saved["convention"]["name"] == "chinchilla" and saved["huber_delta"] == 1e-3
    assert saved["n_bootstrap"] == 8 and saved["intervals"]["alpha"] == list(fit.intervals["alpha"])

    # Four times the noise must give clearly wider intervals.
    n, d, loss = parametric_data
    noisier = noisy(loss, np.random.default_rng(6), 0.02)
    wide = fit_parametric_arrays(n, d, noisier, n_starts=16, n_bootstrap=8, seed=0)
    for name in ("alpha", "beta"):
        assert np.ptp(wide.intervals[name]) > 2 * np.ptp(fit.intervals[name]), name


def test_approach_3_best_starts_find_the_full_grid_optimum(parametric_data):
    coarse = ((0.0, 10.0, 20.0), (0.0, 10.0, 20.0), (-1.0, 1.0), (0.5, 1.5), (0.5, 1.5))
    full = fit_parametric_arrays(*parametric_data, grid=coarse, n_starts=None)
    ranked = fit_parametric_arrays(*parametric_data, grid=coarse, n_starts=6)
    assert full.n_starts == len(initial_grid(coarse)) == 72 and ranked.n_starts == 6
    assert ranked.objective == pytest.approx(full.objective, rel=1e-6)
    assert ranked.law.alpha == pytest.approx(full.law.alpha, rel=1e-4)


def test_approach_3_runs_under_another_convention(parametric_data):
    n, d, loss = parametric_data
    runs = [synthetic_run("m", ni, di, li) for ni, di, li in zip(n, d, loss)]
    fit = fit_parametric(runs, "kaplan", n_starts=16)
    assert fit.law.convention == "kaplan" and fit.to_dict()["convention"]["params"] == "non_embedding"


# ---------------------------------------------------------------------------------------------- calculator


@pytest.mark.parametrize("name", ["chinchilla", "besiroglu"])
@pytest.mark.parametrize("compute", [1e18, 1e21, 1e24])
def test_compute_optimal_matches_numerical_minimum(name, compute):
    law = LAW_PRESETS[name]

    def loss_at(log_n: float) -> float:
        n = math.exp(log_n)
        return law.E + law.A / n**law.alpha + law.B / (compute / (6 * n)) ** law.beta

    numeric = minimize_scalar(
        loss_at, bounds=(math.log(1e3), math.log(1e15)), method="bounded", options={"xatol": 1e-10}
    )
    n_opt = math.exp(numeric.x)
    result = calculate(name, compute=compute)
    assert result.optimal.n_params == pytest.approx(n_opt, rel=1e-4)
    assert result.optimal.tokens == pytest.approx(compute / (6 * n_opt), rel=1e-4)
    assert result.optimal.loss == pytest.approx(numeric.fun, rel=1e-9)
    assert result.run == result.optimal and result.ratio_to_optimal == pytest.approx(1.0)


def test_compute_for_loss_inverts_the_frontier():
    law = LAW_PRESETS["chinchilla"]
    target = 2.5
    numeric = math.exp(
        brentq(
            lambda log_c: law.compute_optimal(math.exp(log_c)).loss - target, math.log(1e10), math.log(1e30), xtol=1e-12
        )
    )
    assert law.compute_for_loss(target) == pytest.approx(numeric, rel=1e-8)
    with pytest.raises(ValueError, match="not above the irreducible loss"):
        law.compute_for_loss(1.0)


def test_over_training_calculation_for_tiny_llama():
    n = Config.from_name("tiny_LLaMA_1b").num_params()
    result = calculate("besiroglu", n_params=n, tokens=3e12)
    assert result.run.compute == pytest.approx(6 * n * 3e12)
    assert result.run.tokens_per_param == pytest.approx(3e12 / n)
    assert result.ratio_to_optimal == pytest.approx(result.run.tokens_per_param / result.optimal.tokens_per_param)
    assert result.ratio_to_optimal > 50  # far past the compute-optimal ratio, as the paper intends
    assert result.run.loss > result.optimal.loss and 0 < result.compute_efficiency < 1
    # The same run described by (compute, tokens) and by (compute, n_params).
    assert calculate("besiroglu", compute=result.run.compute, tokens=3e12).run.n_params == pytest.approx(n)
    assert calculate("besiroglu", compute=result.run.compute, n_params=n).run.tokens == pytest.approx(3e12)


def test_calculator_cli_prints_tokens_per_parameter(capsys):
    calc(model="tiny_LLaMA_1b", tokens=3e12, law="besiroglu", label="TinyLlama 1.1B")
    out = capsys.readouterr().out
    ratio = calculate("besiroglu", n_params=1_100_048_384, tokens=3e12).ratio_to_optimal
    assert f"TinyLlama 1.1B on 3T tokens is {3e12 / 1_100_048_384:.1f} tokens/param, {ratio:.3g} times" in out


def test_calculator_cli_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "lit_tiny.scaling", "calc", "--compute", "1e21", "--as_json", "true"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(result.stdout)
    assert data["compute_optimal"]["n_params"] == pytest.approx(LAW_PRESETS["besiroglu"].compute_optimal(1e21).n_params)


def test_calculator_rejects_bad_input():
    with pytest.raises(ValueError, match="compute alone, or exactly two.*got none"):
        calculate("chinchilla")
    with pytest.raises(ValueError, match="got \\['compute', 'n_params', 'tokens'\\]"):
        calculate("chinchilla", compute=1e20, n_params=1e9, tokens=1e10)
    with pytest.raises(ValueError, match="compute must be a positive finite number, got -1"):
        calculate("chinchilla", compute=-1)
    with pytest.raises(ValueError, match="Unknown parametric law 'gpt4'"):
        calculate("gpt4", compute=1e20)
    with pytest.raises(ValueError, match="alpha must be positive"):
        ParametricLaw(E=1.0, A=1.0, B=1.0, alpha=0.0, beta=0.3)


# ---------------------------------------------------------------------------------------------- bad input


def test_fitters_say_how_many_points_they_need(isoflop_runs, curve_runs):
    n, d, loss = [1e6, 1e7, 1e8], [1e9, 1e10, 1e11], [3.0, 2.5, 2.2]
    with pytest.raises(ValueError, match="Approach 3 \\(5 parameters\\) needs at least 6 points, got 3"):
        fit_parametric_arrays(n, d, loss)
    with pytest.raises(ValueError, match="L\\(N, D\\).*needs at least 5 points, got 3"):
        fit_kaplan_nd_arrays(n, d, loss)
    with pytest.raises(ValueError, match="L\\(N\\) needs at least 3 points, got 2"):
        fit_power_law(n[:2], loss[:2])
    one_budget = [r for r in isoflop_runs if r.flop_budget == isoflop_runs[0].flop_budget]
    with pytest.raises(ValueError, match="at least 2 FLOP budgets with an interior parabola minimum, got 1"):
        fit_isoflop(one_budget)
    partial = fit_isoflop(one_budget[:3] + isoflop_runs[9:])
    assert len(partial.parabolas) == 4
    assert partial.skipped == (
        "An IsoFLOP parabola (C = 1e+18) needs at least 4 points, got 3. Each FLOP budget needs runs of at "
        "least 4 model sizes: 3 points fit any parabola exactly and say nothing about its shape (Chinchilla "
        "used 9 per budget).",
    )
    assert len(fit_isoflop(one_budget[:3] + isoflop_runs[9:], min_sizes=3).parabolas) == 5
    with pytest.raises(ValueError, match="min_sizes must be at least 3"):
        fit_isoflop(isoflop_runs, min_sizes=2)
    with pytest.raises(ValueError, match="Approach 1 .*needs at least 3 points, got 0. Record a loss curve"):
        fit_envelope(isoflop_runs)
    with pytest.raises(ValueError, match="L\\(D\\) for model 'm19' needs at least 3 points, got 1"):
        fit_kaplan_d(curve_runs)


def test_fitters_reject_non_positive_losses():
    n, d = np.geomspace(1e6, 1e9, 8), np.geomspace(1e9, 1e12, 8)
    loss = np.linspace(3.0, 2.0, 8)
    loss[3] = 0.0
    for fitter in (
        lambda: fit_parametric_arrays(n, d, loss),
        lambda: fit_kaplan_nd_arrays(n, d, loss),
        lambda: fit_power_law(n, loss),
    ):
        with pytest.raises(ValueError, match="loss must be positive and finite .* 1 of 8 values are not, e.g. 0.0"):
            fitter()
    with pytest.raises(ValueError, match="Loss does not decrease with N"):
        fit_power_law(n, loss[::-1] + 1)


# ---------------------------------------------------------------------------------------------- end to end


def test_analyze_a_ladder_sweep_writes_json_and_plots(tmp_path):
    """A sweep of real lit_tiny shapes whose losses follow a known law in the Chinchilla convention."""
    rng = np.random.default_rng(5)
    ladder = make_ladder(4e5, 4e7, 9, vocab_size=4096, block_size=512, tolerance=0.05)
    runs = []
    for budget in (1e15, 4e15, 1.6e16, 6.4e16):
        for config in ladder:
            tokens = budget / (6 * config.num_params())
            steps = np.geomspace(tokens / 20, tokens, 12)
            curve = LossCurve(steps, noisy(TRUE_LAW.loss(config.num_params(), steps), rng, 0.002))
            runs.append(Run.from_config(config, tokens, curve.loss[-1], seq_len=512, flop_budget=budget, curve=curve))
    report = analyze(runs, tmp_path, "chinchilla", {"n_starts": 16, "n_bootstrap": 4})
    assert set(report.fits) == {"kaplan_n", "kaplan_d", "kaplan_nd", "approach_1", "approach_2", "approach_3"}
    assert report.skipped == {}
    assert report.fits["approach_3"].law.alpha == pytest.approx(TRUE_LAW.alpha, rel=0.1)
    saved = json.loads((tmp_path / "fits_chinchilla.json").read_text())
    assert saved["convention"] == {"name": "chinchilla", "params": "total", "flops": "6ND"}
    assert all(fit["convention"]["name"] == "chinchilla" for fit in saved["fits"].values())
    for name in ("loss_vs_compute", "isoflop", "frontier"):
        assert (tmp_path / f"{name}_chinchilla.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Under the exact convention the same runs have other C, and the record says so. Without curves,
    # Approach 1 is skipped with the reason.
    exact = analyze([dataclasses.replace(r, curve=None) for r in runs], tmp_path, "exact", {"n_starts": 16})
    saved = json.loads((tmp_path / "fits_exact.json").read_text())
    assert saved["convention"]["flops"] == "exact" and "Record a loss curve" in saved["skipped"]["approach_1"]
    assert exact.fits["approach_2"].parabolas[0].compute > 1.05 * report.fits["approach_2"].parabolas[0].compute
    assert not (tmp_path / "isoflop_exact.png").stat().st_size == 0


def test_plot_frontier_refuses_mixed_conventions(tmp_path, isoflop_runs, parametric_data):
    isoflop = fit_isoflop(isoflop_runs)
    runs = [synthetic_run("m", *row) for row in zip(*parametric_data)]
    kaplan_fit = fit_parametric(runs, "kaplan", n_starts=8)
    with pytest.raises(ValueError, match="different counting conventions"):
        plot_frontier(tmp_path / "f.png", isoflop=isoflop, parametric=kaplan_fit)
    with pytest.raises(ValueError, match="Give compute_range"):
        plot_frontier(tmp_path / "f.png", parametric=kaplan_fit)
    path = plot_frontier(tmp_path / "f.png", parametric=kaplan_fit, compute_range=(1e18, 1e22))
    assert path.stat().st_size > 1000


def test_isoflop_curves_are_plotted_even_when_approach_2_cannot_fit(isoflop_runs, tmp_path):
    # Keep only the sizes above each budget's optimum: every curve rises with N, so no parabola has an
    # interior minimum, yet the measured IsoFLOP points are still worth a plot.
    big = [r for r in isoflop_runs if r.tokens / r.n_params_total < 5]
    report = analyze(big, tmp_path)
    assert "approach_2" in report.skipped
    assert (tmp_path / "isoflop_chinchilla.png").stat().st_size > 10_000
