"""Run lm-eval suites on a lit_tiny model: offline task building, results JSON, tables beside the paper.

Suites:

* ``commonsense``: HellaSwag, OpenBookQA, WinoGrande, ARC-Challenge, ARC-Easy, BoolQ, PIQA; zero-shot;
  acc and acc_norm, the paper's column (acc_norm where the task has it, else acc) and their average.
* ``mmlu``: lm-eval's ``mmlu``, 5-shot, log-likelihood of " A" .. " D" (not InstructEval's generative MMLU).
* ``bbh``: lm-eval's ``bbh_fewshot``, 3 answer-only examples, greedy generation, exact match.
* ``drop``: lm-eval's ``drop``, 3-shot, greedy generation, exact match and F1.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from lit_tiny.checkpoint import atomic_write_text
from lit_tiny.evaluation.local_tasks import (
    TaskFamily,
    bbh_family,
    commonsense_family,
    drop_family,
    mmlu_family,
    use_offline_datasets,
    write_local_tasks,
)
from lit_tiny.evaluation.reference import (
    COMMONSENSE_LABELS,
    COMMONSENSE_REFERENCE,
    COMMONSENSE_TASKS,
    PROBLEM_SOLVING_METRICS,
    PROBLEM_SOLVING_REFERENCE,
)

Suite = Literal["commonsense", "mmlu", "bbh", "drop"]
MMLU_CATEGORIES = ("mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other")


@dataclass(frozen=True)
class EvalSettings:
    """How lm-eval runs; everything here is recorded in the results JSON.

    Args:
        data_dir: Folder with the task data (see tutorials/evaluation.md); None lets lm-eval download
            the datasets from the Hugging Face hub (needs network).
        num_fewshot: Examples in each prompt.
        limit: Evaluate only the first ``limit`` documents of each task (a fraction if below 1). For smoke tests.
        bootstrap_iters: Bootstrap resamples for the standard errors of non-mean metrics (0: skip all standard errors).
        seed: Seed of Python's, NumPy's and torch's generators, of the few-shot sampler and of sampling.
        log_samples: Also keep every request and response.
    """

    data_dir: Optional[Path]
    num_fewshot: int
    limit: Optional[float] = None
    bootstrap_iters: int = 100_000
    seed: int = 1234
    log_samples: bool = False


def suite_tasks(suite: Suite, tasks: Optional[list[str]] = None) -> tuple[TaskFamily, list[str]]:
    """The tasks to build locally and the names handed to lm-eval.

    ``tasks`` narrows the suite: commonsense task names, MMLU subjects (``abstract_algebra``) or BBH
    subtasks (``boolean_expressions``). MMLU and BBH are handed over as their group, which aggregates
    the subjects present.
    """
    if suite == "commonsense":
        family = commonsense_family(tasks)
        return family, [s.task for s in family.sources]
    if suite == "mmlu":
        return mmlu_family(tasks), ["mmlu"]
    if suite == "bbh":
        return bbh_family(tasks), ["bbh_fewshot"]
    if suite == "drop":
        if tasks not in (None, ["drop"]):
            raise ValueError(f"The drop suite has one task, 'drop'; got {tasks}")
        return drop_family(), ["drop"]
    raise ValueError(f"Unknown suite {suite!r}; choose one of commonsense, mmlu, bbh, drop")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hub_selection(family: TaskFamily, task_names: list[str]) -> None:
    """Refuse a subset of MMLU subjects or BBH subtasks on the hub, where the group name means all of them."""
    groups = {"mmlu": mmlu_family, "bbh_fewshot": bbh_family}
    if task_names[0] in groups and len(family.sources) != len(groups[task_names[0]]().sources):
        raise ValueError(
            f"Evaluating some of {task_names[0]}'s subtasks needs local data (data_dir): on the hub the group "
            f"'{task_names[0]}' always holds all of them"
        )


def run_lm_eval(lm, family: TaskFamily, task_names: list[str], settings: EvalSettings) -> tuple[dict, dict]:
    """lm-eval's ``simple_evaluate`` on ``lm``; returns its results and the data files read (path, sha256)."""
    kwargs: dict[str, Any] = dict(
        model=lm,
        tasks=task_names,
        num_fewshot=settings.num_fewshot,
        limit=settings.limit,
        bootstrap_iters=settings.bootstrap_iters,
        random_seed=settings.seed,
        numpy_random_seed=settings.seed,
        torch_random_seed=settings.seed,
        fewshot_random_seed=settings.seed,
        log_samples=settings.log_samples,
    )
    if settings.data_dir is not None:
        use_offline_datasets()
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    if settings.data_dir is None:
        check_hub_selection(family, task_names)
        return simple_evaluate(task_manager=TaskManager(), **kwargs), {}
    with tempfile.TemporaryDirectory(prefix="lit_tiny_tasks_") as work_dir:
        files = write_local_tasks([family], settings.data_dir, settings.num_fewshot, Path(work_dir))
        manager = TaskManager(include_path=work_dir, include_defaults=False)
        results = simple_evaluate(task_manager=manager, **kwargs)
    data_files = {task: [{"path": str(p), "sha256": sha256(p)} for p in paths] for task, paths in files.items()}
    return results, data_files


