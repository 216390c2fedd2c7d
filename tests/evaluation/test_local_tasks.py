"""Local task YAMLs render exactly as lm-eval's own task configs do, and bad data gives clear errors."""

from __future__ import annotations

import json
import shutil

import pytest

from lit_tiny.evaluation.local_tasks import (
    bbh_family,
    commonsense_family,
    drop_family,
    mmlu_family,
    read_task_yaml,
    upstream_tasks_dir,
    write_local_tasks,
)
from tests.evaluation.conftest import (
    BBH_SUBTASKS,
    MMLU_SUBJECTS,
    bbh_rows,
    commonsense_rows,
    drop_rows,
    mmlu_rows,
)

SEED = 1234


def requests_of(task, num_fewshot: int) -> list[tuple]:
    """Every request lm-eval builds for the task: (doc id, choice index, arguments)."""
    task.set_config(key="num_fewshot", value=num_fewshot)
    task.set_fewshot_seed(seed=SEED)
    task.build_all_requests(limit=None, rank=0, world_size=1)
    return [(i.doc_id, i.idx, i.arguments) for i in task.instances]


def upstream_task(monkeypatch, source, rows_by_split):
    """lm-eval's own task config, unmodified, with ``datasets.load_dataset`` serving the fixture rows."""
    import datasets
    from lm_eval.tasks import TaskManager

    config = read_task_yaml(upstream_tasks_dir() / source.upstream)
    splits = {config.get(k) for k in ("training_split", "validation_split", "test_split", "fewshot_split")} - {None}
    served = {split: rows_by_split.get(split, next(iter(rows_by_split.values()))) for split in splits}

    def load_dataset(path, name=None, **kwargs):
        assert (path, name) == (config["dataset_path"], config.get("dataset_name")), "not the upstream dataset"
        return datasets.DatasetDict({split: datasets.Dataset.from_list(rows) for split, rows in served.items()})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    manager = TaskManager(include_path=str((upstream_tasks_dir() / source.upstream).parent), include_defaults=False)
    return manager.load([source.task])["tasks"][source.task]


def local_tasks(tmp_path, family, data_dir, num_fewshot):
    from lm_eval.tasks import TaskManager

    write_local_tasks([family], data_dir, num_fewshot, tmp_path / "tasks")
    manager = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    return manager.load([s.task for s in family.sources])["tasks"]


def fixture_rows(task: str) -> dict[str, list[dict]]:
    if task.startswith("mmlu_"):
        subject = task.removeprefix("mmlu_")
        return mmlu_rows(subject, 1000 + 100 * MMLU_SUBJECTS.index(subject))
    if task.startswith("bbh_fewshot_"):
        return {"test": bbh_rows(task.removeprefix("bbh_fewshot_"))}
    if task == "drop":
        return drop_rows()
    rows = commonsense_rows()[task]
    return {"test" if task in ("openbookqa", "arc_easy", "arc_challenge") else "validation": rows}


@pytest.mark.parametrize(
    "family_name, num_fewshot",
    [("commonsense", 0), ("mmlu", 5), ("bbh", 3), ("drop", 3)],
)
def test_local_tasks_build_the_same_requests_as_upstream_task_configs(
    tmp_path, monkeypatch, data_dir, family_name, num_fewshot
):
    family = {
        "commonsense": commonsense_family(),
        "mmlu": mmlu_family(MMLU_SUBJECTS),
        "bbh": bbh_family(BBH_SUBTASKS),
        "drop": drop_family(),
    }[family_name]
    ours = local_tasks(tmp_path, family, data_dir, num_fewshot)
    for source in family.sources:
        theirs = upstream_task(monkeypatch, source, fixture_rows(source.task))
        expected = requests_of(theirs, num_fewshot)
        assert expected, source.task
        assert requests_of(ours[source.task], num_fewshot) == expected, source.task


def test_mmlu_five_shot_prompt_renders_exactly_as_lm_eval_mmlu(tmp_path, monkeypatch, data_dir):
    family = mmlu_family(["abstract_algebra"])
    ours = local_tasks(tmp_path, family, data_dir, 5)["mmlu_abstract_algebra"]
    theirs = upstream_task(monkeypatch, family.sources[0], fixture_rows("mmlu_abstract_algebra"))
    ours_requests, their_requests = requests_of(ours, 5), requests_of(theirs, 5)
    assert ours_requests == their_requests

    # And the known MMLU format, written out by hand from the raw rows: description, the first five dev
    # questions with their answers, then the test question; choices are scored as " A" .. " D".
    rows = fixture_rows("mmlu_abstract_algebra")

    def block(row):
        options = "".join(f"\n{letter}. {choice}" for letter, choice in zip("ABCD", row["choices"], strict=True))
        return f"{row['question'].strip()}{options}\nAnswer:"

    expected = "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    expected += "".join(f"{block(r)} {'ABCD'[r['answer']]}\n\n" for r in rows["dev"])
    expected += block(rows["test"][0])
    first_doc = [args for doc_id, _, args in ours_requests if doc_id == 0]
    assert first_doc == [(expected, f" {letter}") for letter in "ABCD"]


