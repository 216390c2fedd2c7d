"""pretrain/tinyllama.py end to end on CPU: FSDP over 2 processes, exact resume, SIGTERM, config errors."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lit_tiny.checkpoint import load_model
from lit_tiny.cli import run
from lit_tiny.data.readers import DataError
from lit_tiny.data.sources import Source, TrainingData
from lit_tiny.training.batch_plan import BatchConfigError, BatchPlan
from lit_tiny.training.run_dir import RunDir
from tests.conftest import REPO_ROOT, SAFETY_TIMEOUT_S
from tests.pretrain.conftest import REFERENCE_STEPS, SCRIPT, read_metrics, run_script, train_args, train_losses


def test_two_processes_fsdp_train_with_falling_loss(corpus, tmp_path):
    out = tmp_path / "run"
    result = run_script(train_args(corpus, out, "--devices", "2", "--train.max_steps", "30", "--train.log_interval", "1"))
    losses = train_losses(out)
    assert sorted(losses) == list(range(1, 31))
    assert all(math.isfinite(v) for v in losses.values())
    first, last = sum(losses[s] for s in (1, 2, 3)) / 3, sum(losses[s] for s in (28, 29, 30)) / 3
    assert last < first - 1.0, f"loss did not fall: {first:.3f} -> {last:.3f}"
    assert "world size)      2" in result.stdout and "gradient accumulation     2" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["step"] == 30 and summary["tokens_seen"] == 30 * 512
    val = [m["val_loss"] for m in read_metrics(out) if "val_loss" in m]
    assert len(val) == 6 and summary["final_val_loss"] == val[-1] and val[-1] < val[0]
    # The consolidated checkpoint is a normal lit_tiny checkpoint that loads and knows its progress.
    final = Path(summary["final_checkpoint"])
    assert json.loads((final / "progress.json").read_text()) == {"step": 30, "tokens_seen": 30 * 512}
    assert load_model(final).config.name == "tiny_test"
    assert [(c.step, c.tokens_seen) for c in RunDir(out).checkpoints()] == [(30, 30 * 512)]  # what eval reads
    assert (final / "tokenizer.json").is_file()
    assert list((out / "logs").glob("events.out.tfevents.*"))
    assert [p.name for p in sorted((out / "train_state").iterdir())] == [
        "step-00000020", "step-00000025", "step-00000030"]  # keep_last 3


def test_paper_config_batch_math_on_16_devices():
    settings = yaml.safe_load((REPO_ROOT / "configs" / "tinyllama_1b.yaml").read_text())
    assert settings["model"] == "tiny_LLaMA_1b"
    train = settings["train"]
    plan = BatchPlan.make(train["global_batch_tokens"], train["micro_batch_size"], 2048, world_size=16,
                          max_tokens=train["max_tokens"], warmup_steps=train["warmup_steps"])
    assert plan.sequences_per_step == 1024 and plan.global_batch_tokens == 2_097_152
    assert plan.accumulation == 8 and plan.micro_batch_size == 8
    assert plan.max_steps == 1_430_512 and plan.warmup_steps == 2000
    assert (train["lr"], train["min_lr"], train["weight_decay"], train["grad_clip"]) == (4e-4, 4e-5, 0.1, 1.0)
    assert (train["beta1"], train["beta2"]) == (0.9, 0.95)
    # The same config on 8 devices keeps the global batch and doubles the accumulation.
    assert BatchPlan.make(2_097_152, 8, 2048, 8, 3 * 10**12).accumulation == 16


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO_ROOT / "configs").glob("*.yaml")
                                        if not p.name.startswith("scaling_")))
def test_every_pretrain_config_parses_and_plans(script_module, monkeypatch, name):
    """Each YAML goes through the real CLI into ``setup``; the run stops where processes would launch."""
    seen = {}

    class Launched(Exception):
        pass

    def fake_fabric(devices, num_nodes, precision, *args, **kwargs):
        seen.update(devices=devices, precision=precision)
        raise Launched

    class Unprepared(TrainingData):
        def identity(self) -> dict:
            return {"sources": [[s.weight] for s in self.sources]}

    def fake_training_data(*args):
        seen["data"] = args
        return Unprepared([Source(Path(d), w) for d, w in zip(args[0], args[1])], list(args[2]), Path("tokenizer"),
                          "0" * 64)

    monkeypatch.setattr(script_module, "training_data", fake_training_data)
    monkeypatch.setattr(script_module, "make_fabric", fake_fabric)
    with pytest.raises(Launched):
        run(script_module.setup, ["--config", str(REPO_ROOT / "configs" / name), "--resume", "auto", "--out_dir",
                                  "/nonexistent"])
    assert seen["devices"] >= 1 and seen["precision"] in ("32-true", "bf16-mixed", "bf16-true")
    train_dirs, weights, demo = seen["data"][0], seen["data"][1], seen["data"][5]
    if demo is not None:  # the demo corpus brings its own two sources, mixed as TinyLlama mixes
        assert name == "demo_cpu.yaml" and demo.folder == Path("data/demo") and demo.vocab_size == 4096
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0)
    assert demo is not None or len(train_dirs) == 2


def test_bad_configs_fail_before_training(script_module, corpus, tmp_path):
    def setup(**overrides):
        args = dict(model=str(corpus["model"]), out_dir=tmp_path / "never", devices=1)
        args.update(overrides)
        data = script_module.DataArgs(train_dirs=[corpus["english"], corpus["code"]], weights=[0.7, 0.3],
                                      val_dirs=[corpus["val"]])
        train = overrides.pop("train", script_module.TrainArgs(global_batch_tokens=512, micro_batch_size=4, max_steps=2))
        args.update(train=train, data=overrides.pop("data", data))
        script_module.setup(**args)

    with pytest.raises(BatchConfigError, match="does not divide into micro batches of 3"):
        setup(train=script_module.TrainArgs(global_batch_tokens=512, micro_batch_size=3, max_steps=2))
    with pytest.raises(BatchConfigError, match="not a whole number of 32-token sequences"):
        setup(train=script_module.TrainArgs(global_batch_tokens=500, micro_batch_size=4, max_steps=2))
    with pytest.raises(ValueError, match="Unknown model name 'tiny_LLaMA_7b'"):
        setup(model="tiny_LLaMA_7b")
    missing = tmp_path / "no_such_data"
    with pytest.raises(DataError, match=f"Data folder {missing} does not exist"):
        setup(data=script_module.DataArgs(train_dirs=[missing], weights=[1.0], val_dirs=[corpus["val"]]))
    with pytest.raises(DataError, match="vocab_size is 64"):
        small = tmp_path / "small.yaml"
        small.write_text(Path(corpus["model"]).read_text().replace("vocab_size: 384", "vocab_size: 64"))
        setup(model=str(small))
    assert not (tmp_path / "never").exists()


def test_refuses_to_overwrite_a_run_without_resume(corpus, tmp_path, script_module):
    out = tmp_path / "run"
    (out / "train_state" / "step-00000005").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="--resume auto"):
        script_module.check_resume_request(False, RunDir(out))
    script_module.check_resume_request("auto", RunDir(out))
    with pytest.raises(FileNotFoundError, match="no such training state folder"):
        script_module.check_resume_request(tmp_path / "missing", RunDir(out))


def test_non_finite_loss_stops_naming_the_step(corpus, tmp_path):
    args = train_args(corpus, tmp_path / "run", "--devices", "1", "--train.max_steps", "50", "--train.lr", "1e4",
                      "--train.min_lr", "1e4", "--train.warmup_steps", "0", "--train.grad_clip", "0")
    result = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=SAFETY_TIMEOUT_S)
    assert result.returncode != 0
    assert re.search(r"Non-finite training loss \((nan|inf|-inf)\) at step \d+; the optimizer step was not applied",
                     result.stderr)


def test_activation_checkpointing_does_not_change_the_losses(corpus, tmp_path):
    common = ("--devices", "1", "--train.max_steps", "4", "--eval.interval", "100")
    run_script(train_args(corpus, tmp_path / "plain", *common))
    run_script(train_args(corpus, tmp_path / "ac", *common, "--activation_checkpointing", "true"))
    plain, ac = train_losses(tmp_path / "plain"), train_losses(tmp_path / "ac")
    assert sorted(plain) == [1, 2, 3, 4]
    for step in plain:
        assert abs(plain[step] - ac[step]) <= 1e-6


def test_world_size_changes_neither_the_losses_nor_the_data_order(corpus, reference_runs, tmp_path):
    """Same global batch on 1 and 2 processes: the same loss curve (fp32). A state saved by 2 processes
    resumes on 1 and on 4 processes and continues that curve."""
    one, two = reference_runs["one"], reference_runs["two"]
    reference = train_losses(one)
    assert sorted(reference) == list(range(1, 13))
    for step, loss in train_losses(two).items():
        assert abs(loss - reference[step]) <= 1e-5, f"step {step}: {loss} on 2 processes vs {reference[step]} on 1"
    val_one = [m["val_loss"] for m in read_metrics(one) if "val_loss" in m]
    val_two = [m["val_loss"] for m in read_metrics(two) if "val_loss" in m]
    assert len(val_one) == 2 and val_two == pytest.approx(val_one, abs=1e-5)

    saved = two / "train_state" / "step-00000006"
    for devices in (1, 4):
        out = tmp_path / f"resumed_on_{devices}"
        result = run_script(train_args(corpus, out, "--devices", str(devices), *REFERENCE_STEPS, "--resume", str(saved)))
        assert f"saved by 2 processes and this job has {devices}" in result.stdout
        resumed = train_losses(out)
        assert sorted(resumed) == list(range(7, 13))
        for step, loss in resumed.items():
            assert abs(loss - reference[step]) <= 1e-5, f"step {step} on {devices} after 2: {loss} vs {reference[step]}"
