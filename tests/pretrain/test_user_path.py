"""The paper's path as a user follows it: the tokenizer the data was prepared with, continued pretraining
from converted weights, one-line errors, and what a run leaves behind (plot, TensorBoard, final lines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_tiny.checkpoint import load_model
from lit_tiny.data.loader import MixedLoader
from lit_tiny.data.readers import DataError
from lit_tiny.data.sources import Source
from lit_tiny.tokenizer import train_bpe_tokenizer
from tests.conftest import REPO_ROOT, SAFETY_TIMEOUT_S
from tests.pretrain.conftest import SCRIPT, read_metrics, run_script, train_args, train_losses


def setup_with(script_module, corpus, out_dir, **data_overrides):
    data = script_module.DataArgs(train_dirs=[corpus["english"], corpus["code"]], weights=[0.7, 0.3],
                                  val_dirs=[corpus["val"]], **data_overrides)
    train = script_module.TrainArgs(global_batch_tokens=512, micro_batch_size=4, max_steps=2)
    script_module.setup(model=str(corpus["model"]), out_dir=out_dir, devices=1, train=train, data=data)


def test_a_foreign_tokenizer_of_equal_size_is_refused_before_training(script_module, corpus, tmp_path):
    foreign = tmp_path / "foreign"
    train_bpe_tokenizer([f"completely other text number {i} with other merges" for i in range(200)],
                        vocab_size=320, out_dir=foreign)
    with pytest.raises(DataError, match=rf"{foreign}/tokenizer.json is not the tokenizer {corpus['english']} was "
                                        rf"prepared with \({corpus['tokenizer']}/tokenizer.json\)"):
        setup_with(script_module, corpus, tmp_path / "run", tokenizer_dir=foreign)
    assert not (tmp_path / "run").exists()


def test_a_tokenizer_larger_than_the_model_is_refused(script_module, corpus, tmp_path):
    """The data's ids fit the model, the tokenizer's do not: what it generates would not fit either."""
    from lit_tiny.data.prepare import load_summary
    from lit_tiny.tokenizer import Tokenizer

    size = load_summary(corpus["english"])["max_token_id"] + 1
    tokens = Tokenizer(corpus["tokenizer"]).vocab_size
    assert size < tokens
    small = tmp_path / "small.yaml"
    small.write_text(Path(corpus["model"]).read_text().replace("vocab_size: 384", f"vocab_size: {size}"))
    with pytest.raises(DataError, match=rf"tokenizer.json has {tokens} tokens but the model's vocab_size is {size}"):
        script_module.setup(model=str(small), out_dir=tmp_path / "run", devices=1,
                            train=script_module.TrainArgs(global_batch_tokens=512, micro_batch_size=4, max_steps=2),
                            data=script_module.DataArgs(train_dirs=[corpus["english"]], weights=[1.0],
                                                        val_dirs=[corpus["val"]]))


def test_a_run_from_a_converted_hf_checkpoint_starts_from_exactly_its_weights(corpus, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from lit_tiny.config import Config
    from lit_tiny.hf_interop import config_to_hf, convert_from_hf

    config = Config.from_file(corpus["model"])
    torch.manual_seed(7)
    hf = LlamaForCausalLM(LlamaConfig.from_dict(config_to_hf(config)))
    hf.save_pretrained(tmp_path / "hf")
    for f in corpus["tokenizer"].iterdir():
        (tmp_path / "hf" / f.name).write_bytes(f.read_bytes())
    checkpoint = convert_from_hf(tmp_path / "hf", tmp_path / "converted")

    out = tmp_path / "run"
    result = run_script(train_args(corpus, out, "--devices", "1", "--train.max_steps", "1", "--train.log_interval", "1",
                                   "--initial_checkpoint_dir", str(checkpoint)))
    assert f"Initial weights from {checkpoint}" in result.stdout
    # The same first global batch: 4 micro batches of 4 sequences, seed 42, one process.
    loader = MixedLoader([Source(corpus["english"], 0.7), Source(corpus["code"], 0.3)], block_size=32, batch_size=4,
                         seed=42, num_workers=0)
    model = load_model(checkpoint).eval()
    batches = iter(loader)
    with torch.no_grad():
        losses = [model(b[:, :-1], targets=b[:, 1:]).item() for b in (next(batches) for _ in range(4))]
    assert train_losses(out)[1] == pytest.approx(sum(losses) / 4, abs=1e-5)


def test_initial_weights_of_another_shape_are_refused(script_module, corpus, tmp_path):
    from lit_tiny.checkpoint import save_checkpoint
    from lit_tiny.config import Config
    from lit_tiny.model import GPT
    from lit_tiny.tokenizer import Tokenizer

    wider = Config(**{**Config.from_file(corpus["model"]).__dict__, "n_embd": 64, "intermediate_size": 128})
    checkpoint = save_checkpoint(tmp_path / "wide", GPT(wider).state_dict(), wider, Tokenizer(corpus["tokenizer"]).files())
    data = script_module.DataArgs(train_dirs=[corpus["english"]], weights=[1.0], val_dirs=[corpus["val"]])
    with pytest.raises(ValueError, match=r"wide/model_config.yaml does not fit this run's model \(n_embd: 64 in the "
                                         r"checkpoint, 32 in this run; intermediate_size: 128 .*, 64 in this run\)"):
        script_module.setup(model=str(corpus["model"]), out_dir=tmp_path / "run", devices=1,
                            initial_checkpoint_dir=checkpoint, data=data,
                            train=script_module.TrainArgs(global_batch_tokens=512, micro_batch_size=4, max_steps=2))


# ------------------------------------------------------------------ one-line errors


def error_cases(corpus, tmp_path):
    states = tmp_path / "has_states"
    (states / "train_state" / "step-00000005").mkdir(parents=True)
    small = tmp_path / "small.yaml"
    small.write_text(Path(corpus["model"]).read_text().replace("vocab_size: 384", "vocab_size: 64"))
    data = ["--data.train_dirs", json.dumps([str(corpus["english"])]), "--data.weights", "[1.0]",
            "--data.val_dirs", json.dumps([str(corpus["val"])])]
    tiny = ["--model", str(corpus["model"]), "--devices", "1", "--train.global_batch_tokens", "512",
            "--train.micro_batch_size", "4", "--train.max_steps", "2"]
    return {
        "missing data folder": ([str(SCRIPT), *tiny, "--out_dir", str(tmp_path / "a"), "--data.train_dirs",
                                 json.dumps([str(tmp_path / "nowhere")]), "--data.weights", "[1.0]",
                                 "--data.val_dirs", json.dumps([str(corpus["val"])])], str(tmp_path / "nowhere")),
        "refused resume": ([str(SCRIPT), *tiny, *data, "--out_dir", str(states)], str(states)),
        "vocab mismatch": ([str(SCRIPT), *tiny[2:], "--model", str(small), *data, "--out_dir", str(tmp_path / "b")],
                           str(corpus["english"])),
        "batch that does not divide": ([str(SCRIPT), *tiny, "--train.micro_batch_size", "3", *data, "--out_dir",
                                        str(tmp_path / "c")], "micro_batch_size"),
        "missing checkpoint": ([str(REPO_ROOT / "eval" / "commonsense.py"), "--checkpoint_dir",
                                str(tmp_path / "no_checkpoint")], str(tmp_path / "no_checkpoint")),
        "missing raw data": ([str(REPO_ROOT / "pretrain" / "prepare_starcoder.py"), "--input_dir",
                              str(tmp_path / "no_download"), "--tokenizer_dir", str(corpus["tokenizer"])],
                             str(tmp_path / "no_download")),
        "missing hf config": (["-m", "lit_tiny", "convert_from_hf", "--hf_dir", str(tmp_path), "--out_dir",
                               str(tmp_path / "d")], str(tmp_path / "config.json")),
    }


@pytest.mark.parametrize("kind", ["missing data folder", "refused resume", "vocab mismatch",
                                  "batch that does not divide", "missing checkpoint", "missing raw data",
                                  "missing hf config"])
def test_expected_errors_are_one_line_naming_the_file(corpus, tmp_path, kind):
    command, named = error_cases(corpus, tmp_path)[kind]
    env = {k: v for k, v in os.environ.items() if k != "LIT_TINY_TRACEBACK"}
    result = subprocess.run([sys.executable, *command], cwd=REPO_ROOT, capture_output=True, text=True, env=env,
                            timeout=SAFETY_TIMEOUT_S)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and named in errors[0], result.stderr


def test_the_traceback_is_one_environment_variable_away(corpus, tmp_path):
    command, _ = error_cases(corpus, tmp_path)["missing checkpoint"]
    result = subprocess.run([sys.executable, *command], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**os.environ, "LIT_TINY_TRACEBACK": "1"}, timeout=SAFETY_TIMEOUT_S)
    assert result.returncode != 0 and "Traceback (most recent call last)" in result.stderr


# ------------------------------------------------------------------ what the demo leaves behind


def test_the_demo_ends_with_a_plot_tensorboard_settings_and_where_things_are(demo_dir, tmp_path):
    import yaml
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    demo = yaml.safe_load((REPO_ROOT / "configs" / "demo_cpu.yaml").read_text())
    assert demo["train"]["max_steps"] // demo["checkpoint"]["consolidated_interval"] >= 3  # a curve to evaluate

    out = tmp_path / "demo_run"
    result = run_script(["--config", str(REPO_ROOT / "configs" / "demo_cpu.yaml"), "--data.demo_dir", str(demo_dir),
                         "--out_dir", str(out), "--train.max_steps", "6", "--train.warmup_steps", "2",
                         "--eval.interval", "3", "--eval.max_sequences", "32", "--checkpoint.interval", "3",
                         "--checkpoint.consolidated_interval", "2"])
    with Image.open(out / "loss.png") as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 400
    accumulator = EventAccumulator(str(out / "logs"), size_guidance={"tensors": 0})
    accumulator.Reload()
    settings = accumulator.Tensors("settings/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "demo_dir:" in settings and "max_steps: 6" in settings and "lr: 0.003" in settings
    sample = accumulator.Tensors("sample/text_summary")[0].tensor_proto.string_val[0].decode()
    assert sample.startswith(demo["sample_prompt"])
    assert f"Sample from {out / 'checkpoints' / 'step-00000006'}:\n{sample}" in result.stdout
    assert [c.name for c in sorted((out / "checkpoints").iterdir())] == [f"step-0000000{s}" for s in (2, 4, 6)]
    tail = result.stdout.split(f"Outputs in {out}:")[1]
    for thing in ("checkpoints", "metrics.jsonl", "loss.png", f"tensorboard --logdir {out / 'logs'}",
                  f"python eval/training_run.py --run_dir {out}"):
        assert thing in tail, thing
    assert len([m for m in read_metrics(out) if "val_loss" in m]) == 2
