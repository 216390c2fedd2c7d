"""Evaluation across a training run: every consolidated checkpoint of a run folder, scored and plotted.

A run folder (``lit_tiny.training.run_dir.RunDir``) holds ``checkpoints/step-XXXXXXXX/``: lit_tiny
checkpoint folders, each with ``progress.json`` = ``{"step": int, "tokens_seen": int}``.

Results go to ``<run_dir>/eval/``: one ``step-XXXXXXXX.json`` per checkpoint (the full results payload plus
the checkpoint's progress), ``commonsense.csv`` (one row per checkpoint: step, tokens seen, each task's
paper-column score and their average) and ``commonsense.png`` (score against tokens seen).

:func:`evaluate_run` scores whatever a run folder holds and skips checkpoints already scored with the
same settings, so it can be run again while training goes on; :func:`evaluate_checkpoint` scores one.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

from lit_tiny.devices import inference_dtype, resolve_device, resolve_precision
from lit_tiny.evaluation.harness import evaluate_suite, write_json
from lit_tiny.evaluation.local_tasks import commonsense_family
from lit_tiny.evaluation.plotting import plot_curve
from lit_tiny.evaluation.settings import HarnessSettings
from lit_tiny.files import atomic_write_text
from lit_tiny.training.run_dir import RunDir, read_progress

CURVE_NAME = "commonsense"


def evaluate_checkpoint(checkpoint_dir: Path, data_dir: Optional[Path], tasks: Optional[list[str]] = None,
                        settings: HarnessSettings = HarnessSettings(), results_dir: Optional[Path] = None,
                        update_curve: bool = True) -> dict:
    """Score one checkpoint on the zero-shot commonsense tasks and record it for the training curve.

    Writes ``<results_dir>/<checkpoint name>.json``, refreshes the CSV and PNG when ``update_curve`` is set,
    and returns the checkpoint's CSV row.

    Args:
        checkpoint_dir: ``<run_dir>/checkpoints/step-XXXXXXXX`` (with ``progress.json``).
        data_dir: Folder with the task data (tutorials/evaluation.md); None downloads from the hub.
        tasks: Some of the commonsense tasks (default: all seven).
        settings: How the checkpoint is run and scored (``out_file`` is not used: results go to ``results_dir``).
        results_dir: Where results go; default the run folder's ``eval/``.
        update_curve: Rewrite the CSV and PNG from all results in ``results_dir``.
    """
    import torch

    from lit_tiny.evaluation.adapter import LitTinyLM

    if results_dir is None:
        try:
            results_dir = RunDir.of_checkpoint(checkpoint_dir).eval_dir
        except ValueError as e:
            raise ValueError(f"{e}; pass results_dir explicitly") from None
    progress = read_progress(checkpoint_dir)
    lm = LitTinyLM.from_checkpoint(checkpoint_dir, device=settings.device, precision=settings.precision,
                                   batch_size=settings.batch_size, max_new_tokens=settings.max_new_tokens,
                                   seed=settings.seed)
    payload = evaluate_suite("commonsense", lm, replace(settings, num_fewshot=0), data_dir, tasks)
    del lm
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    payload["progress"] = {
        "step": progress.step,
        "tokens_seen": progress.tokens_seen,
        "checkpoint_dir": str(Path(checkpoint_dir).resolve()),
    }
    write_json(payload, results_dir / f"{Path(checkpoint_dir).name}.json")
    if update_curve:
        write_curve(results_dir)
    return curve_row(payload)


def curve_row(payload: dict) -> dict:
    """One CSV row: step, tokens seen, checkpoint, each task's paper-column score, average."""
    progress, summary = payload["progress"], payload["summary"]
    return {
        "step": progress["step"],
        "tokens_seen": progress["tokens_seen"],
        "checkpoint": progress["checkpoint_dir"],
        **{task: score["value"] for task, score in summary["scores"].items()},
        "average": summary["headline"]["value"],
    }


def comparable_settings(payload: dict) -> dict:
    """The settings two points of one curve must share (the data by content, not by path)."""
    s = payload["settings"]
    return {
        "tasks": s["tasks"],
        "limit": s["limit"],
        "num_fewshot": s["num_fewshot"],
        "dtype": s["model"]["model_dtype"],
        "data": {task: sorted(f["sha256"] for f in files) for task, files in s["data_files"].items()},
    }