def metric(results: dict, name: str, key: str) -> Optional[float]:
    """A metric of a task or group from lm-eval's results (filter ``none``), or None."""
    value = results["results"].get(name, {}).get(f"{key},none")
    return None if value is None or value == "N/A" else float(value)


def summarize(suite: Suite, results: dict, task_names: list[str], num_fewshot: int) -> dict:
    """Scores in percent: ``{"metric": what they are, "scores": {row: {metric: value}}, "headline": ...}``."""
    if suite == "commonsense":
        scores = {}
        for task in task_names:
            acc, acc_norm = metric(results, task, "acc"), metric(results, task, "acc_norm")
            column = "acc_norm" if acc_norm is not None else "acc"
            scores[task] = {
                "paper_metric": column,
                "value": 100 * (acc_norm if acc_norm is not None else acc),
                "stderr": _percent(metric(results, task, f"{column}_stderr")),
                "acc": _percent(acc),
                "acc_stderr": _percent(metric(results, task, "acc_stderr")),
                "acc_norm": _percent(acc_norm),
                "acc_norm_stderr": _percent(metric(results, task, "acc_norm_stderr")),
                "n": results["n-samples"][task]["effective"],
            }
        average = sum(s["value"] for s in scores.values()) / len(scores)
        return {
            "metric": f"{num_fewshot}-shot; acc_norm where lm-eval has it (WinoGrande, BoolQ: acc); percent",
            "scores": scores,
            "headline": {"name": f"average of {len(scores)} tasks", "value": average},
        }
    if suite == "mmlu":
        names = ["mmlu", *(c for c in MMLU_CATEGORIES if c in results["results"])]
        scores = {
            n: {"acc": _percent(metric(results, n, "acc")), "acc_stderr": _percent(metric(results, n, "acc_stderr"))}
            for n in names
        }
        return {
            "metric": f"lm-eval mmlu, {num_fewshot}-shot, log-likelihood of ' A'..' D' (acc), percent; "
            "not InstructEval's generative MMLU",
            "scores": scores,
            "headline": {"name": "mmlu acc", "value": scores["mmlu"]["acc"]},
        }
    if suite == "bbh":
        subtasks = sorted(n for n in results["results"] if n.startswith("bbh_fewshot_"))
        scores = {n: {"exact_match": _percent(metric(results, n, "exact_match"))} for n in ["bbh_fewshot", *subtasks]}
        return {
            "metric": f"lm-eval bbh_fewshot, {num_fewshot}-shot answer-only examples, greedy, exact match, percent",
            "scores": scores,
            "headline": {"name": "bbh exact_match", "value": scores["bbh_fewshot"]["exact_match"]},
        }
    if suite == "drop":
        scores = {
            "drop": {"em": _percent(metric(results, "drop", "em")), "f1": _percent(metric(results, "drop", "f1"))}
        }
        return {
            "metric": f"lm-eval drop, {num_fewshot}-shot, greedy until '.', exact match and F1, percent",
            "scores": scores,
            "headline": {"name": "drop f1", "value": scores["drop"]["f1"]},
        }
    raise ValueError(f"Unknown suite {suite!r}")


def _percent(value: Optional[float]) -> Optional[float]:
    return None if value is None else 100 * value


