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
    assert "lit_tiny / hf tokens/s: " in printed and printed.count("x\n") >= 1

    data = json.loads(out.read_text())
    assert data["ratios_to_hf"]["lit_tiny"] == pytest.approx(report["ratios_to_hf"]["lit_tiny"])
    assert data["settings"]["precision"] == "32-true" and data["settings"]["seq_len"] == 32
    assert data["settings"]["interleave"] is True  # the CPU default: rounds alternate
    assert data["hf_attn_implementation"] == "sdpa" and data["failures"] == {}
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
        assert r["attention_kernels"] == ["aten::_scaled_dot_product_flash_attention_for_cpu",
                                          "aten::_scaled_dot_product_flash_attention_for_cpu_backward"], name
    # Same weights and the same targets: both models start from the same loss.
    assert data["results"]["lit_tiny"]["first_loss"] == pytest.approx(data["results"]["hf"]["first_loss"], abs=1e-4)
    assert data["ratios_to_hf"]["lit_tiny"] == pytest.approx(
        data["results"]["lit_tiny"]["tokens_per_s"] / data["results"]["hf"]["tokens_per_s"])


def test_variants_one_after_another_with_a_forced_kernel(benchmark, tmp_path, capsys):
    variants = [benchmark.Variant("math", attention_backend="sdpa_math", loss_backend="full"),
                benchmark.Variant("default")]
    report = benchmark.main(model="debug", micro_batch_size=1, seq_len=16, precision="bf16-mixed", warmup_steps=0,
                            rounds=1, steps_per_round=2, variants=variants, interleave=False, peak_tflops=1.0,
                            device="cpu", threads=1, out=tmp_path / "b.json")
    assert "/ hf" not in capsys.readouterr().out and report["ratios_to_hf"] == {}
    math, default = report["results"]["math"], report["results"]["default"]
    assert math["variant"]["attention_backend"] == "sdpa_math" and math["attention_kernels"] == []
    assert default["attention_kernels"][0] == "aten::_scaled_dot_product_flash_attention_for_cpu"
    for r in (math, default):
        assert r["others_resident_gb"] == 0  # measured alone
        assert r["mfu_palm"] == pytest.approx(r["tokens_per_s"] * report["flops_per_token_palm"] / 1e12)
        assert r["mfu_measured"] > 0
    assert math["first_loss"] == pytest.approx(default["first_loss"], abs=2e-2)  # same weights, bf16 autocast


def test_a_failing_variant_is_recorded_and_the_others_still_run(benchmark, tmp_path):
    out = tmp_path / "b.json"
    variants = [benchmark.Variant("liger", kernel_backend="liger"), benchmark.Variant("lit_tiny")]
    with pytest.raises(benchmark.VariantsFailed, match=rf"1 of 2 variants failed \(liger\).*{out}"):
        benchmark.main(model="debug", micro_batch_size=1, seq_len=16, warmup_steps=0, rounds=1, steps_per_round=1,
                       variants=variants, device="cpu", threads=1, out=out)
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"lit_tiny"}
    assert data["failures"]["liger"].startswith("ValueError: Liger-kernel's Triton kernels run on CUDA GPUs")


def test_variants_are_checked_before_anything_runs(benchmark, tmp_path):
    hf_with_our_kernel = [benchmark.Variant("hf", implementation="hf", attention_backend="sdpa_math")]
    with pytest.raises(ValueError, match="'hf' sets attention_backend, which only lit_tiny has"):
        benchmark.main(variants=hf_with_our_kernel, device="cpu", out=tmp_path / "b.json")
    with pytest.raises(ValueError, match="names must be unique"):
        benchmark.main(variants=[benchmark.Variant("a"), benchmark.Variant("a")], device="cpu", out=tmp_path / "b.json")
    with pytest.raises(ValueError, match="--max_memory_gb"):
        benchmark.main(search_max_micro_batch=True, device="cpu", out=tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()


def test_search_finds_the_largest_micro_batch_under_a_memory_limit(benchmark, tmp_path, capsys):
    """On a CPU the limit is on the process's peak memory; each probe is one real training step."""
    def search(limit: float) -> dict:
        return benchmark.main(model="debug", micro_batch_size=4, seq_len=64, precision="32-true", device="cpu",
                              threads=1, search_max_micro_batch=True, max_memory_gb=limit,
                              out=tmp_path / "s.json")["max_micro_batch"]

    nothing = search(0.0)
    assert nothing["largest_micro_batch"] == 0 and [p["micro_batch_size"] for p in nothing["probes"]] == [4, 2, 1]
    limit = nothing["probes"][-1]["peak_memory_gb"] + 0.1  # room for a few sequences of 64 tokens
    found = search(limit)
    largest = found["largest_micro_batch"]
    fits = {p["micro_batch_size"]: p["fits"] for p in found["probes"]}
    assert largest >= 1 and fits[largest] and not fits.get(largest + 1, False), found["probes"]
    assert all(p["peak_memory_gb"] <= limit for p in found["probes"] if p["fits"])
    assert any(not p["fits"] for p in found["probes"])  # the search went past the limit once, at least
    assert f"largest micro batch that fits without activation checkpointing: {largest} x 64" in capsys.readouterr().out


def test_benchmark_help():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    for flag in ("--model", "--micro_batch_size", "--seq_len", "--precision", "--variants", "--interleave",
                 "--search_max_micro_batch", "--max_memory_gb", "--out"):
        assert flag in result.stdout


@pytest.mark.gpu
def test_benchmark_on_gpu_measures_each_variant_alone(benchmark, tmp_path):
    report = benchmark.main(model="debug", micro_batch_size=2, seq_len=64, warmup_steps=1, rounds=2,
                            steps_per_round=2, device="cuda", out=tmp_path / "gpu.json")
    assert report["settings"]["precision"] == "bf16-mixed" and report["settings"]["interleave"] is False
    assert report["memory_kind"] == "cuda_max_memory_allocated"
    for name, r in report["results"].items():
        assert r["fused_adamw"] is True, name
        assert r["others_resident_gb"] == 0, name  # nothing else on the device meanwhile
        assert r["peak_memory_gb"] > 0 and r["achieved_tflops_palm"] > 0, name
        assert r["attention_kernels"], name  # a fused SDPA kernel ran
        assert r["last_loss"] < r["first_loss"], name