def load_results(results_dir: Path) -> list[dict]:
    """Every checkpoint results payload in ``results_dir`` (files with a ``progress`` entry)."""
    payloads = []
    for file in sorted(Path(results_dir).glob("*.json")):
        if file.name.endswith(".samples.json"):
            continue
        payload = json.loads(file.read_text())
        if "progress" in payload:
            payload["file"] = str(file)
            payloads.append(payload)
    return payloads


def write_curve(results_dir: Path) -> tuple[Path, Path]:
    """Rewrite ``commonsense.csv`` and ``commonsense.png`` from the checkpoint results in ``results_dir``."""
    results_dir = Path(results_dir)
    payloads = load_results(results_dir)
    if not payloads:
        raise FileNotFoundError(f"{results_dir} holds no checkpoint results (step-*.json) to plot")
    reference = comparable_settings(payloads[0])
    different = [p["file"] for p in payloads if comparable_settings(p) != reference]
    if different:
        raise ValueError(
            f"{different} were evaluated with other settings than {payloads[0]['file']} ({reference}); "
            "re-evaluate them (evaluate_run with overwrite=True) or move them out of the way"
        )
    rows = sorted((curve_row(p) for p in payloads), key=lambda r: r["step"])
    tasks = reference["tasks"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["step", "tokens_seen", "checkpoint", *tasks, "average"])
    writer.writeheader()
    writer.writerows(rows)
    csv_file = results_dir / f"{CURVE_NAME}.csv"
    atomic_write_text(csv_file, buffer.getvalue())
    title = "Zero-shot commonsense (acc_norm where available) against tokens seen"
    png_file = plot_curve(rows, tasks, results_dir / f"{CURVE_NAME}.png", title)
    return csv_file, png_file


def evaluate_run(run_dir: Path, data_dir: Optional[Path], tasks: Optional[list[str]] = None,
                 steps: Optional[list[int]] = None, overwrite: bool = False,
                 settings: HarnessSettings = HarnessSettings()) -> tuple[Path, Path]:
    """Score every checkpoint of a run folder (or those at ``steps``), then write the CSV and PNG.

    Checkpoints whose results already exist with the same tasks, limit and dtype are skipped unless
    ``overwrite`` is set (if the data files changed since, :func:`write_curve` refuses to mix the two and
    asks for ``overwrite``). Returns the CSV and PNG paths.
    """
    run = RunDir(run_dir)
    checkpoints = run.checkpoints()
    if steps is not None:
        missing = sorted(set(steps) - {c.step for c in checkpoints})
        if missing:
            raise ValueError(f"{run.checkpoints_dir} has no checkpoints at steps {missing}")
        checkpoints = [c for c in checkpoints if c.step in set(steps)]
    dtype = inference_dtype(resolve_precision(settings.precision, resolve_device(settings.device), training=False))
    wanted = {
        "tasks": [s.task for s in commonsense_family(tasks).sources],
        "limit": settings.limit,
        "num_fewshot": 0,
        "dtype": str(dtype).removeprefix("torch."),
    }
    for i, checkpoint in enumerate(checkpoints):
        existing = run.eval_dir / f"{checkpoint.path.name}.json"
        if existing.is_file() and not overwrite:
            previous = comparable_settings(json.loads(existing.read_text()))
            if {k: previous[k] for k in wanted} == wanted:
                print(f"[{i + 1}/{len(checkpoints)}] {checkpoint.path.name}: already evaluated ({existing})")
                continue
        print(
            f"[{i + 1}/{len(checkpoints)}] {checkpoint.path.name}: step {checkpoint.step}, "
            f"{checkpoint.tokens_seen:,} tokens seen"
        )
        evaluate_checkpoint(checkpoint.path, data_dir, tasks, settings, run.eval_dir, update_curve=False)
    csv_file, png_file = write_curve(run.eval_dir)
    print(f"Wrote {csv_file} and {png_file}")
    return csv_file, png_file
