"""Run lm-eval suites on a lit_tiny model: offline task building, results JSON, tables beside the paper.

Each suite is one entry of :data:`SUITES`: which tasks it holds (narrowed by the scripts' ``--tasks``),
what lm-eval is handed, the shots the paper used, the scores reported per row, the headline number, and
the paper's rows (:data:`REPORTS`, which HumanEval shares). Adding a suite is adding an entry.

* ``commonsense``: HellaSwag, OpenBookQA, WinoGrande, ARC-Challenge, ARC-Easy, BoolQ, PIQA; zero-shot;
  acc and acc_norm, the paper's column (acc_norm where the task has it, else acc) and their average.
* ``mmlu``: lm-eval's ``mmlu``, 5-shot, log-likelihood of " A" .. " D" (not InstructEval's generative MMLU).
* ``bbh``: lm-eval's ``bbh_fewshot``, 3 answer-only examples, greedy generation, exact match.
* ``drop``: lm-eval's ``drop``, 3-shot, greedy generation, exact match and F1.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

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
from lit_tiny.evaluation.settings import HarnessSettings
from lit_tiny.files import atomic_write_text, sha256_file


@dataclass(frozen=True)
class Column:
    """A score reported for every row: the first of ``metrics`` that lm-eval has for the row, in percent.

    ``stderr`` names the key of that metric's standard error, ``chosen`` the key naming the metric used."""

    name: str
    metrics: tuple[str, ...]
    stderr: Optional[str] = None
    chosen: Optional[str] = None


@dataclass(frozen=True)
class Report:
    """What the paper reports for a suite, printed beside ours.

    Args:
        metric: The paper's metric, as a table header.
        columns: The paper's columns (keys of ``rows``), in order.
        rows: Model name to its numbers (percent).
        labels: Display names of columns and of our rows.
        our_column: When ours is the same metric, the column of our rows that the paper's columns hold
            (``average``: our headline); our row then joins the paper's table.
    """

    metric: str
    columns: tuple[str, ...]
    rows: dict[str, dict[str, float]]
    labels: dict[str, str]
    our_column: Optional[str] = None


@dataclass(frozen=True)
class Suite:
    """One lm-eval suite.

    Args:
        name: The suite's name (results file, ``--suite``).
        family: The tasks to build locally, narrowed by ``--tasks`` (task names, MMLU subjects, BBH subtasks).
        group: lm-eval group handed over instead of the leaf tasks (it aggregates the subtasks present).
        subgroups: Groups under ``group`` reported as rows when present (MMLU's categories).
        report_leaves: Report every leaf task as a row.
        num_fewshot: The paper's shots (``--eval.num_fewshot`` overrides).
        description: What the scores are, with ``{shots}`` for the shots used.
        columns: The scores of each row.
        headline: (row, column) of the one number; row ``average`` averages the column over the rows.
        report: The paper's numbers.
        summary: What the suite's script prints (its ``--help``).
        data_layout: The files it reads under ``data_dir``.
        task_names: What ``--tasks`` selects, with an example.
    """

    name: str
    family: Callable[[Optional[list[str]]], TaskFamily]
    group: Optional[str]
    subgroups: tuple[str, ...]
    report_leaves: bool
    num_fewshot: int
    description: str
    columns: tuple[Column, ...]
    headline: tuple[str, str]
    report: Report
    summary: str
    data_layout: str
    task_names: str


def problem_solving_report(suite: str) -> Report:
    return Report(PROBLEM_SOLVING_METRICS[suite], (suite,),
                  {model: {suite: scores[suite]} for model, scores in PROBLEM_SOLVING_REFERENCE.items()}, {})


