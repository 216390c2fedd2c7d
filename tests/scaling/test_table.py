"""Fitting anyone's table: CSV and JSON Lines reading, column mapping, exclusion and errors; IsoFLOP
grouping by budget labels and by gaps in C; single-threaded BLAS in the optimisers; plots with many
sizes; the presets' provenance."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import threadpoolctl

from lit_tiny.scaling import (
    LAW_PRESETS,
    LossCurve,
    ParametricLaw,
    Run,
    budget_compute,
    calculate,
    fit_isoflop,
    fit_kaplan_nd_arrays,
    fit_parametric_arrays,
    get_convention,
    group_by_budget,
    kaplan,
    load_runs,
    parametric,
    read_table,
    save_runs,
)
from lit_tiny.scaling.__main__ import calc, fit
from lit_tiny.scaling.frontier import fit_parabola
from lit_tiny.scaling.plots import draw_isoflop, draw_loss_vs_compute, plot_loss_vs_compute

TRUE_LAW = LAW_PRESETS["besiroglu"]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def isoflop_rows(rng: np.random.Generator, budgets=(1e18, 1e19, 1e20, 1e21), sizes: int = 8) -> list[list]:
    """(N, D, loss, budget) rows of an IsoFLOP grid drawn from TRUE_LAW with 0.2% noise."""
    rows = []
    for budget in budgets:
        centre = TRUE_LAW.compute_optimal(budget).n_params
        for n in centre * np.geomspace(1 / 5, 5, sizes):
            d = budget / (6 * round(n))
            rows.append([round(n), d, TRUE_LAW.loss(n, d) * math.exp(rng.normal(0, 0.002)), budget])
    return rows


def labelled_run(n: float, compute: float, budget: float | str | None, loss: float = 3.0) -> Run:
    n = int(n)
    return Run(f"N={n}", n, n, compute / (6 * n), loss, 6.0 * n, budget)


# ---------------------------------------------------------------------------------------------- fit CLI


def test_fit_cli_recovers_a_known_law_from_a_csv(tmp_path, capsys):
    rows = isoflop_rows(np.random.default_rng(0))
    rows.insert(5, [rows[5][0], rows[5][1], rows[5][2] * 1.5, rows[5][3]])  # a diverged run, on line 7
    table = write_csv(tmp_path / "mine.csv", ["N", "D", "val_loss", "C"], rows)
    fit(
        table,
        tmp_path / "out",
        columns={"params": "N", "tokens": "D", "loss": "val_loss", "budget": "C"},
        exclude=[7],
        n_starts=16,
        n_bootstrap=0,
    )
    out = capsys.readouterr().out
    assert "excluded line 7" in out and "32 runs of" in out
    saved = json.loads((tmp_path / "out" / "fits_chinchilla.json").read_text())
    law = saved["fits"]["approach_3"]
    assert law["alpha"] == pytest.approx(TRUE_LAW.alpha, rel=0.03)
    assert law["beta"] == pytest.approx(TRUE_LAW.beta, rel=0.03)
    assert saved["fits"]["approach_2"]["a"] == pytest.approx(TRUE_LAW.a, abs=0.03)
    # The budget labels are the parabolas' C, and the printed table has every approach's constants.
    assert [p["compute"] for p in saved["fits"]["approach_2"]["parabolas"]] == [1e18, 1e19, 1e20, 1e21]
    header = next(line for line in out.splitlines() if line.startswith("fit "))
    assert header.split() == ["fit", "a", "b", "E", "A", "B", "alpha", "beta"]
    approach_3 = next(line for line in out.splitlines() if line.startswith("approach_3 ")).split()
    assert float(approach_3[6]) == pytest.approx(law["alpha"], rel=1e-3)
    assert "approach_2 " in out and "kaplan_nd   L(N, D)" in out
    for name in ("loss_vs_compute", "isoflop", "frontier"):
        assert (tmp_path / "out" / f"{name}_chinchilla.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_cli_runs_as_a_module_on_jsonl_with_flops(tmp_path):
    rows = isoflop_rows(np.random.default_rng(1), sizes=5)
    table = tmp_path / "runs.jsonl"
    table.write_text(
        "".join(json.dumps({"params": n, "flops": 6 * n * d, "loss": loss}) + "\n" for n, d, loss, _ in rows)
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lit_tiny.scaling",
            "fit",
            "--runs",
            str(table),
            "--out_dir",
            str(tmp_path / "out"),
            "--n_starts",
            "8",
            "--n_bootstrap",
            "0",
            "--isoflop_tolerance",
            "0.5",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "out" / "fits_chinchilla.json").read_text())
    assert len(saved["fits"]["approach_2"]["parabolas"]) == 4  # grouped by C: no labels in this table

    bad = tmp_path / "bad.csv"
    write_csv(bad, ["params", "tokens", "loss"], [[1e8, 2e9, "nan"]])
    result = subprocess.run(
        [sys.executable, "-m", "lit_tiny.scaling", "fit", "--runs", str(bad), "--out_dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and result.stderr.strip() == (
        f"error: {bad}:2: column 'loss' must be a positive finite number, got 'nan'"
    )


def test_our_run_table_reads_unchanged(tmp_path):
    runs = [labelled_run(1e6 * (i + 1), 1e15, 1e15, 3.0 - 0.1 * i) for i in range(3)]
    path = save_runs(runs, tmp_path / "runs.jsonl")
    assert read_table(path) == dict(zip([1, 2, 3], load_runs(path))) and list(read_table(path).values()) == runs
    with pytest.raises(ValueError, match="is a lit_tiny run table .*--columns applies only to other tables"):
        read_table(path, {"loss": "final_val_loss"})
    # A sweep's runs.csv (more columns, our names) reads through --columns.
    header = ["point", "model_name", "n_params_total", "tokens", "flop_budget", "final_val_loss"]
    rows = [["p", r.model_name, r.n_params_total, r.tokens, r.flop_budget, r.final_val_loss] for r in runs]
    mapping = {"params": "n_params_total", "loss": "final_val_loss", "budget": "flop_budget", "name": "model_name"}
    assert list(read_table(write_csv(tmp_path / "runs.csv", header, rows), mapping).values()) == runs


def test_external_rows_become_runs(tmp_path):
    table = write_csv(
        tmp_path / "t.csv",
        ["name", "params", "tokens", "flops", "loss", "budget"],
        [["a", 1e8, 2e9, 1.2e18, 3.1, "small"], ["", 2e8, "", 1.2e18, 3.0, "small"], ["c", 4e8, 1e9, "", 2.9, 1e18]],
    )
    a, b, c = read_table(table).values()
    assert (a.model_name, a.n_params_total, a.n_params_non_embedding, a.tokens) == ("a", 10**8, 10**8, 2e9)
    assert a.flops_per_token_exact == pytest.approx(6e8) and a.flop_budget == "small"
    assert b.model_name == "N=2e+08" and b.tokens == pytest.approx(1e9) and b.flops("exact") == pytest.approx(1.2e18)
    assert c.flop_budget == 1e18 and c.flops_per_token_exact == 6 * 4e8
    for convention in ("kaplan", "chinchilla", "exact"):
        assert c.flops(convention) == pytest.approx(6 * 4e8 * 1e9)


@pytest.mark.parametrize(
    "header, row, columns, message",
    [
        (
            ["N", "D", "loss"],
            [1e8, 2e9, 3.0],
            None,
            "t.csv has no 'params' column \\(its columns: N, D, loss\\). Name yours: --columns '{params: <column>}'$",
        ),
        (
            ["N", "D", "loss"],
            [1e8, 2e9, 3.0],
            {"params": "n"},
            "--columns maps params to 'n', but .*t.csv has no such column \\(its columns: N, D, loss\\)",
        ),
        (
            ["params", "steps", "loss"],
            [1e8, 2e3, 3.0],
            None,
            "no 'tokens' column and no 'flops' column .*'{tokens: <column>}' or --columns '{flops: <column>}'",
        ),
        (["params", "tokens", "loss"], [1e8, 2e9, "abc"], None, "t.csv:2: column 'loss': 'abc' is not a number"),
        (
            ["N", "tokens", "loss"],
            [-5, 2e9, 3.0],
            {"params": "N"},
            "t.csv:2: column 'N' \\(params\\) must be a positive finite number, got '-5'",
        ),
        (["params", "tokens", "loss"], [1e8, 2e9, ""], None, "t.csv:2: column 'loss' is empty"),
        (
            ["params", "tokens", "flops", "loss"],
            [1e8, 2e9, 1.3e18, 3.0],
            None,
            "t.csv:2: 'flops' = 1.3e\\+18 is not 6 x params x tokens = 1.2e\\+18 \\(\\+8.3%\\)",
        ),
        (["params", "tokens", "loss"], [1e8, 2e9, 3.0], {"los": "x"}, "--columns names unknown columns \\['los'\\]"),
    ],
)
def test_bad_tables_get_one_line_errors(tmp_path, header, row, columns, message):
    table = write_csv(tmp_path / "t.csv", header, [row])
    with pytest.raises(ValueError, match=message) as caught:
        read_table(table, columns)
    assert "\n" not in str(caught.value)


def test_empty_and_unreadable_tables(tmp_path):
    with pytest.raises(ValueError, match="t.csv has no runs"):
        read_table(write_csv(tmp_path / "t.csv", ["params", "tokens", "loss"], []))
    (tmp_path / "t.jsonl").write_text('{"params": 1e8, "tokens": 2e9, "loss": 3.0}\n[1, 2]\n')
    with pytest.raises(ValueError, match="t.jsonl:2: expected a JSON object"):
        read_table(tmp_path / "t.jsonl")
    (tmp_path / "t.txt").write_text("params\n")
    with pytest.raises(ValueError, match="must be a .csv or a .jsonl file, not '.txt'"):
        read_table(tmp_path / "t.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_table(tmp_path / "missing.csv")


def test_exclude_must_name_a_row(tmp_path):
    table = write_csv(tmp_path / "t.csv", ["params", "tokens", "loss"], [[1e8, 2e9, 3.0]])
    with pytest.raises(
        ValueError, match="--exclude 9: .*t.csv has no run on that line \\(its runs are on lines 2 to 2\\)"
    ):
        fit(table, tmp_path / "out", exclude=[9])


# ---------------------------------------------------------------------------------------------- IsoFLOP groups


def test_budget_labels_group_runs_and_give_their_c():
    # Budget 1e18's runs spread 35% in C, far more than the 10% tolerance: one group all the same.
    factors = (0.85, 0.95, 1.0, 1.05, 1.15)
    sizes = np.geomspace(1e7, 1e9, 5)
    spread = [
        labelled_run(n, 1e18 * f, 1e18, TRUE_LAW.loss(n, 1e18 * f / (6 * int(n)))) for n, f in zip(sizes, factors)
    ]
    named = [labelled_run(n, 3e19, "big budget", TRUE_LAW.loss(n, 3e19 / (6 * int(n)))) for n in sizes]
    groups = group_by_budget(named + spread, "chinchilla")
    assert [[r.flop_budget for r in g] for g in groups] == [[1e18] * 5, ["big budget"] * 5]
    numeric, string = (fit_parabola(g, "chinchilla") for g in groups)
    assert (numeric.label, numeric.compute) == (1e18, 1e18)  # the label, not the geometric mean
    assert string.label == "big budget" and string.compute == pytest.approx(3e19, rel=1e-6)
    with pytest.raises(ValueError, match="1 of 10 runs have no flop_budget \\(budget label\\)"):
        group_by_budget([labelled_run(1e7, 1e18, None)] + spread + named[1:], "chinchilla")


def test_numeric_label_is_c_only_when_it_counts_c_this_way():
    runs = [labelled_run(n, 1.01e18, 1e18) for n in np.geomspace(1e7, 1e9, 5)]
    assert budget_compute(runs, "chinchilla") == 1e18
    # A budget counted another way (here 10% off this convention's C) is a name: C is the runs' own.
    off = [labelled_run(r.n_params_total, 1.1e18, 1e18) for r in runs]
    assert budget_compute(off, "chinchilla") == pytest.approx(1.1e18, rel=1e-6)


def test_unlabelled_runs_split_at_gaps_not_at_a_distance_from_the_smallest():
    # One budget whose C climbs in 7% steps (40% end to end) and one 3x above it.
    factors = [1.07**i for i in range(6)]
    runs = [labelled_run(n, 1e18 * f, None) for n, f in zip(np.geomspace(1e7, 1e9, 6), factors)]
    runs += [labelled_run(n, 3e18, None) for n in np.geomspace(1e7, 1e9, 4)]
    assert [len(g) for g in group_by_budget(runs, "chinchilla")] == [6, 4]
    assert [len(g) for g in group_by_budget(runs, "chinchilla", tolerance=0.05)] == [1] * 6 + [4]
    with pytest.raises(ValueError, match="tolerance must be positive"):
        group_by_budget(runs, "chinchilla", tolerance=0)


def test_string_labels_fit_approach_2():
    rows = isoflop_rows(np.random.default_rng(2))
    names = {1e18: "tiny", 1e19: "small", 1e20: "medium", 1e21: "large"}
    runs = [labelled_run(n, 6 * n * d, names[budget], loss) for n, d, loss, budget in rows]
    result = fit_isoflop(runs)
    assert [p.label for p in result.parabolas] == ["tiny", "small", "medium", "large"]
    assert result.to_dict()["parabolas"][0]["budget_label"] == "tiny"
    assert result.parabolas[0].compute == pytest.approx(1e18, rel=1e-6)  # geometric mean of the runs' C
    assert result.n_law.exponent == pytest.approx(TRUE_LAW.a, abs=0.03)


# ---------------------------------------------------------------------------------------------- threads


def test_optimisers_run_with_one_blas_thread(monkeypatch):
    seen = []

    def recording(real):
        def wrapper(*args, **kwargs):
            seen.append({info["num_threads"] for info in threadpoolctl.threadpool_info()})
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(parametric, "minimize", recording(parametric.minimize))
    monkeypatch.setattr(kaplan, "least_squares", recording(kaplan.least_squares))
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e9, 4), np.geomspace(1e9, 1e11, 4)))
    fit_parametric_arrays(n, d, TRUE_LAW.loss(n, d), n_starts=2)
    fit_kaplan_nd_arrays(n, d, TRUE_LAW.loss(n, d))
    assert len(seen) == 2 + 16 and all(threads == {1} for threads in seen), seen
    assert threadpoolctl.threadpool_info(), "numpy's BLAS should be visible to threadpoolctl"


# ---------------------------------------------------------------------------------------------- plots


def test_plots_stay_readable_with_40_sizes(tmp_path):
    runs = []
    for budget in np.geomspace(1e17, 1e20, 8):
        for n in np.geomspace(1e7, 1e10, 40):
            d = budget / (6 * int(n))
            loss = float(TRUE_LAW.loss(n, d))
            curve = LossCurve([d / 4, d], [loss * 1.1, loss])
            runs.append(Run(f"N={int(n)}", int(n), int(n), d, loss, 6.0 * int(n), float(budget), curve))
    chinchilla = get_convention("chinchilla")
    for figure in (draw_loss_vs_compute(runs), draw_isoflop(runs, chinchilla)):
        main, colour_bar = figure.axes  # a colour bar, not 40 legend entries
        assert main.get_legend() is None and colour_bar.get_ylabel()
    fitted = draw_isoflop(runs, chinchilla, fit_isoflop(runs))
    assert len(fitted.axes[0].get_legend().get_texts()) == 2  # the two kinds of minimum
    assert plot_loss_vs_compute(runs, tmp_path / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------- presets


def test_presets_state_their_source_and_chinchillas_rounding(capsys):
    # The printed, rounded Approach 3 constants put N_opt at Gopher's budget near 32B; the unrounded
    # exponents of the paper's TeX source (reported by Besiroglu et al.) give the paper's ~40B.
    assert calculate("chinchilla", compute=5.76e23).optimal.n_params == pytest.approx(32.19e9, rel=1e-3)
    tex = ParametricLaw(E=1.6934, A=406.4, B=410.7, alpha=0.3392, beta=0.2849)
    assert tex.compute_optimal(5.76e23).n_params == pytest.approx(40.31e9, rel=1e-3)
    for law in LAW_PRESETS.values():
        assert law.source and law.to_dict()["source"] == law.source
    assert "32.2B at Gopher's 5.76e23 FLOPs" in LAW_PRESETS["chinchilla"].source
    assert "Table 1" in LAW_PRESETS["besiroglu"].source
    calc(compute=1e21, law="besiroglu")
    assert f"Source: {LAW_PRESETS['besiroglu'].source}" in capsys.readouterr().out
