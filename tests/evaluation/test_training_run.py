"""Evaluation across a training run: run-folder discovery, the pretraining hook, CSV and PNG."""

from __future__ import annotations

import csv
import json

import pytest

from lit_tiny.evaluation.settings import HarnessSettings
from lit_tiny.evaluation.training_run import evaluate_checkpoint, evaluate_run, write_curve
from lit_tiny.training.run_dir import RunDir, read_progress
from tests.evaluation.conftest import save_tiny_checkpoint

TASKS = ["arc_easy", "boolq"]


def make_run(run_dir, config, tokenizer_dir, steps=(2000, 1000)):
    """A run folder as pretraining writes it (checkpoints saved out of order on purpose)."""
    for i, step in enumerate(steps):
        folder = save_tiny_checkpoint(run_dir / "checkpoints" / f"step-{step:08d}", config, tokenizer_dir, seed=i)
        (folder / "progress.json").write_text(json.dumps({"step": step, "tokens_seen": step * 4096}))
    return run_dir


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_evaluate_run_writes_one_row_per_checkpoint_and_a_plot(tmp_path, eval_config, tokenizer_dir, data_dir, capsys):
    run = make_run(tmp_path / "run", eval_config, tokenizer_dir)
    csv_file, png_file = evaluate_run(run, data_dir, tasks=TASKS, settings=HarnessSettings(device="cpu", limit=3))
    assert csv_file == run / "eval" / "commonsense.csv"
    rows = read_csv(csv_file)
    assert [r["step"] for r in rows] == ["1000", "2000"]
    assert [r["tokens_seen"] for r in rows] == ["4096000", "8192000"]
    assert list(rows[0]) == ["step", "tokens_seen", "checkpoint", *TASKS, "average"]
    for row in rows:
        result = json.loads((run / "eval" / f"{row['checkpoint'].rsplit('/', 1)[1]}.json").read_text())
        scores = result["summary"]["scores"]
        assert float(row["arc_easy"]) == pytest.approx(scores["arc_easy"]["acc_norm"])
        assert float(row["boolq"]) == pytest.approx(scores["boolq"]["acc"])
        assert float(row["average"]) == pytest.approx((float(row["arc_easy"]) + float(row["boolq"])) / 2)
        assert result["progress"]["step"] == int(row["step"]) and result["settings"]["limit"] == 3
    assert png_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_file.stat().st_size > 10_000

    # Run again: both checkpoints are already scored with these settings and are skipped.
    before = {p: p.stat().st_mtime_ns for p in (run / "eval").glob("step-*.json")}
    evaluate_run(run, data_dir, tasks=TASKS, settings=HarnessSettings(device="cpu", limit=3))
    assert "already evaluated" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in (run / "eval").glob("step-*.json")}


def test_pretraining_hook_scores_one_checkpoint_and_refreshes_the_curve(tmp_path, eval_config, tokenizer_dir, data_dir):
    run = make_run(tmp_path / "run", eval_config, tokenizer_dir, steps=(500,))
    row = evaluate_checkpoint(run / "checkpoints" / "step-00000500", data_dir, tasks=TASKS,
                              settings=HarnessSettings(device="cpu", limit=2))
    assert (row["step"], row["tokens_seen"]) == (500, 500 * 4096)
    assert [r["step"] for r in read_csv(run / "eval" / "commonsense.csv")] == ["500"]
    assert (run / "eval" / "commonsense.png").is_file() and (run / "eval" / "step-00000500.json").is_file()


def test_results_with_different_settings_are_not_mixed_in_one_curve(tmp_path, eval_config, tokenizer_dir, data_dir):
    run = make_run(tmp_path / "run", eval_config, tokenizer_dir)
    evaluate_run(run, data_dir, tasks=TASKS, steps=[1000], settings=HarnessSettings(device="cpu", limit=2))
    with pytest.raises(
        ValueError, match=r"step-00002000\.json'\] were evaluated with other settings than .*step-00001000\.json"
    ):
        evaluate_run(run, data_dir, tasks=TASKS, steps=[2000], settings=HarnessSettings(device="cpu", limit=3))
    evaluate_run(run, data_dir, tasks=TASKS, overwrite=True, settings=HarnessSettings(device="cpu", limit=3))
    assert len(read_csv(run / "eval" / "commonsense.csv")) == 2


def test_progress_and_layout_errors_name_the_file_and_the_fix(tmp_path, eval_config, tokenizer_dir):
    with pytest.raises(FileNotFoundError, match=r"run/checkpoints does not exist"):
        RunDir(tmp_path / "run").checkpoints()
    folder = save_tiny_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000010", eval_config, tokenizer_dir)
    with pytest.raises(FileNotFoundError, match=r"step-00000010/progress\.json is missing.*\"tokens_seen\": int"):
        RunDir(tmp_path / "run").checkpoints()
    (folder / "progress.json").write_text('{"step": 10, "tokens_seen": "many"}')
    with pytest.raises(ValueError, match=r"'tokens_seen' must be a non-negative integer, got 'many'"):
        read_progress(folder)
    (folder / "progress.json").write_text("{")
    with pytest.raises(ValueError, match=r"progress\.json is not valid JSON"):
        read_progress(folder)
    with pytest.raises(FileNotFoundError, match="holds no checkpoint results"):
        write_curve(tmp_path / "run" / "eval")
    with pytest.raises(ValueError, match="pass results_dir explicitly"):
        evaluate_checkpoint(tmp_path / "elsewhere", None)
