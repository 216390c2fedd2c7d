import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, import_script

SCRIPT = REPO_ROOT / "pretrain" / "benchmark.py"


@pytest.fixture(scope="module")
def benchmark():
    module = import_script(SCRIPT, "benchmark_script")
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)
    del sys.modules[module.__name__]


def test_benchmark_runs_both_models_and_writes_json(benchmark, tmp_path, capsys):
    out = tmp_path / "bench.json"
    report = benchmark.main(model="debug", micro_batch_size=2, seq_len=32, precision="32-true", warmup_steps=1,
                            rounds=2, steps_per_round=2, device="cpu", threads=1, out=out)
    printed = capsys.readouterr().out
    assert "lit_tiny / HF tokens/s ratio: " in printed and printed.count("x\n") >= 1

    data = json.loads(out.read_text())
    assert data["ratio_tokens_per_s"] == pytest.approx(report["ratio_tokens_per_s"])
    assert data["settings"]["precision"] == "32-true" and data["settings"]["seq_len"] == 32
    assert data["hf_attn_implementation"] == "sdpa"
    assert data["model_config"]["loss_backend"] == "chunked"
    for key in ("torch", "transformers", "device_name"):
        assert data["environment"][key]
    assert data["date"] and data["tokens_per_step"] == 64 and data["environment"]["torch_threads"] == 1
    assert set(data["results"]) == {"lit_tiny", "hf"}

    palm_flops_per_step = data["flops_per_token_palm"] * data["tokens_per_step"]
    for name, r in data["results"].items():
        assert len(r["rounds"]) == 2 and all(len(x["step_times_s"]) == 2 for x in r["rounds"]), name
        assert r["tokens_per_s"] > 0 and r["step_time_s"]["min"] <= r["step_time_s"]["median"], name
        assert r["mfu_palm"] is None  # no known peak FLOP/s for a CPU
        assert 0.7 < r["measured_flops_per_step"] / palm_flops_per_step < 1.5, name
        assert r["last_loss"] < r["first_loss"], f"{name} did not train"
    # Same weights and the same targets: both models start from the same loss.
    assert data["results"]["lit_tiny"]["first_loss"] == pytest.approx(data["results"]["hf"]["first_loss"], abs=1e-4)
    assert data["ratio_tokens_per_s"] == pytest.approx(
        data["results"]["lit_tiny"]["tokens_per_s"] / data["results"]["hf"]["tokens_per_s"])


def test_benchmark_mfu_with_a_given_peak_and_without_hf(benchmark, tmp_path, capsys):
    report = benchmark.main(model="debug", micro_batch_size=1, seq_len=16, precision="bf16-mixed", warmup_steps=0,
                            rounds=1, steps_per_round=2, compare_hf=False, peak_tflops=1.0, device="cpu", threads=1,
                            loss_backend="full", out=tmp_path / "b.json")
    assert "ratio" not in capsys.readouterr().out
    r = report["results"]["lit_tiny"]
    assert set(report["results"]) == {"lit_tiny"} and report["ratio_tokens_per_s"] is None
    assert r["mfu_palm"] == pytest.approx(r["tokens_per_s"] * report["flops_per_token_palm"] / 1e12)
    assert r["mfu_measured"] > 0


def test_benchmark_help():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    for flag in ("--model", "--micro_batch_size", "--seq_len", "--precision", "--compile", "--loss_backend",
                 "--attention_backend", "--out"):
        assert flag in result.stdout


@pytest.mark.gpu
def test_benchmark_on_gpu_offloads_the_idle_model(benchmark, tmp_path):
    report = benchmark.main(model="debug", micro_batch_size=2, seq_len=64, warmup_steps=1, rounds=2,
                            steps_per_round=2, device="cuda", out=tmp_path / "gpu.json")
    assert report["settings"]["precision"] == "bf16-mixed" and report["settings"]["offload_idle"] is True
    assert report["fused_adamw"] is True and report["memory_kind"] == "cuda_max_memory_allocated"
    for name, r in report["results"].items():
        assert r["others_resident_gb"] == 0, name  # the idle model waited in CPU memory
        assert r["peak_memory_gb"] > 0 and r["achieved_tflops_palm"] > 0, name
        assert r["last_loss"] < r["first_loss"], name