COMMONSENSE_REPORT = Report(
    "zero-shot, lm-evaluation-harness, acc_norm where it exists (WinoGrande, BoolQ: acc)",
    (*COMMONSENSE_TASKS, "average"), COMMONSENSE_REFERENCE, {**COMMONSENSE_LABELS, "average": "avg"},
    our_column="value")

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite("commonsense", commonsense_family, None, (), True, 0,
              "{shots}-shot; acc_norm where lm-eval has it (WinoGrande, BoolQ: acc); percent",
              (Column("value", ("acc_norm", "acc"), stderr="stderr", chosen="paper_metric"),
               Column("acc", ("acc",), stderr="acc_stderr"),
               Column("acc_norm", ("acc_norm",), stderr="acc_norm_stderr")),
              ("average", "value"), COMMONSENSE_REPORT,
              "Print acc, acc_norm, the paper's column and the average beside the paper's rows; write a results JSON.",
              "one subfolder per task (tutorials/evaluation.md lists files and schemas)",
              "some of hellaswag, openbookqa, winogrande, arc_challenge, arc_easy, boolq, piqa (default: all)"),
        Suite("mmlu", mmlu_family, "mmlu", ("mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other"),
              False, 5, "lm-eval mmlu, {shots}-shot, log-likelihood of ' A'..' D' (acc), percent; "
              "not InstructEval's generative MMLU",
              (Column("acc", ("acc",), stderr="acc_stderr"),), ("mmlu", "acc"), problem_solving_report("mmlu"),
              "Print MMLU accuracy (overall and per category) beside the paper's rows; write a results JSON.",
              "mmlu/<subject>/test.jsonl and dev.jsonl (tutorials/evaluation.md)",
              "some of the 57 subjects, e.g. abstract_algebra anatomy (default: all)"),
        Suite("bbh", bbh_family, "bbh_fewshot", (), True, 3,
              "lm-eval bbh_fewshot, {shots}-shot answer-only examples, greedy, exact match, percent",
              (Column("exact_match", ("exact_match",)),), ("bbh_fewshot", "exact_match"), problem_solving_report("bbh"),
              "Print exact match (overall and per subtask) beside the paper's rows; write a results JSON.",
              "bbh/<subtask>/test.jsonl (tutorials/evaluation.md)",
              "some of the 27 subtasks, e.g. boolean_expressions navigate (default: all)"),
        Suite("drop", drop_family, None, (), True, 3,
              "lm-eval drop, {shots}-shot, greedy until '.', exact match and F1, percent",
              (Column("em", ("em",)), Column("f1", ("f1",))), ("drop", "f1"), problem_solving_report("drop"),
              "Print exact match and F1 beside the paper's rows; write a results JSON.",
              "drop/validation.jsonl and drop/train.jsonl (tutorials/evaluation.md)", "drop, its one task (default)"),
    )
}
REPORTS: dict[str, Report] = {**{name: s.report for name, s in SUITES.items()},
                              "humaneval": problem_solving_report("humaneval")}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"Unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return SUITES[name]


def check_hub_selection(suite: Suite, family: TaskFamily) -> None:
    """Refuse a subset of MMLU subjects or BBH subtasks on the hub, where the group name means all of them."""
    if suite.group is not None and len(family.sources) != len(suite.family(None).sources):
        raise ValueError(
            f"Evaluating some of {suite.group}'s subtasks needs local data (data_dir): on the hub the group "
            f"'{suite.group}' always holds all of them"
        )


def run_lm_eval(lm, suite: Suite, family: TaskFamily, settings: HarnessSettings, num_fewshot: int,
                data_dir: Optional[Path]) -> tuple[dict, dict]:
    """lm-eval's ``simple_evaluate`` on ``lm``; returns its results and the data files read (path, sha256)."""
    task_names = [suite.group] if suite.group else [s.task for s in family.sources]
    kwargs: dict[str, Any] = dict(
        model=lm,
        tasks=task_names,
        num_fewshot=num_fewshot,
        limit=settings.limit,
        bootstrap_iters=settings.bootstrap_iters,
        random_seed=settings.seed,
        numpy_random_seed=settings.seed,
        torch_random_seed=settings.seed,
        fewshot_random_seed=settings.seed,
        log_samples=settings.log_samples,
    )
    if data_dir is not None:
        use_offline_datasets()
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    if data_dir is None:
        check_hub_selection(suite, family)
        return simple_evaluate(task_manager=TaskManager(), **kwargs), {}
    with tempfile.TemporaryDirectory(prefix="lit_tiny_tasks_") as work_dir:
        files = write_local_tasks([family], data_dir, num_fewshot, Path(work_dir))
        manager = TaskManager(include_path=work_dir, include_defaults=False)
        results = simple_evaluate(task_manager=manager, **kwargs)
    data_files = {task: [{"path": str(p), "sha256": sha256_file(p)} for p in paths] for task, paths in files.items()}
    return results, data_files


def metric(results: dict, name: str, key: str) -> Optional[float]:
    """A metric of a task or group from lm-eval's results (filter ``none``), or None."""
    value = results["results"].get(name, {}).get(f"{key},none")
    return None if value is None or value == "N/A" else float(value)


def summarize(suite: Suite, results: dict, family: TaskFamily, num_fewshot: int) -> dict:
    """Scores in percent: ``{"metric": what they are, "scores": {row: {column: value}}, "headline": ...}``."""
    rows = []
    if suite.group:
        rows += [suite.group, *(g for g in suite.subgroups if g in results["results"])]
    if suite.report_leaves:
        rows += sorted(s.task for s in family.sources) if suite.group else [s.task for s in family.sources]
    scores = {}
    for row in rows:
        entry: dict[str, Any] = {}
        for column in suite.columns:
            chosen = next((m for m in column.metrics if metric(results, row, m) is not None), column.metrics[0])
            entry[column.name] = _percent(metric(results, row, chosen))
            if column.stderr:
                entry[column.stderr] = _percent(metric(results, row, f"{chosen}_stderr"))
            if column.chosen:
                entry[column.chosen] = chosen
        if row in results.get("n-samples", {}):
            entry["n"] = results["n-samples"][row]["effective"]
        scores[row] = entry
    row, column = suite.headline
    if row == "average":
        average = sum(s[column] for s in scores.values()) / len(scores)
        headline = {"name": f"average of {len(scores)} tasks", "value": average}
    else:
        headline = {"name": f"{row} {column}", "value": scores[row][column]}
    return {"metric": suite.description.format(shots=num_fewshot), "scores": scores, "headline": headline}


