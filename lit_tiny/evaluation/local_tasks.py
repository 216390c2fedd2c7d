"""Offline lm-eval tasks: upstream task definitions, local data files.

For each task, a small YAML is written into a work folder::

    include: /.../site-packages/lm_eval/tasks/arc/arc_easy.yaml
    task: arc_easy
    dataset_path: json
    dataset_name: null
    dataset_kwargs: {data_files: {test: [/abs/data/arc_easy/test.jsonl]}, cache_dir: /work/datasets_cache}
    training_split: null
    validation_split: null

``include`` takes lm-eval's own prompt, choices, metrics and ``!function`` helpers (resolved next to the
upstream YAML, so ``hellaswag/utils.process_docs`` and WinoGrande's partial evaluation keep working);
the overrides change only where the rows come from. Paths are absolute because lm-eval resolves relative
``data_files`` against the working directory. Splits that the run does not read are set to null, so a
zero-shot run needs only the evaluation split; a few-shot run also needs the split the examples come
from (lm-eval's rule: ``fewshot_split``, else the training split, else validation, else test).

Data layout: ``<data_dir>/<folder>/<split>.jsonl``, ``<split>.parquet`` or hub-style parquet shards
``<split>-00000-of-00001.parquet``, with the rows in the Hugging Face dataset's own schema.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml


@dataclass(frozen=True)
class TaskSource:
    """One lm-eval task and the local files it reads.

    Args:
        task: lm-eval task name.
        upstream: lm-eval's YAML for the task, relative to the installed ``lm_eval/tasks``.
        folder: Folder under the data directory holding the split files.
        fields: Columns every row must have.
        schema: One row, written out, for error messages and the tutorial.
    """

    task: str
    upstream: str
    folder: str
    fields: tuple[str, ...]
    schema: str


@dataclass(frozen=True)
class TaskFamily:
    """Leaf tasks plus the lm-eval group YAMLs (innermost first) that aggregate them."""

    sources: tuple[TaskSource, ...]
    groups: tuple[str, ...] = ()


ARC_SCHEMA = '{"id": str, "question": str, "choices": {"text": [str, ...], "label": ["A", "B", ...]}, "answerKey": "A"}'

COMMONSENSE_SOURCES = (
    TaskSource(
        "hellaswag",
        "hellaswag/hellaswag.yaml",
        "hellaswag",
        ("activity_label", "ctx_a", "ctx_b", "endings", "label"),
        '{"activity_label": str, "ctx_a": str, "ctx_b": str, "endings": [str, str, str, str], "label": "0".."3"}',
    ),
    TaskSource(
        "openbookqa",
        "openbookqa/openbookqa.yaml",
        "openbookqa",
        ("question_stem", "choices", "answerKey"),
        '{"id": str, "question_stem": str, "choices": {"text": [str x4], "label": ["A", "B", "C", "D"]}, '
        '"answerKey": "A".."D"}',
    ),
    TaskSource(
        "winogrande",
        "winogrande/default.yaml",
        "winogrande",
        ("sentence", "option1", "option2", "answer"),
        '{"sentence": str with one "_", "option1": str, "option2": str, "answer": "1" | "2"}',
    ),
    TaskSource(
        "arc_challenge",
        "arc/arc_challenge.yaml",
        "arc_challenge",
        ("question", "choices", "answerKey"),
        ARC_SCHEMA,
    ),
    TaskSource(
        "arc_easy",
        "arc/arc_easy.yaml",
        "arc_easy",
        ("question", "choices", "answerKey"),
        ARC_SCHEMA,
    ),
    TaskSource(
        "boolq",
        "super_glue/boolq/default.yaml",
        "boolq",
        ("passage", "question", "label"),
        '{"question": str, "passage": str, "idx": int, "label": 0 (false) | 1 (true)}',
    ),
    TaskSource(
        "piqa",
        "piqa/piqa.yaml",
        "piqa",
        ("goal", "sol1", "sol2", "label"),
        '{"goal": str, "sol1": str, "sol2": str, "label": 0 | 1}',
    ),
)

MMLU_GROUPS = (
    "mmlu/default/_mmlu_stem.yaml",
    "mmlu/default/_mmlu_other.yaml",
    "mmlu/default/_mmlu_social_sciences.yaml",
    "mmlu/default/_mmlu_humanities.yaml",
    "mmlu/default/_mmlu.yaml",
)
BBH_GROUPS = ("bbh/fewshot/_bbh_fewshot.yaml",)

DROP_SOURCE = TaskSource(
    "drop",
    "drop/default.yaml",
    "drop",
    ("query_id", "passage", "question", "answer", "validated_answers"),
    '{"query_id": str, "passage": str, "question": str, '
    '"answer": {"number": str, "date": {"day": str, "month": str, "year": str}, "spans": [str]}, '
    '"validated_answers": {"number": [str], "date": [{"day": str, "month": str, "year": str}], "spans": [[str]]}}',
)


def upstream_tasks_dir() -> Path:
    """The ``tasks`` folder of the installed lm-eval."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def read_task_yaml(path: Path) -> dict[str, Any]:
    """A task or group YAML with its ``include`` chain merged (the file's own keys win), the way lm-eval
    reads it, except that ``!function`` references stay unresolved strings."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    path = Path(path)
    with path.open() as fh:
        config = yaml.load(fh, Loader=Loader)  # noqa: S506 (SafeLoader plus one tag)
    includes = config.pop("include", [])
    merged: dict[str, Any] = {}
    for include in includes if isinstance(includes, list) else [includes]:
        merged.update(read_task_yaml(path.parent / include))
    return merged | config


def mmlu_family(subjects: Optional[Iterable[str]] = None) -> TaskFamily:
    """MMLU's 57 subject tasks (or the given subjects), in lm-eval's ``mmlu`` grouping."""
    folder = upstream_tasks_dir() / "mmlu" / "default"
    known = sorted(p.stem.removeprefix("mmlu_") for p in folder.glob("mmlu_*.yaml"))
    chosen = known if subjects is None else list(subjects)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ValueError(f"Unknown MMLU subjects {unknown}; lm-eval knows {known}")
    schema = '{"question": str, "subject": str, "choices": [str, str, str, str], "answer": 0..3}'
    return TaskFamily(
        tuple(
            TaskSource(
                f"mmlu_{s}", f"mmlu/default/mmlu_{s}.yaml", f"mmlu/{s}", ("question", "choices", "answer"), schema
            )
            for s in chosen
        ),
        MMLU_GROUPS,
    )


def bbh_family(subtasks: Optional[Iterable[str]] = None) -> TaskFamily:
    """BIG-Bench Hard, lm-eval's ``bbh_fewshot`` (3 answer-only examples, exact match)."""
    folder = upstream_tasks_dir() / "bbh" / "fewshot"
    known = sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))
    chosen = known if subtasks is None else list(subtasks)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ValueError(f"Unknown BBH subtasks {unknown}; lm-eval knows {known}")
    return TaskFamily(
        tuple(
            TaskSource(
                f"bbh_fewshot_{s}",
                f"bbh/fewshot/{s}.yaml",
                f"bbh/{s}",
                ("input", "target"),
                '{"input": str, "target": str}',
            )
            for s in chosen
        ),
        BBH_GROUPS,
    )


