"""lit_tiny.scaling.sweep and pretrain/scaling_sweep.py: resuming after an interruption, refusing changed
settings, the run table and plots, and clear errors. A stand-in trainer that obeys pretrain/tinyllama.py's contract (flags in,
metrics.jsonl and summary.json out, losses from a known law) keeps these tests to seconds; one test runs
the real pretraining script."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonargparse import CLI

from lit_tiny.config import Config
from lit_tiny.scaling import load_runs, sweep
from tests.conftest import REPO_ROOT, SAFETY_TIMEOUT_S, wait_for
from tests.pretrain.conftest import corpus  # noqa: F401  (the tiny prepared corpus, a session fixture)

SWEEP = REPO_ROOT / "pretrain" / "scaling_sweep.py"
LAW = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.36}

STUB = r'''
"""Stand-in for pretrain/tinyllama.py: same flags and outputs, no training. The validation loss after D tokens
is E + A / N^alpha + B / D^beta (N = all parameters). STUB_CRASH=<point> exits with code 3 half way (after
saving a state); STUB_HANG=<point> waits half way until SIGTERM, then saves a state and exits 0 unfinished."""
import argparse, json, os, signal, sys, time
from pathlib import Path

import yaml

E, A, B, ALPHA, BETA = {E}, {A}, {B}, {alpha}, {beta}
parser = argparse.ArgumentParser()
for flag in ("--model", "--out_dir", "--resume", "--train.max_steps", "--train.global_batch_tokens", "--eval.interval"):
    parser.add_argument(flag, required=True)
args = vars(parser.parse_known_args()[0])
out = Path(args["out_dir"])
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"point": out.name, "argv": sys.argv[1:]}}) + "\n")
states = out / "train_state"
if args["resume"] == "false" and states.exists():
    sys.exit(f"{{out}} already holds training states; pass --resume auto")
start = max((int(p.name.split("-")[1]) for p in states.iterdir()), default=0) if states.exists() else 0

m = yaml.safe_load(Path(args["model"]).read_text())
d, hs = m["n_embd"], m["n_embd"] // m["n_head"]
block = d * (m["n_head"] + 2 * m["n_query_groups"]) * hs + m["n_head"] * hs * d + 3 * d * m["intermediate_size"] + 2 * d
body = m["n_layer"] * block + d
n = body + 2 * m["vocab_size"] * d
steps, batch = int(args["train.max_steps"]), int(args["train.global_batch_tokens"])
interval = int(args["eval.interval"])

def loss(tokens):
    return E + A / n ** ALPHA + B / tokens ** BETA

def save_state(step):
    (states / f"step-{{step:08d}}").mkdir(parents=True, exist_ok=True)

out.mkdir(parents=True, exist_ok=True)
for step in range(start + 1, steps + 1):
    if step % interval == 0 or step == steps:
        with (out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({{"step": step, "tokens": step * batch, "val_loss": loss(step * batch)}}) + "\n")
    if step == steps // 2 and os.environ.get("STUB_CRASH") == out.name:
        save_state(step)
        sys.exit(3)
    if step == steps // 2 and os.environ.get("STUB_HANG") == out.name:
        signal.signal(signal.SIGTERM, lambda *a: (save_state(step), print("Stopped by SIGTERM"), sys.exit(0)))
        (out / "hanging").touch()
        time.sleep(900)  # until the SIGTERM the test sends
        sys.exit(5)
save_state(steps)
summary = {{"status": "finished", "step": steps, "max_steps": steps, "tokens_seen": steps * batch,
           "final_val_loss": loss(steps * batch), "model": m, "num_params": n, "num_params_non_embedding": body,
           "flops_per_token": 6 * n, "wall_time_s": 0.01}}
(out / "summary.json").write_text(json.dumps(summary))
'''


@pytest.fixture
def stub(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "stub_train.py"
    path.write_text(STUB.format(**LAW))
    monkeypatch.setenv("STUB_LOG", str(tmp_path / "invocations.jsonl"))
    monkeypatch.delenv("STUB_CRASH", raising=False)
    monkeypatch.delenv("STUB_HANG", raising=False)
    return path


def invocations(tmp_path: Path) -> list[dict]:
    log = tmp_path / "invocations.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def isoflop_sweep(stub: Path, sweep_dir: Path) -> None:
    """5 ladder sizes x 3 budgets around the stub law's compute-optimal sizes (1.0M to 2.1M parameters)."""
    sweep.run_sweep(sweep_dir=sweep_dir, script=stub, models=[f"ladder_{i}" for i in range(5)],
                    flop_budgets=[3e14, 6e14, 1.2e15], budget_convention="chinchilla",
                    train=sweep.PointArgs(global_batch_tokens=4096, lr=3e-3, evals_per_run=4),
                    conventions=["chinchilla"], n_bootstrap=0)