def test_mmlu_groups_aggregate_the_subjects_present(tmp_path, data_dir):
    write_local_tasks([mmlu_family(MMLU_SUBJECTS)], data_dir, 5, tmp_path)
    groups = {}
    for f in tmp_path.glob("_group_*.yaml"):
        config = read_task_yaml(f)
        groups[config["group"]] = config["task"]
    assert groups == {
        "mmlu_stem": ["mmlu_abstract_algebra"],
        "mmlu_other": ["mmlu_marketing"],
        "mmlu_humanities": ["mmlu_world_religions"],
        "mmlu": ["mmlu_stem", "mmlu_other", "mmlu_humanities"],
    }


def test_task_yaml_points_at_absolute_files_and_drops_unused_splits(tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative data_dir: the YAML must still hold absolute paths
    shutil.copytree(data_dir / "hellaswag", tmp_path / "rel" / "hellaswag")
    write_local_tasks([commonsense_family(["hellaswag"])], "rel", 0, tmp_path / "tasks")
    config = read_task_yaml(tmp_path / "tasks" / "hellaswag.yaml")
    assert config["dataset_path"] == "json"
    assert config["dataset_kwargs"]["data_files"] == {"validation": [str(tmp_path / "rel/hellaswag/validation.jsonl")]}
    assert config["training_split"] is None and config["validation_split"] == "validation"
    # lm-eval's own prompt and helpers come in by include, so the ``!function`` resolves next to upstream's file.
    raw = (tmp_path / "tasks" / "hellaswag.yaml").read_text()
    assert f"include: {upstream_tasks_dir() / 'hellaswag' / 'hellaswag.yaml'}" in raw
    assert config["process_docs"] == "utils.process_docs" and "process_docs" not in raw


def test_missing_file_names_the_file_and_its_schema(tmp_path, data_dir):
    shutil.copytree(data_dir, tmp_path / "data")
    (tmp_path / "data" / "hellaswag" / "validation.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"hellaswag/validation\.jsonl.*Rowan/hellaswag.*\"ctx_a\": str"):
        write_local_tasks([commonsense_family()], tmp_path / "data", 0, tmp_path / "tasks")
    assert not (tmp_path / "tasks").exists()


def test_few_shot_needs_the_split_examples_come_from(tmp_path, data_dir):
    shutil.copytree(data_dir / "mmlu" / "marketing", tmp_path / "data" / "mmlu" / "marketing")
    (tmp_path / "data" / "mmlu" / "marketing" / "dev.jsonl").unlink()
    write_local_tasks([mmlu_family(["marketing"])], tmp_path / "data", 0, tmp_path / "zero")
    with pytest.raises(FileNotFoundError, match=r"mmlu/marketing/dev\.jsonl.*cais/mmlu \(config marketing\)"):
        write_local_tasks([mmlu_family(["marketing"])], tmp_path / "data", 5, tmp_path / "five")


def test_rows_without_the_task_fields_are_refused(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "endings"} for r in commonsense_rows()["hellaswag"]]
    (tmp_path / "hellaswag").mkdir()
    (tmp_path / "hellaswag" / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"validation\.jsonl lacks the fields \['endings'\]"):
        write_local_tasks([commonsense_family(["hellaswag"])], tmp_path, 0, tmp_path / "tasks")
    (tmp_path / "hellaswag" / "validation.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match=r"validation\.jsonl: the first line is not JSON"):
        write_local_tasks([commonsense_family(["hellaswag"])], tmp_path, 0, tmp_path / "tasks")


def test_unknown_task_names_are_refused():
    with pytest.raises(ValueError, match="Unknown commonsense tasks"):
        commonsense_family(["hellaswagg"])
    with pytest.raises(ValueError, match="Unknown MMLU subjects"):
        mmlu_family(["algebra"])


def test_hub_mode_hands_lm_eval_its_own_task_names(monkeypatch):
    """data_dir=None: lm-eval's default task index and upstream names (the datasets then come from the hub)."""
    import lm_eval
    import lm_eval.tasks

    from lit_tiny.evaluation.harness import get_suite, run_lm_eval
    from lit_tiny.evaluation.settings import HarnessSettings

    calls = []

    class DefaultIndex:
        def __init__(self, **kwargs):
            calls.append(("TaskManager", kwargs))

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", DefaultIndex)
    monkeypatch.setattr(lm_eval, "simple_evaluate", lambda **kwargs: calls.append(("simple_evaluate", kwargs)))
    for name in ("commonsense", "mmlu"):
        suite = get_suite(name)
        run_lm_eval("lm", suite, suite.family(None), HarnessSettings(), suite.num_fewshot, None)
    assert calls[0] == ("TaskManager", {})
    assert calls[1][1]["tasks"] == [
        "hellaswag",
        "openbookqa",
        "winogrande",
        "arc_challenge",
        "arc_easy",
        "boolq",
        "piqa",
    ]
    assert calls[3][1]["tasks"] == ["mmlu"] and isinstance(calls[3][1]["task_manager"], DefaultIndex)
    with pytest.raises(ValueError, match="needs local data"):
        mmlu = get_suite("mmlu")
        run_lm_eval("lm", mmlu, mmlu.family(["marketing"]), HarnessSettings(), 5, None)
