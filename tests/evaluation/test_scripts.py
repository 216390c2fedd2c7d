"""The eval/ scripts: thin command lines over lit_tiny.evaluation, wired to the right arguments."""

from __future__ import annotations

import ast
import json
import runpy
import subprocess
import sys

import pytest

from lit_tiny.evaluation.settings import HarnessSettings
from tests.conftest import REPO_ROOT
from tests.evaluation.conftest import BBH_SUBTASKS, MMLU_SUBJECTS

SCRIPTS = sorted((REPO_ROOT / "eval").glob("*.py"))


def test_every_script_has_a_cli_and_imports_no_other_script():
    assert {s.stem for s in SCRIPTS} >= {"commonsense", "mmlu", "humaneval", "bbh", "drop", "training_run"}
    for script in SCRIPTS:
        out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
        assert out.returncode == 0, out.stderr
        assert "--checkpoint_dir" in out.stdout or "--run_dir" in out.stdout
        imported = {
            (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
            for node in ast.walk(ast.parse(script.read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        assert imported <= {"pathlib", "typing", "jsonargparse", "lit_tiny"}, (script.name, imported)


def script_main(name: str):
    return runpy.run_path(str(REPO_ROOT / "eval" / f"{name}.py"))["main"]


@pytest.mark.parametrize(
    "name, kwargs, headline",
    [
        ("commonsense", {"tasks": ["arc_easy", "piqa"]}, "| ARC-e |"),
        ("mmlu", {"tasks": list(MMLU_SUBJECTS)}, "| mmlu_stem |"),
        ("bbh", {"tasks": list(BBH_SUBTASKS), "max_new_tokens": 8}, "| bbh_fewshot |"),
        ("drop", {"max_new_tokens": 8}, "| drop |"),
    ],
)
def test_suite_scripts_write_results_and_print_tables(
    tmp_path, checkpoint_dir, data_dir, capsys, name, kwargs, headline
):
    out_file = tmp_path / f"{name}.json"
    tasks = kwargs.pop("tasks", None)
    settings = HarnessSettings(limit=2, device="cpu", out_file=out_file, **kwargs)
    script_main(name)(checkpoint_dir, data_dir=data_dir, tasks=tasks, eval=settings)
    printed = capsys.readouterr().out
    assert headline in printed and "(paper)" in printed and f"Wrote {out_file}" in printed
    result = json.loads(out_file.read_text())
    assert result["suite"] == name and result["settings"]["limit"] == 2
    assert result["settings"]["task_source"] == "local files + upstream lm-eval task YAML"
    assert result["settings"]["model"]["checkpoint_dir"] == str(checkpoint_dir)


def test_humaneval_script_refuses_without_the_flag(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "eval" / "humaneval.py"), "--checkpoint_dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and "--allow_code_execution true" in out.stderr