def test_interrupted_sweep_resumes_without_retraining(stub, tmp_path, monkeypatch, capsys):
    sweep_dir = tmp_path / "sweep"
    crash_point = "C6e14-ladder_2"
    monkeypatch.setenv("STUB_CRASH", crash_point)
    with pytest.raises(sweep.SweepError, match=f"{crash_point} failed \\(exit 3\\).*run the same command again"):
        isoflop_sweep(stub, sweep_dir)
    first = invocations(tmp_path)
    assert [c["point"] for c in first][-1] == crash_point and len(first) == 8  # 5 of C3e14, then 3 of C6e14
    assert all(flag(c["argv"], "--resume") == "false" for c in first)
    assert not (sweep_dir / "runs" / crash_point / "summary.json").exists()

    monkeypatch.delenv("STUB_CRASH")
    isoflop_sweep(stub, sweep_dir)
    second = invocations(tmp_path)[len(first):]
    # Finished points are not launched again; the crashed one resumes; the rest start fresh.
    assert [c["point"] for c in second] == [crash_point, "C6e14-ladder_3", "C6e14-ladder_4"] + [
        f"C1.2e15-ladder_{i}" for i in range(5)]
    assert [flag(c["argv"], "--resume") for c in second] == ["auto"] + ["false"] * 7
    # The resumed launch continued from the saved state: its validation steps follow the first launch's.
    steps = [json.loads(line)["step"] for line in (sweep_dir / "runs" / crash_point / "metrics.jsonl").open()]
    assert steps == sorted(set(steps)) and len(steps) >= 4
    out = capsys.readouterr().out
    assert "[1/15] C3e14-ladder_0: finished earlier" in out and f"[8/15] {crash_point}:" in out and "resuming" in out
    assert "Sweep results (15 of 15 points finished)" in out

    # A third run trains nothing.
    isoflop_sweep(stub, sweep_dir)
    assert len(invocations(tmp_path)) == len(first) + len(second)
    assert capsys.readouterr().out.count("finished earlier") == 15

    # Every point trains a whole number of steps near its budget: D = steps x global batch, C = 6 N D.
    runs = load_runs(sweep_dir / "runs.jsonl")
    assert len(runs) == 15 and {r.flop_budget for r in runs} == {3e14, 6e14, 1.2e15}
    for run in runs:
        assert run.tokens % 4096 == 0
        assert abs(run.flops("chinchilla") - run.flop_budget) <= 0.5 * 4096 * 6 * run.n_params_total
        assert run.curve is not None and run.curve.tokens[-1] == run.tokens and len(run.curve.tokens) >= 4
    ladder_2 = Config.from_name("ladder_2")
    crashed = next(r for r in runs if r.model_name == "ladder_2" and r.flop_budget == 6e14)
    assert crashed.final_val_loss == pytest.approx(
        LAW["E"] + LAW["A"] / ladder_2.num_params() ** LAW["alpha"] + LAW["B"] / crashed.tokens ** LAW["beta"])
    with (sweep_dir / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15 and rows[0]["point"] == "C3e14-ladder_0"
    assert float(rows[0]["final_val_loss"]) == runs[0].final_val_loss

    # The fits see the stub's law: Approach 3 recovers its exponents, Approach 2 its frontier N_opt ~ C^a.
    fits = json.loads((sweep_dir / "scaling" / "fits_chinchilla.json").read_text())
    law = fits["fits"]["approach_3"]
    assert law["alpha"] == pytest.approx(LAW["alpha"], rel=0.03) and law["beta"] == pytest.approx(LAW["beta"], rel=0.03)
    assert fits["fits"]["approach_2"]["a"] == pytest.approx(LAW["beta"] / (LAW["alpha"] + LAW["beta"]), abs=0.05)
    for name in ("loss_vs_compute", "isoflop", "frontier"):
        png = sweep_dir / "scaling" / f"{name}_chinchilla.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_keep_going_trains_the_other_points_then_fails(stub, tmp_path, monkeypatch, capsys):
    sweep_dir = tmp_path / "sweep"
    monkeypatch.setenv("STUB_CRASH", "D4e5-ladder_1")
    with pytest.raises(sweep.SweepError, match=r"1 point\(s\) failed: D4e5-ladder_1\."):
        sweep.run_sweep(sweep_dir=sweep_dir, script=stub, models=["ladder_0", "ladder_1"],
                        tokens=[2e5, 4e5, 8e5], train=sweep.PointArgs(global_batch_tokens=4096),
                        keep_going=True, n_bootstrap=0, conventions=["chinchilla"])
    assert len(invocations(tmp_path)) == 6
    table = capsys.readouterr().out.split("Sweep results (5 of 6 points finished)")[1]
    assert "failed (exit 3)" in next(line for line in table.splitlines() if line.startswith("D4e5-ladder_1"))
    runs = load_runs(sweep_dir / "runs.jsonl")
    assert len(runs) == 5 and (sweep_dir / "scaling" / "fits_chinchilla.json").is_file()


def test_changed_settings_are_refused(stub, tmp_path):
    sweep_dir = tmp_path / "sweep"
    grid = dict(sweep_dir=sweep_dir, script=stub, models=["ladder_0", "ladder_1"], tokens=[2e5, 4e5, 8e5],
                n_bootstrap=0)
    train = sweep.PointArgs(global_batch_tokens=4096, micro_batch_size=8, lr=3e-3)
    sweep.run_sweep(**grid, train=train)
    launched = len(invocations(tmp_path))
    assert launched == 6

    changed = sweep.PointArgs(global_batch_tokens=4096, micro_batch_size=8, lr=1e-3)
    with pytest.raises(sweep.SweepError, match=r"(?s)D2e5-ladder_0: lr: 0.003 -> 0.001.*Use another sweep_dir"):
        sweep.run_sweep(**grid, train=changed)
    with pytest.raises(sweep.SweepError, match=r"overrides.train.min_lr: None -> 0.0001"):
        sweep.run_sweep(**grid, train=train, overrides={"train": {"min_lr": 1e-4}})
    assert len(invocations(tmp_path)) == launched

    # The micro batch changes memory, not the optimisation: the finished sweep is accepted as it is.
    sweep.run_sweep(**grid, train=sweep.PointArgs(global_batch_tokens=4096, micro_batch_size=4, lr=3e-3))
    assert len(invocations(tmp_path)) == launched


def test_too_few_points_surface_the_fit_errors_and_keep_the_run_table(stub, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    with pytest.raises(sweep.SweepError, match=r"No fit could run on 2 finished run\(s\).*runs.jsonl"):
        sweep.run_sweep(sweep_dir=sweep_dir, script=stub, models=["ladder_0", "ladder_1"], tokens=[4e5],
                        train=sweep.PointArgs(global_batch_tokens=4096), n_bootstrap=0)
    out = capsys.readouterr().out
    assert "kaplan_n: skipped: " in out and "needs at least 3 points, got 2" in out
    assert "approach_3: skipped: " in out
    assert len(load_runs(sweep_dir / "runs.jsonl")) == 2
    assert len((sweep_dir / "runs.csv").read_text().splitlines()) == 3
    assert (sweep_dir / "scaling" / "loss_vs_compute_chinchilla.png").is_file()
    assert (sweep_dir / "scaling" / "fits_kaplan.json").is_file()


def test_plan_rounds_to_whole_steps_and_says_what_it_skips(stub, tmp_path, capsys):
    sweep.run_sweep(sweep_dir=tmp_path / "sweep", script=stub, models=["ladder_0", "ladder_3", "ladder_7"],
                    flop_budgets=[1e13], budget_convention="exact", min_steps=20, max_tokens_per_param=3,
                    train=sweep.PointArgs(global_batch_tokens=4096), dry_run=True)
    out = capsys.readouterr().out
    ladder_3 = Config.from_name("ladder_3")
    steps = round(1e13 / ladder_3.flops_per_token() / 4096)
    assert "C1e13-ladder_3" in out and f"{steps * 4096:,}" in out
    ladder_0 = Config.from_name("ladder_0")
    ladder_0_ratio = round(1e13 / ladder_0.flops_per_token() / 4096) * 4096 / ladder_0.num_params()
    assert f"skipped C1e13-ladder_0: {ladder_0_ratio:.3g} tokens/param > max_tokens_per_param 3" in out
    ladder_7_steps = round(1e13 / Config.from_name("ladder_7").flops_per_token() / 4096)
    assert f"skipped C1e13-ladder_7: {ladder_7_steps} steps of 4,096 tokens < min_steps 20" in out
    assert "C1e13: only 1 model size(s) left; Approach 2 fits a parabola through 4 or more" in out
    assert not (tmp_path / "sweep").exists() and not invocations(tmp_path)


def test_bad_input_gives_clear_errors(stub, tmp_path):
    base = dict(sweep_dir=tmp_path / "sweep", script=stub, models=["ladder_0"], tokens=[4e5])
    SweepError = sweep.SweepError
    with pytest.raises(SweepError, match="Give either tokens .* or flop_budgets"):
        sweep.run_sweep(**{**base, "flop_budgets": [1e13]})
    with pytest.raises(SweepError, match="overrides may not set 'train.lr'.*use train.lr"):
        sweep.run_sweep(**base, overrides={"train": {"lr": 1.0}})
    with pytest.raises(SweepError, match="Unknown model name 'ladder_99'"):
        sweep.run_sweep(**{**base, "models": ["ladder_99"]})
    with pytest.raises(SweepError, match="Model names must be unique"):
        sweep.run_sweep(**{**base, "models": ["ladder_0", "ladder_0"]})
    with pytest.raises(SweepError, match="a warmup of 200 steps is not below its 98 steps"):
        sweep.run_sweep(**base, train=sweep.PointArgs(global_batch_tokens=4096, warmup_fraction=None,
                                                               warmup_steps=200))
    with pytest.raises(SweepError, match="Every point of the grid was skipped"):
        sweep.run_sweep(**base, min_steps=1000)
    with pytest.raises(SweepError, match="Pretraining script .* does not exist"):
        sweep.run_sweep(**{**base, "script": tmp_path / "missing.py"})
    assert not invocations(tmp_path)


def test_sigterm_stops_the_running_point_which_then_resumes(stub, tmp_path):
    """What a scheduler does to a preempted job: the sweep passes SIGTERM on, the point saves its state,
    and the same command later resumes that point and skips the finished one."""
    sweep_dir = tmp_path / "sweep"
    config = tmp_path / "sweep.yaml"
    config.write_text(f"sweep_dir: {sweep_dir}\nscript: {stub}\nmodels: [ladder_0]\ntokens: [4.0e5, 8.0e5, 1.2e6]\n"
                      "train:\n  global_batch_tokens: 4096\nn_bootstrap: 0\n")
    hang = "D8e5-ladder_0"
    env = {**os.environ, "STUB_HANG": hang}
    process = subprocess.Popen([sys.executable, str(SWEEP), "--config", str(config)], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (sweep_dir / "runs" / hang / "hanging").exists(), f"{hang} to hang", process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=SAFETY_TIMEOUT_S)
    assert process.returncode == 1, stdout + stderr
    assert f"Stopped by SIGTERM during {hang}" in stderr and "Run the same command again" in stderr
    assert "Stopped by SIGTERM" in (sweep_dir / "runs" / hang / "train.log").read_text()

    sweep.run_sweep(sweep_dir=sweep_dir, script=stub, models=["ladder_0"], tokens=[4e5, 8e5, 1.2e6],
                    train=sweep.PointArgs(global_batch_tokens=4096), n_bootstrap=0, conventions=["kaplan"])
    calls = invocations(tmp_path)
    assert [(c["point"], flag(c["argv"], "--resume")) for c in calls] == [
        ("D4e5-ladder_0", "false"), (hang, "false"), (hang, "auto"), ("D1.2e6-ladder_0", "false")]
    assert json.loads((sweep_dir / "runs" / hang / "summary.json").read_text())["status"] == "finished"
    assert len(load_runs(sweep_dir / "runs.jsonl")) == 3


@pytest.mark.parametrize("name", ["scaling_toy_cpu.yaml", "scaling_gpu.yaml"])
def test_shipped_sweep_configs_plan(name, capsys, tmp_path):
    """Each sweep config goes through the real CLI to its plan; its base config exists and no point is skipped."""
    CLI(sweep.run_sweep, as_positional=False,
        args=["--config", str(REPO_ROOT / "configs" / name), "--dry_run", "true",
              "--sweep_dir", str(tmp_path / "sweep")])
    out = capsys.readouterr().out
    assert "Sweep plan: " in out
    assert int(out.split("Sweep plan: ")[1].split()[0]) >= 12


def test_help():
    result = subprocess.run([sys.executable, str(SWEEP), "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    assert "--flop_budgets" in result.stdout and "--train.global_batch_tokens" in result.stdout


def test_end_to_end_with_the_real_pretraining_script(corpus, tmp_path, capsys):  # noqa: F811
    """pretrain/tinyllama.py on one tiny model and three token counts, stopped by SIGTERM during the last
    point and resumed: finished points are not retrained, the stopped one continues from its saved state,
    and the table holds real loss curves and supports the one fit three points of one model allow."""
    sweep_dir = tmp_path / "sweep"
    data = {"train_dirs": [str(corpus["english"]), str(corpus["code"])], "weights": [0.7, 0.3],
            "val_dirs": [str(corpus["val"])], "num_workers": 1}
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "sweep_dir": str(sweep_dir), "models": [str(corpus["model"])], "tokens": [512 * 8, 512 * 16, 512 * 200],
        "min_steps": 8, "precision": "32-true", "conventions": ["chinchilla"], "n_bootstrap": 0,
        "train": {"global_batch_tokens": 512, "micro_batch_size": 16, "lr": 1e-2, "evals_per_run": 4,
                  "eval_max_sequences": 8},
        "overrides": {"data": data, "train": {"min_lr": 1e-3}}}))
    process = subprocess.Popen([sys.executable, str(SWEEP), "--config", str(config)], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = sweep_dir / "runs" / "D1.024e5-tiny_test"

    def trained_ten_steps() -> bool:
        steps = re.findall(r"^step +(\d+)/200", (last / "train.log").read_text() if last.is_dir() else "", re.M)
        return bool(steps) and int(steps[-1]) >= 10

    wait_for(trained_ten_steps, "10 steps of the last point", process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=SAFETY_TIMEOUT_S)
    assert process.returncode == 1 and "Stopped by SIGTERM during D1.024e5-tiny_test" in stderr, stdout + stderr
    stopped_at = int(re.search(r"Stopped by SIGTERM after step (\d+)", (last / "train.log").read_text())[1])
    assert 10 <= stopped_at < 200 and not (last / "summary.json").exists()

    CLI(sweep.run_sweep, as_positional=False, args=["--config", str(config)])
    out = capsys.readouterr().out
    assert "[1/3] D4096-tiny_test: finished earlier" in out and "[2/3] D8192-tiny_test: finished earlier" in out
    assert "[3/3] D1.024e5-tiny_test: tiny_test" in out and "resuming" in out
    assert f"Resuming from {last / 'train_state' / f'step-{stopped_at:08d}'}" in (last / "train.log").read_text()
    assert re.search(r"kaplan_d +L\(D\) = .*: alpha = ", out) and (sweep_dir / "scaling" / "loss_vs_compute_chinchilla.png").is_file()

    runs = load_runs(sweep_dir / "runs.jsonl")
    assert [r.tokens for r in runs] == [512 * 8, 512 * 16, 512 * 200]
    for run, steps in zip(runs, (8, 16, 200)):
        point = sweep_dir / "runs" / f"D{sweep.short(steps * 512)}-tiny_test"
        summary = json.loads((point / "summary.json").read_text())
        assert summary["step"] == steps and run.final_val_loss == summary["final_val_loss"]
        assert run.curve.tokens == tuple(512.0 * s for s in range(steps // 4, steps + 1, steps // 4))
        assert run.curve.loss[-1] == run.final_val_loss


# ------------------------------------------------------------------------------------------------ the planner

STUB_LADDER = sweep.LadderArgs(smallest=1e6, largest=2e6, n_models=3, count="total", tolerance=0.2, vocab_size=4096,
                               block_size=512)


def planned_sides(out: str) -> dict[str, tuple[int, int]]:
    """Budget -> (sizes below, sizes above) the planning law's optimum, from the printed plan."""
    return {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"  (C\S+): the .* law's compute-optimal N = .*, "
                                                               r"(\d+) below and (\d+) above", out)}


def test_the_planner_widens_a_ladder_that_cannot_bracket_the_predicted_optimum(stub, tmp_path, capsys):
    # The stub law's optimum is N = 1.0M at 3e14 FLOPs and 2.1M at 1.2e15: three rungs from 1M to 2M bracket neither.
    sweep.run_sweep(sweep_dir=tmp_path / "sweep", script=stub, ladder=STUB_LADDER, flop_budgets=[3e14, 1.2e15],
                    planning_law=LAW, sizes_per_budget=5, train=sweep.PointArgs(global_batch_tokens=4096),
                    dry_run=True)
    out = capsys.readouterr().out
    assert "Planner: the planning law puts compute-optimal sizes outside the ladder" in out
    assert "widened it to 7 rungs" in out
    sides = planned_sides(out)
    assert set(sides) == {"C3e14", "C1.2e15"}
    for below, above in sides.values():
        assert below >= 2 and above >= 2 and below + above == 5
    assert not invocations(tmp_path)


def test_the_planner_refuses_models_that_cannot_bracket_it(stub, tmp_path):
    with pytest.raises(sweep.SweepError, match=r"(?s)cannot bracket.*C1.2e15: N_opt = 2.0\dM?e\+06|cannot bracket"):
        sweep.run_sweep(sweep_dir=tmp_path / "sweep", script=stub, models=["ladder_0", "ladder_1", "ladder_2"],
                        flop_budgets=[3e14, 1.2e15], planning_law=LAW, train=sweep.PointArgs(global_batch_tokens=4096))
    # 47 tokens per parameter at the optimum: the sizes above it train on fewer than 40, and are skipped.
    with pytest.raises(sweep.SweepError, match="size\\(s\\) above it .* but the sizes there are skipped"):
        sweep.run_sweep(sweep_dir=tmp_path / "sweep", script=stub, ladder=STUB_LADDER, flop_budgets=[3e14],
                        planning_law=LAW, min_tokens_per_param=40, train=sweep.PointArgs(global_batch_tokens=4096))
    with pytest.raises(sweep.SweepError, match="sizes_per_budget .* needs a planning_law"):
        sweep.run_sweep(sweep_dir=tmp_path / "sweep", script=stub, ladder=STUB_LADDER, flop_budgets=[3e14],
                        sizes_per_budget=5)
    with pytest.raises(sweep.SweepError, match="holdout_budget 1e\\+14 must exceed every flop_budgets entry"):
        sweep.run_sweep(sweep_dir=tmp_path / "sweep", script=stub, ladder=STUB_LADDER, flop_budgets=[3e14],
                        holdout_budget=1e14)
    assert not invocations(tmp_path)


def test_learning_rate_and_warmup_follow_the_per_size_rule(stub, tmp_path):
    train = sweep.PointArgs(global_batch_tokens=4096, lr=1e-3, lr_exponent=0.5, lr_reference_params=1e6,
                            warmup_fraction=None, warmup_tokens_per_param=2.0)
    sweep.run_sweep(sweep_dir=tmp_path / "sweep", script=stub, models=["ladder_0", "ladder_2"], tokens=[4e6, 8e6, 1.6e7],
                    budget_convention="chinchilla", train=train, n_bootstrap=0, conventions=["chinchilla"])
    calls = {c["point"]: c["argv"] for c in invocations(tmp_path)}
    for name in ("ladder_0", "ladder_2"):
        n = Config.from_name(name).num_params()
        argv = calls[f"D4e6-{name}"]
        assert float(flag(argv, "--train.lr")) == pytest.approx(1e-3 * (1e6 / n) ** 0.5)
        assert int(flag(argv, "--train.warmup_steps")) == -(-2 * n // 4096)


def test_held_out_budget_of_a_sweep_of_preset_models_gets_a_ladder_shape(stub, tmp_path):
    """Without a ladder the held-out model is shaped by LadderArgs' defaults, with the grid's vocabulary and
    sequence length, and trains on the held-out budget."""
    sweep_dir = tmp_path / "sweep"
    sweep.run_sweep(sweep_dir=sweep_dir, script=stub, models=[f"ladder_{i}" for i in range(5)],
                    flop_budgets=[3e14, 6e14, 1.2e15], holdout_budget=2.4e15,
                    train=sweep.PointArgs(global_batch_tokens=4096, evals_per_run=4), conventions=["chinchilla"],
                    n_bootstrap=0)
    prediction = json.loads((sweep_dir / "prediction.json").read_text())
    model = prediction["model"]
    assert (model["vocab_size"], model["block_size"]) == (4096, 512)
    assert sweep.LadderArgs.aspect_ratio / 2 <= model["n_embd"] / model["n_layer"] <= 2 * sweep.LadderArgs.aspect_ratio
    assert prediction["n_params"] == pytest.approx(prediction["compute_optimal"]["n_params"], rel=0.05)
    assert 6 * prediction["n_params"] * prediction["tokens"] == pytest.approx(2.4e15, rel=0.01)
    assert abs(prediction["measured"]["relative_error"]) < 0.01


def test_held_out_budget_is_predicted_before_it_is_trained(stub, tmp_path, capsys, monkeypatch):
    """The whole toy recipe on the stub law: planned around the law, three fitted budgets, the prediction for
    the held-out one written before its run, then measured; all three approaches with bootstrap intervals."""
    sweep_dir = tmp_path / "sweep"
    launches = []

    def holdout_launch(command, log_path, verbose):
        if "-holdout_" in str(log_path):  # the prediction is on disk before the held-out point starts
            launches.append(json.loads((sweep_dir / "prediction.json").read_text()))
        return launch(command, log_path, verbose)

    launch = sweep.launch
    monkeypatch.setattr(sweep, "launch", holdout_launch)
    ladder = sweep.LadderArgs(smallest=8e5, largest=8e6, n_models=7, count="total", tolerance=0.2, vocab_size=4096,
                              block_size=512)
    sweep.run_sweep(sweep_dir=sweep_dir, script=stub, ladder=ladder, flop_budgets=[6e14, 1.2e15, 2.4e15],
                    holdout_budget=9.6e15, planning_law=LAW, sizes_per_budget=5,
                    train=sweep.PointArgs(global_batch_tokens=4096, evals_per_run=6), conventions=["chinchilla"],
                    n_bootstrap=20)
    out = capsys.readouterr().out
    assert len(launches) == 1 and "measured" not in launches[0]
    prediction = json.loads((sweep_dir / "prediction.json").read_text())
    assert len(prediction["fitted_on"]) == 15 and not any("holdout_" in p for p in prediction["fitted_on"])
    assert prediction["measured"]["point"] == f"C9.6e15-{prediction['model']['name']}"
    assert prediction["model"]["name"].startswith("holdout_")
    assert prediction["approach_3"]["alpha"] == pytest.approx(LAW["alpha"], rel=0.05)
    n, d = prediction["n_params"], prediction["tokens"]
    truth = LAW["E"] + LAW["A"] / n ** LAW["alpha"] + LAW["B"] / d ** LAW["beta"]
    assert prediction["measured"]["final_val_loss"] == pytest.approx(truth)
    assert abs(prediction["measured"]["relative_error"]) < 0.005
    assert f"relative error {100 * prediction['measured']['relative_error']:+.2f}%" in out
    assert len(load_runs(sweep_dir / "runs.jsonl")) == 15  # the held-out run is not in the fitted table

    comparison = json.loads((sweep_dir / "scaling" / "approaches_chinchilla.json").read_text())
    a_true = LAW["beta"] / (LAW["alpha"] + LAW["beta"])
    for estimate in comparison["estimates"]:
        low, high = estimate["interval"]
        assert low - 1e-9 <= estimate["a"] <= high + 1e-9 and estimate["a"] == pytest.approx(a_true, abs=0.08), estimate
    assert comparison["intervals_overlap"] is True and "intervals overlap: yes" in out
    assert (sweep_dir / "scaling" / "approaches_chinchilla.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((sweep_dir / "scaling" / "approaches_chinchilla.csv").open()))
    assert [r["approach"] for r in rows] == ["approach_1", "approach_2", "approach_3"]

    # Relaunched, the sweep trains nothing and keeps the prediction made before the held-out run.
    before = (sweep_dir / "prediction.json").read_text()
    sweep.run_sweep(sweep_dir=sweep_dir, script=stub, ladder=ladder, flop_budgets=[6e14, 1.2e15, 2.4e15],
                    holdout_budget=9.6e15, planning_law=LAW, sizes_per_budget=5,
                    train=sweep.PointArgs(global_batch_tokens=4096, evals_per_run=6), conventions=["chinchilla"],
                    n_bootstrap=0)
    assert len(launches) == 1
    assert json.loads((sweep_dir / "prediction.json").read_text())["approach_3"] == json.loads(before)["approach_3"]
