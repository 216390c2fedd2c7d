"""``.ci/gpu``, the one-call GPU check, run as its CPU dry run: every stage at toy sizes through the same
commands, one report, stages that run alone, and the documented invocations."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, SAFETY_TIMEOUT_S

SCRIPT = REPO_ROOT / ".ci" / "gpu"
STAGES = ["bench", "pretrain", "tests", "max_batch", "loader"]


def gpu_check(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO_ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=SAFETY_TIMEOUT_S)


@pytest.fixture(scope="module")
def dry_run(demo_dir, tmp_path_factory) -> tuple[dict[str, str], dict]:
    root = tmp_path_factory.mktemp("gpu_check")
    env = {"GPU_CHECK_OUT": str(root / "out"), "GPU_CHECK_WORK": str(root / "work"), "GPU_CHECK_DATA": str(demo_dir),
           "GPU_CHECK_WHEELS": str(root / "no_wheels"), "PYTHON": sys.executable}
    result = gpu_check("--cpu-dry-run", env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    return env, json.loads((root / "out" / "report.json").read_text())


def test_the_dry_run_passes_every_stage_into_one_report(dry_run):
    env, report = dry_run
    assert report["mode"] == "cpu-dry-run" and report["environment"]["packages"]["torch"]
    assert {name: s["status"] for name, s in report["stages"].items()} == dict.fromkeys(STAGES, "passed")
    assert sorted(p.name for p in Path(env["GPU_CHECK_OUT"]).iterdir()) == ["gpu_check.log", "report.json"]

    tests = report["tests"]["counts"]
    assert tests["skipped"] > 0 and tests["failure"] == tests["error"] == 0  # no GPU here: all GPU tests skip

    bench = report["bench"]
    assert set(bench["results"]) == {"lit_tiny", "compiled", "sdpa_math", "hf"}
    assert bench["failures"] == {} and set(bench["ratios_to_hf"]) == set(bench["results"]) - {"hf"}
    assert bench["results"]["sdpa_math"]["attention_kernels"] == []
    assert all(r["last_loss"] < r["first_loss"] for r in bench["results"].values())

    pretrain = report["pretrain"]  # steps 1-4, a state, then a job resumed from it to step 6 (eager on a CPU)
    assert sorted(pretrain["losses"], key=int) == ["1", "2", "3", "4", "5", "6"]
    assert pretrain["resumed_from"].endswith("step-00000004") and pretrain["first_step_after_resume"] == 5
    assert sorted(pretrain["val_loss"], key=int) == ["2", "4", "6"] and pretrain["loss_continues"] is not None
    assert pretrain["state_files"] == 5 and pretrain["state_bytes"] > 0  # safetensors, meta.json, manifest.json
    assert pretrain["eager_job"]["tokens_per_s"] > 0 and pretrain["resumed_job"]["steps"] == [5, 6]
    assert pretrain["resumed_job_compiled"] is False

    search = report["max_batch"]["max_micro_batch"]
    assert search["probes"] and search["activation_checkpointing"] is False
    assert report["loader"]["batch_shape"] == [8, 2049] and report["loader"]["tokens_per_s_per_rank"] > 0
    assert set(report["goals"]) == {"tokens_per_s_best", "mfu_palm_best", "ratio_to_hf_eager_best",
                                    "peak_memory_gb_default"}


def test_a_stage_reruns_alone_and_the_report_keeps_the_others(dry_run):
    env, before = dry_run
    result = gpu_check("--cpu-dry-run", "--only", "loader", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "== stage loader" in result.stdout and "== stage bench" not in result.stdout
    after = json.loads((Path(env["GPU_CHECK_OUT"]) / "report.json").read_text())
    assert set(after["stages"]) == set(STAGES) and after["bench"] == before["bench"]
    assert after["stages"]["loader"]["started"] >= before["stages"]["loader"]["started"]


def test_bad_arguments_stop_before_anything_runs(tmp_path):
    env = {"GPU_CHECK_OUT": str(tmp_path / "out")}
    for args, message in ((["--only", "bench,nope"], "unknown stage nope"), (["--fast"], "unknown argument --fast")):
        result = gpu_check(*args, env=env)
        assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_the_gpu_mode_refuses_a_machine_without_a_gpu(tmp_path):
    env = {"GPU_CHECK_OUT": str(tmp_path / "out"), "GPU_CHECK_WORK": str(tmp_path / "work"), "PYTHON": sys.executable,
           "GPU_CHECK_WHEELS": str(tmp_path / "no_wheels")}
    result = gpu_check("--only", "bench", env=env)
    assert result.returncode == 2 and "no CUDA GPU is visible" in result.stderr and "--cpu-dry-run" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def documented_invocations() -> list[list[str]]:
    """The arguments of every ``bash .ci/gpu`` command in the ```bash blocks of README.md and tutorials/*.md."""
    from tests.test_docs import DOCUMENTS, documented_commands

    found = []
    for doc in DOCUMENTS:
        for _, argv in documented_commands(doc):
            while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
                argv = argv[1:]
            if argv[:2] == ["bash", ".ci/gpu"]:
                found.append(argv[2:])
    return found


def test_documented_invocations_are_valid():
    invocations = documented_invocations()
    assert [] in invocations and any("--cpu-dry-run" in args for args in invocations)
    for args in invocations:
        result = gpu_check(*args, "--help", env={})
        assert result.returncode == 0 and "Stages" in result.stdout, (args, result.stderr)