def _percent(value: Optional[float]) -> Optional[float]:
    return None if value is None else 100 * value


def evaluate_suite(suite_name: str, lm, settings: HarnessSettings, data_dir: Optional[Path],
                   tasks: Optional[list[str]] = None) -> dict:
    """Evaluate ``lm`` on a suite; returns the results payload (summary, every setting, lm-eval's output).
    ``data_dir=None`` lets lm-eval download the datasets from the Hugging Face hub."""
    import lm_eval
    import torch

    suite = get_suite(suite_name)
    family = suite.family(tasks)
    num_fewshot = suite.num_fewshot if settings.num_fewshot is None else settings.num_fewshot
    results, data_files = run_lm_eval(lm, suite, family, settings, num_fewshot, data_dir)
    payload = {
        "suite": suite.name,
        "summary": summarize(suite, results, family, num_fewshot),
        "settings": {
            **asdict(settings),
            "num_fewshot": num_fewshot,
            "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            "task_source": "local files + upstream lm-eval task YAML" if data_dir else "Hugging Face hub",
            "tasks": [s.task for s in family.sources],
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
            for k in ("results", "groups", "group_subtasks", "versions", "n-shot", "n-samples", "higher_is_better",
                      "configs", "config", "git_hash", "date")
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
    """Markdown tables: our scores, the paper's rows (ours among them when the metric is the same), then
    the settings that matter."""
    report, summary, settings = REPORTS[payload["suite"]], payload["summary"], payload["settings"]
    scores, headline = summary["scores"], summary["headline"]
    labels = report.labels
    parts = []
    paper = [[f"{model} (paper)", *(numbers.get(c) for c in report.columns)] for model, numbers in report.rows.items()]
    header = [labels.get(c, c) for c in report.columns]
    if report.our_column is not None:
        tasks = [c for c in report.columns if c != "average"]
        complete = all(c in scores for c in tasks)
        ours = [model_name, *(scores[c][report.our_column] if c in scores else None for c in tasks)]
        parts.append(markdown_table(["model", *header], [ours + [headline["value"] if complete else None]] + paper))
        if not complete:
            parts.append(f"{headline['name']}: {headline['value']:.2f} (not comparable to avg)")
    keys = list(dict.fromkeys(k for row in scores.values() for k in row))
    parts.append(markdown_table([model_name, *keys], [[labels.get(n, n), *(row.get(k) for k in keys)]
                                                      for n, row in scores.items()]))
    if report.our_column is None:
        parts.append(markdown_table(["reference", report.metric], paper))
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


def run_suite(suite_name: str, checkpoint_dir: Path, data_dir: Optional[Path], tasks: Optional[list[str]],
              settings: HarnessSettings) -> dict:
    """Load a checkpoint, evaluate a suite, write ``<checkpoint_dir>/eval/<suite>.json`` (or
    ``settings.out_file``) and print the tables. Returns the payload."""
    from lit_tiny.evaluation.adapter import LitTinyLM

    checkpoint_dir = Path(checkpoint_dir)
    out_file = Path(settings.out_file) if settings.out_file else checkpoint_dir / "eval" / f"{suite_name}.json"
    lm = LitTinyLM.from_checkpoint(checkpoint_dir, device=settings.device, precision=settings.precision,
                                   batch_size=settings.batch_size, max_new_tokens=settings.max_new_tokens,
                                   seed=settings.seed)
    payload = evaluate_suite(suite_name, lm, settings, data_dir, tasks)
    write_json(payload, out_file)
    print(format_report(payload, checkpoint_dir.name))
    print(f"\nWrote {out_file}")
    return payload


def suite_main(suite_name: str) -> Callable[..., None]:
    """The command line of a suite's script (``eval/<suite>.py``): its ``main`` for jsonargparse."""
    suite = get_suite(suite_name)

    def main(checkpoint_dir: Path, data_dir: Optional[Path] = Path("data/eval"), tasks: Optional[list[str]] = None,
             eval: HarnessSettings = HarnessSettings()) -> None:
        run_suite(suite.name, checkpoint_dir, data_dir, tasks, eval)

    main.__doc__ = f"""{suite.summary}

    Args:
        checkpoint_dir: A lit_tiny checkpoint folder (model.safetensors, model_config.yaml, tokenizer).
        data_dir: The task data: {suite.data_layout}; null lets lm-eval download it from the hub (needs network).
        tasks: The tasks to run: {suite.task_names}.
        eval: How the checkpoint is run and scored.
    """
    return main