def commonsense_family(tasks: Optional[Iterable[str]] = None) -> TaskFamily:
    """The paper's seven zero-shot commonsense tasks (or some of them)."""
    by_name = {s.task: s for s in COMMONSENSE_SOURCES}
    chosen = list(by_name) if tasks is None else list(tasks)
    unknown = sorted(set(chosen) - set(by_name))
    if unknown:
        raise ValueError(f"Unknown commonsense tasks {unknown}; choose among {list(by_name)}")
    return TaskFamily(tuple(by_name[t] for t in chosen))


def drop_family(tasks: Optional[Iterable[str]] = None) -> TaskFamily:
    """DROP, one task."""
    if tasks is not None and list(tasks) != ["drop"]:
        raise ValueError(f"The drop suite has one task, 'drop'; got {list(tasks)}")
    return TaskFamily((DROP_SOURCE,))


@dataclass(frozen=True)
class SplitPlan:
    """Which upstream splits a run reads: the evaluated one, and the one few-shot examples come from."""

    eval_split: str
    fewshot_split: Optional[str]


def plan_splits(config: dict[str, Any], num_fewshot: int) -> SplitPlan:
    """lm-eval evaluates the test split if the task has one, else validation; few-shot examples come from
    ``fewshot_split``, else the training, validation, then test split, unless the YAML embeds them."""
    eval_split = config.get("test_split") or config.get("validation_split")
    if eval_split is None:
        raise ValueError(f"Task {config.get('task')!r} has neither a test nor a validation split")
    embedded = (config.get("fewshot_config") or {}).get("samples") is not None
    if num_fewshot == 0 or (embedded and config.get("fewshot_split") is None):
        return SplitPlan(eval_split, None)
    split = (
        config.get("fewshot_split")
        or config.get("training_split")
        or config.get("validation_split")
        or config.get("test_split")
    )
    return SplitPlan(eval_split, split)


def find_split_files(folder: Path, split: str) -> tuple[str, list[Path]]:
    """(datasets builder, files) for one split: ``<split>.jsonl``, ``<split>.parquet`` or ``<split>-*.parquet``."""
    jsonl = [folder / f"{split}.jsonl"] if (folder / f"{split}.jsonl").is_file() else []
    parquet = sorted({*folder.glob(f"{split}.parquet"), *folder.glob(f"{split}-*.parquet")})
    if jsonl and parquet:
        raise ValueError(f"{folder} holds both {jsonl[0].name} and {parquet[0].name} for split {split!r}; keep one")
    if jsonl:
        return "json", jsonl
    if parquet:
        return "parquet", parquet
    return "", []


def dataset_description(config: dict[str, Any]) -> str:
    """The Hugging Face dataset an upstream task reads, e.g. ``allenai/ai2_arc (config ARC-Easy)``."""
    name = config.get("dataset_name")
    return config["dataset_path"] + (f" (config {name})" if name else "")


