"""Evaluation across a training run: every checkpoint of a run folder, or one checkpoint as training goes.

Run-folder contract (written by pretraining)::

    <run_dir>/checkpoints/step-00001000/   a lit_tiny checkpoint folder (model.safetensors, model_config.yaml,
                                            tokenizer files) plus progress.json = {"step": int, "tokens_seen": int}

Results go to ``<run_dir>/eval/``: one ``step-XXXXXXXX.json`` per checkpoint (the full results payload plus
the checkpoint's progress), ``commonsense.csv`` (one row per checkpoint: step, tokens seen, each task's
paper-column score and their average) and ``commonsense.png`` (score against tokens seen).

Pretraining calls :func:`evaluate_checkpoint` with each checkpoint folder it wants scored (on one rank);
:func:`evaluate_run` scores whatever a run folder holds and skips checkpoints already scored with the
same settings.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lit_tiny.checkpoint import atomic_write_text
from lit_tiny.evaluation.harness import EvalSettings, evaluate_suite, write_json
from lit_tiny.evaluation.local_tasks import commonsense_family
from lit_tiny.evaluation.plotting import plot_curve

PROGRESS_FILE = "progress.json"
PROGRESS_SCHEMA = '{"step": int, "tokens_seen": int}'
CURVE_NAME = "commonsense"


@dataclass(frozen=True)
class CheckpointProgress:
    path: Path
    step: int
    tokens_seen: int


def read_progress(checkpoint_dir: Path) -> CheckpointProgress:
    """Step and tokens seen of a checkpoint, from its ``progress.json``."""
    file = Path(checkpoint_dir) / PROGRESS_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} is missing: a checkpoint of a training run holds {PROGRESS_FILE} = {PROGRESS_SCHEMA}, "
            "which pretraining writes beside the weights"
        )
    try:
        progress = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{file} is not valid JSON ({e}); it should hold {PROGRESS_SCHEMA}") from e
    values = {}
    for key in ("step", "tokens_seen"):
        value = progress.get(key) if isinstance(progress, dict) else None
        if type(value) is not int or value < 0:
            raise ValueError(
                f"{file}: {key!r} must be a non-negative integer, got {value!r}; expected {PROGRESS_SCHEMA}"
            )
        values[key] = value
    return CheckpointProgress(Path(checkpoint_dir), values["step"], values["tokens_seen"])


def find_checkpoints(run_dir: Path) -> list[CheckpointProgress]:
    """Every ``<run_dir>/checkpoints/step-*`` folder with its progress, by step."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: a run folder holds checkpoints/step-XXXXXXXX/ folders")
    found = [read_progress(d) for d in sorted(folder.glob("step-*")) if d.is_dir()]
    if not found:
        raise FileNotFoundError(f"{folder} holds no step-XXXXXXXX checkpoint folders")
    return sorted(found, key=lambda c: c.step)


def default_results_dir(checkpoint_dir: Path) -> Path:
    """``<run_dir>/eval`` for ``<run_dir>/checkpoints/<name>``."""
    checkpoint_dir = Path(checkpoint_dir).resolve()
    if checkpoint_dir.parent.name != "checkpoints":
        raise ValueError(
            f"{checkpoint_dir} is not inside a run folder's checkpoints/ folder; pass results_dir explicitly"
        )
    return checkpoint_dir.parent.parent / "eval"


def evaluate_checkpoint(
    checkpoint_dir: Path,
    data_dir: Optional[Path],
    tasks: Optional[list[str]] = None,
    results_dir: Optional[Path] = None,
    batch_size: int = 8,
    device: str = "auto",
    dtype: str = "float32",
    limit: Optional[float] = None,
    seed: int = 1234,
    update_curve: bool = True,
) -> dict:
    """Score one checkpoint on the zero-shot commonsense tasks and record it for the training curve.

    This is the function pretraining calls (from one rank) after saving a checkpoint. It loads the
    checkpoint onto ``device`` next to the training model, writes ``<results_dir>/<checkpoint name>.json``,
    refreshes the CSV and PNG when ``update_curve`` is set, and returns the checkpoint's CSV row.

    Args:
        checkpoint_dir: ``<run_dir>/checkpoints/step-XXXXXXXX`` (with ``progress.json``).
        data_dir: Folder with the task data (tutorials/evaluation.md); None downloads from the hub.
        tasks: Some of the commonsense tasks (default: all seven).
        results_dir: Where results go; default ``<run_dir>/eval``.
        batch_size: Sequences per forward pass.
        device: cpu, cuda, cuda:1, or auto.
        dtype: float32, bfloat16 or float16.
        limit: Documents per task (a fraction if below 1); None evaluates all.
        seed: lm-eval's seeds.
        update_curve: Rewrite the CSV and PNG from all results in ``results_dir``.
    """
    import torch

    from lit_tiny.evaluation.adapter import LitTinyLM

    results_dir = Path(results_dir) if results_dir else default_results_dir(checkpoint_dir)
    progress = read_progress(checkpoint_dir)
    settings = EvalSettings(data_dir=data_dir, num_fewshot=0, limit=limit, seed=seed)
    lm = LitTinyLM.from_checkpoint(checkpoint_dir, device=device, dtype=dtype, batch_size=batch_size, seed=seed)
    payload = evaluate_suite("commonsense", lm, settings, tasks)
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


def evaluate_run(
    run_dir: Path,
    data_dir: Optional[Path],
    tasks: Optional[list[str]] = None,
    steps: Optional[list[int]] = None,
    overwrite: bool = False,
    batch_size: int = 8,
    device: str = "auto",
    dtype: str = "float32",
    limit: Optional[float] = None,
    seed: int = 1234,
) -> tuple[Path, Path]:
    """Score every checkpoint of a run folder (or those at ``steps``), then write the CSV and PNG.

    Checkpoints whose results already exist with the same tasks, limit and dtype are skipped unless
    ``overwrite`` is set (if the data files changed since, :func:`write_curve` refuses to mix the two and
    asks for ``overwrite``). Returns the CSV and PNG paths.
    """
    checkpoints = find_checkpoints(run_dir)
    if steps is not None:
        missing = sorted(set(steps) - {c.step for c in checkpoints})
        if missing:
            raise ValueError(f"{Path(run_dir) / 'checkpoints'} has no checkpoints at steps {missing}")
        checkpoints = [c for c in checkpoints if c.step in set(steps)]
    results_dir = Path(run_dir) / "eval"
    wanted = {
        "tasks": [s.task for s in commonsense_family(tasks).sources],
        "limit": limit,
        "num_fewshot": 0,
        "dtype": dtype,
    }
    for i, checkpoint in enumerate(checkpoints):
        existing = results_dir / f"{checkpoint.path.name}.json"
        if existing.is_file() and not overwrite:
            previous = comparable_settings(json.loads(existing.read_text()))
            if {k: previous[k] for k in wanted} == wanted:
                print(f"[{i + 1}/{len(checkpoints)}] {checkpoint.path.name}: already evaluated ({existing})")
                continue
        print(
            f"[{i + 1}/{len(checkpoints)}] {checkpoint.path.name}: step {checkpoint.step}, "
            f"{checkpoint.tokens_seen:,} tokens seen"
        )
        evaluate_checkpoint(
            checkpoint.path, data_dir, tasks, results_dir, batch_size, device, dtype, limit, seed, update_curve=False
        )
    csv_file, png_file = write_curve(results_dir)
    print(f"Wrote {csv_file} and {png_file}")
    return csv_file, png_file