def evaluate_suite(suite: Suite, lm, settings: EvalSettings, tasks: Optional[list[str]] = None) -> dict:
    """Evaluate ``lm`` on a suite; returns the results payload (summary, every setting, lm-eval's output)."""
    import lm_eval
    import torch

    family, task_names = suite_tasks(suite, tasks)
    results, data_files = run_lm_eval(lm, family, task_names, settings)
    payload = {
        "suite": suite,
        "summary": summarize(suite, results, task_names, settings.num_fewshot),
        "settings": {
            **asdict(settings),
            "data_dir": str(Path(settings.data_dir).resolve()) if settings.data_dir else None,
            "task_source": "local files + upstream lm-eval task YAML" if settings.data_dir else "Hugging Face hub",
            "tasks": task_names,
            "data_files": data_files,
            "lm_eval_version": lm_eval.__version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "seeds": {k: results["config"].get(k) for k in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")},
            "model": lm.get_model_info(),
            "command": sys.argv,
        },
        "lm_eval": {
            k: results.get(k)
            for k in (
                "results",
                "groups",
                "group_subtasks",
                "versions",
                "n-shot",
                "n-samples",
                "higher_is_better",
                "configs",
                "config",
                "git_hash",
                "date",
            )
        },
    }
    if settings.log_samples:
        payload["samples"] = results.get("samples", {})
    return payload


def to_json(payload: Any) -> str:
    from lm_eval.utils import handle_non_serializable

    return json.dumps(payload, indent=2, default=handle_non_serializable, ensure_ascii=False)


def write_json(payload: dict, out_file: Path) -> Path:
    """Write the payload atomically; samples, if any, go to ``<name>.samples.json`` beside it."""
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(payload)
    samples = payload.pop("samples", None)
    if samples is not None:
        atomic_write_text(out_file.with_suffix(".samples.json"), to_json(samples))
    atomic_write_text(out_file, to_json(payload))
    return out_file


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def format_report(payload: dict, model_name: str) -> str:
    """Markdown tables: our numbers beside the paper's reference rows, then the settings that matter."""
    suite, summary, settings = payload["suite"], payload["summary"], payload["settings"]
    scores = summary["scores"]
    parts = []
    if suite == "commonsense":
        header = ["model", *(COMMONSENSE_LABELS[t] for t in COMMONSENSE_TASKS), "avg"]
        ours = [model_name, *(scores[t]["value"] if t in scores else None for t in COMMONSENSE_TASKS)]
        ours.append(summary["headline"]["value"] if len(scores) == len(COMMONSENSE_TASKS) else None)
        rows = [ours] + [
            [f"{m} (paper)", *(ref[t] for t in COMMONSENSE_TASKS), ref["average"]]
            for m, ref in COMMONSENSE_REFERENCE.items()
        ]
        parts.append(markdown_table(header, rows))
        if len(scores) != len(COMMONSENSE_TASKS):
            parts.append(f"{summary['headline']['name']}: {summary['headline']['value']:.2f} (not comparable to avg)")
        detail = [
            [
                COMMONSENSE_LABELS[t],
                s["n"],
                s["acc"],
                s["acc_stderr"],
                s["acc_norm"],
                s["acc_norm_stderr"],
                s["paper_metric"],
            ]
            for t, s in scores.items()
        ]
        parts.append(markdown_table(["task", "n", "acc", "± se", "acc_norm", "± se", "paper column"], detail))
    else:
        columns = list(dict.fromkeys(k for row in scores.values() for k in row))
        parts.append(
            markdown_table([model_name, *columns], [[n, *(row.get(c) for c in columns)] for n, row in scores.items()])
        )
        reference = [[f"{m} (paper)", ref[suite]] for m, ref in PROBLEM_SOLVING_REFERENCE.items()]
        parts.append(markdown_table(["reference", PROBLEM_SOLVING_METRICS[suite]], reference))
    parts.append(f"ours: {summary['metric']}")
    model = settings["model"]
    parts.append(
        f"settings: {settings.get('num_fewshot', 0)}-shot, limit {settings['limit']}, "
        f"batch size {model['lit_tiny_batch_size']}, "
        f"{model['model_dtype']} on {model['model_device']}, seed {settings['seed']}"
        + (
            f", lm-eval {settings['lm_eval_version']}, data: {settings['task_source']}"
            if "lm_eval_version" in settings
            else ""
        )
    )
    return "\n\n".join(parts)


def run_suite(
    suite: Suite,
    checkpoint_dir: Path,
    settings: EvalSettings,
    tasks: Optional[list[str]] = None,
    batch_size: int = 8,
    device: str = "auto",
    dtype: str = "float32",
    max_gen_toks: int = 256,
    out_file: Optional[Path] = None,
) -> dict:
    """Load a checkpoint, evaluate a suite, write ``<checkpoint_dir>/eval/<suite>.json`` (or ``out_file``)
    and print the tables. Returns the payload."""
    from lit_tiny.evaluation.adapter import LitTinyLM

    checkpoint_dir = Path(checkpoint_dir)
    out_file = Path(out_file) if out_file else checkpoint_dir / "eval" / f"{suite}.json"
    lm = LitTinyLM.from_checkpoint(
        checkpoint_dir, device=device, dtype=dtype, batch_size=batch_size, max_gen_toks=max_gen_toks, seed=settings.seed
    )
    payload = evaluate_suite(suite, lm, settings, tasks)
    write_json(payload, out_file)
    print(format_report(payload, checkpoint_dir.name))
    print(f"\nWrote {out_file}")
    return payload