def check_fields(path: Path, source: TaskSource, dataset: str) -> None:
    """Raise a ValueError naming ``path`` if its first row lacks one of the task's fields."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            columns = set(pq.read_schema(path).names)
        except Exception as e:
            raise ValueError(f"{path} is not a readable parquet file: {e}") from e
    else:
        with path.open(encoding="utf-8") as fh:
            first = next((line for line in fh if line.strip()), None)
        if first is None:
            raise ValueError(f"{path} is empty; it should hold one JSON object per line: {source.schema}")
        try:
            row = json.loads(first)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path}: the first line is not JSON ({e}); expected one object per line: {source.schema}"
            ) from e
        if not isinstance(row, dict):
            raise ValueError(f"{path}: each line must be a JSON object like {source.schema}")
        columns = set(row)
    missing = [f for f in source.fields if f not in columns]
    if missing:
        raise ValueError(
            f"{path} lacks the fields {missing} of task {source.task!r}. Rows must follow the schema of "
            f"{dataset}: {source.schema}"
        )


def data_files_for(
    source: TaskSource, dataset: str, data_dir: Path, splits: Iterable[str]
) -> tuple[str, dict[str, list[Path]]]:
    """The files of every needed split, checked; a missing split raises an error naming the file and schema."""
    folder = Path(data_dir).resolve() / source.folder
    builders, files = set(), {}
    for split in splits:
        builder, paths = find_split_files(folder, split)
        if not paths:
            raise FileNotFoundError(
                f"Task {source.task!r} needs {folder / (split + '.jsonl')} (or {split}.parquet, or hub shards "
                f"{split}-*.parquet) with the rows of split {split!r} of {dataset}, one JSON object per line: "
                f"{source.schema}. See tutorials/evaluation.md for how to export it."
            )
        for path in paths:
            check_fields(path, source, dataset)
        builders.add(builder)
        files[split] = paths
    if len(builders) > 1:
        raise ValueError(f"{folder}: use one format (jsonl or parquet) for all splits of task {source.task!r}")
    return builders.pop(), files


def use_offline_datasets() -> None:
    """Keep ``datasets`` and ``huggingface_hub`` off the network (also when they are already imported)."""
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        os.environ[var] = "1"
    if "datasets" in sys.modules:
        sys.modules["datasets"].config.HF_HUB_OFFLINE = True
        sys.modules["datasets"].config.HF_DATASETS_OFFLINE = True
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True


def write_local_tasks(
    families: Iterable[TaskFamily], data_dir: Path, num_fewshot: int, out_dir: Path
) -> dict[str, list[Path]]:
    """Write task YAMLs reading from ``data_dir`` into ``out_dir`` (use it as lm-eval's ``include_path``).

    Returns the data files each task reads. Raises before writing anything if a file is missing or malformed.
    """
    upstream = upstream_tasks_dir()
    out_dir = Path(out_dir).resolve()
    cache_dir = out_dir / "datasets_cache"
    task_yamls: dict[str, dict[str, Any]] = {}
    used: dict[str, list[Path]] = {}
    group_files: list[tuple[str, list[str]]] = []
    for family in families:
        tags: dict[str, list[str]] = {}
        for source in family.sources:
            config = read_task_yaml(upstream / source.upstream)
            plan = plan_splits(config, num_fewshot)
            needed = [plan.eval_split] + (
                [plan.fewshot_split] if plan.fewshot_split not in (None, plan.eval_split) else []
            )
            builder, files = data_files_for(source, dataset_description(config), data_dir, needed)
            overrides: dict[str, Any] = {
                "include": str(upstream / source.upstream),
                "task": source.task,
                "dataset_path": builder,
                "dataset_name": None,
                "dataset_kwargs": {
                    "data_files": {split: [str(p) for p in paths] for split, paths in files.items()},
                    "cache_dir": str(cache_dir),
                },
            }
            for key in ("training_split", "validation_split", "test_split", "fewshot_split"):
                if config.get(key) is not None and config[key] not in needed:
                    overrides[key] = None
            task_yamls[source.task] = overrides
            used[source.task] = [p for paths in files.values() for p in paths]
            for tag in _as_list(config.get("tag")):
                tags.setdefault(tag, []).append(source.task)
        written: set[str] = set()
        for group_yaml in family.groups:
            config = read_task_yaml(upstream / group_yaml)
            members: list[str] = []
            for entry in config["task"]:
                if not isinstance(entry, str):
                    raise ValueError(f"{upstream / group_yaml}: inline task definitions in a group are not supported")
                if entry in task_yamls or entry in written:
                    members.append(entry)
                elif entry in tags:
                    members += tags[entry]
            if members:
                written.add(config["group"])
                group_files.append((str(upstream / group_yaml), members))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, overrides in task_yamls.items():
        (out_dir / f"{name}.yaml").write_text(yaml.safe_dump(overrides, sort_keys=False))
    for i, (group_yaml, members) in enumerate(group_files):
        (out_dir / f"_group_{i:02d}.yaml").write_text(yaml.safe_dump({"include": group_yaml, "task": members}))
    return used


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
