"""Local task data in the Hugging Face datasets' schemas, and tiny lit_tiny checkpoints.

Every evaluated question carries a unique marker ``zq<n>z``; :func:`gold_suffixes` says, from the raw
rows alone, how the full text (context + continuation) of the right answer ends, so that a test model
can prefer (or avoid) the right answer without looking at lm-eval's own answer key.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lit_tiny.checkpoint import save_checkpoint
from lit_tiny.config import Config
from lit_tiny.model import GPT
from lit_tiny.tokenizer import Tokenizer
from tests.conftest import randomize_norms

ENDINGS = ["takes out the red apple.", "paints the blue fence.", "jumps over the lazy dog.", "reads a quick book."]
ANSWERS = ["the quick fox", "a lazy dog", "grouped heads", "rare emoji"]
LETTERS = "ABCD"
MMLU_SUBJECTS = ("abstract_algebra", "marketing", "world_religions")
BBH_SUBTASKS = ("boolean_expressions", "navigate")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def commonsense_rows(n: int = 6) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {
        t: [] for t in ("hellaswag", "openbookqa", "winogrande", "arc_easy", "arc_challenge", "boolq", "piqa")
    }
    for i in range(n):
        gold = i % 4
        rows["hellaswag"].append(
            {
                "ind": i,
                "activity_label": "Cooking",
                "ctx_a": f"zq{100 + i}z The cook opens the box.",
                "ctx_b": "she",
                "ctx": "",
                "endings": ENDINGS,
                "source_id": "fixture",
                "split": "val",
                "split_type": "indomain",
                "label": str(gold),
            }
        )
        rows["openbookqa"].append(
            {
                "id": f"o{i}",
                "question_stem": f"zq{200 + i}z Which one is right",
                "choices": {"text": ANSWERS, "label": list(LETTERS)},
                "answerKey": LETTERS[gold],
            }
        )
        rows["winogrande"].append(
            {
                "sentence": f"zq{300 + i}z The fox jumped over the dog because _ was quick.",
                "option1": "Alpha",
                "option2": "Bravo",
                "answer": "12"[i % 2],
            }
        )
        labels = ["1", "2", "3", "4"] if i % 3 == 0 else list(LETTERS)  # ARC mixes numeric and letter keys
        for task, base in (("arc_easy", 400), ("arc_challenge", 500)):
            rows[task].append(
                {
                    "id": f"{task}{i}",
                    "question": f"zq{base + i}z What shares keys and values",
                    "choices": {"text": ANSWERS, "label": labels},
                    "answerKey": labels[gold],
                }
            )
        rows["boolq"].append(
            {
                "question": f"zq{600 + i}z is the fox quick",
                "passage": "The quick brown fox jumps over the lazy dog.",
                "idx": i,
                "label": i % 2,
            }
        )
        rows["piqa"].append(
            {
                "goal": f"zq{700 + i}z open a jar",
                "sol1": "twist the lid slowly.",
                "sol2": "hit it with a hammer.",
                "label": i % 2,
            }
        )
    return rows


def mmlu_rows(subject: str, offset: int) -> dict[str, list[dict]]:
    def row(n: int, k: int) -> dict:
        return {
            "question": f"  zq{n}z In {subject.replace('_', ' ')}, what is {k} plus {n % 7}?  ",
            "subject": subject,
            "choices": [f"{k + n % 7 + d} units" for d in range(4)],
            "answer": (k + 1) % 4,
        }

    return {"dev": [row(offset + j, j) for j in range(5)], "test": [row(offset + 50 + j, j + 2) for j in range(4)]}


def drop_rows() -> dict[str, list[dict]]:
    def row(n: int, number: str, spans: list[str]) -> dict:
        empty_date = {"day": "", "month": "", "year": ""}
        return {
            "section_id": f"s{n}",
            "query_id": f"q{n}",
            "passage": f"zq{n}z The fox jumped {n} times over the lazy dog.",
            "question": "How many times did the fox jump?",
            "answer": {"number": number, "date": empty_date, "spans": spans},
            "validated_answers": {"number": [number], "date": [empty_date], "spans": [spans]},
        }

    return {
        "train": [row(900 + i, str(i), []) for i in range(5)],
        "validation": [row(950 + i, "", ["lazy dog"]) for i in range(3)],
    }


def bbh_rows(subtask: str) -> list[dict]:
    return [{"input": f"zq{990 + i}z {subtask} question {i}", "target": ["True", "False", "Yes"][i]} for i in range(3)]


def write_task_data(data_dir: Path) -> Path:
    """All suites' fixture data; PIQA as a hub-style parquet shard, the rest as jsonl."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for task, rows in commonsense_rows().items():
        split = "test" if task in ("openbookqa", "arc_easy", "arc_challenge") else "validation"
        if task == "piqa":
            (data_dir / task).mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows), data_dir / task / f"{split}-00000-of-00001.parquet")
        else:
            write_jsonl(data_dir / task / f"{split}.jsonl", rows)
    for j, subject in enumerate(MMLU_SUBJECTS):
        for split, rows in mmlu_rows(subject, 1000 + 100 * j).items():
            write_jsonl(data_dir / "mmlu" / subject / f"{split}.jsonl", rows)
    for split, rows in drop_rows().items():
        write_jsonl(data_dir / "drop" / f"{split}.jsonl", rows)
    for subtask in BBH_SUBTASKS:
        write_jsonl(data_dir / "bbh" / subtask / "test.jsonl", bbh_rows(subtask))
    return data_dir


def gold_suffixes() -> dict[str, str]:
    """Marker -> how the right answer's full text (context + continuation) ends, from the raw rows."""
    gold: dict[str, str] = {}
    rows = commonsense_rows()
    for r in rows["hellaswag"]:
        gold[r["ctx_a"].split()[0]] = " " + r["endings"][int(r["label"])]
    for r in rows["openbookqa"]:
        gold[r["question_stem"].split()[0]] = " " + r["choices"]["text"][r["choices"]["label"].index(r["answerKey"])]
    for r in rows["winogrande"]:
        option = r["option1"] if r["answer"] == "1" else r["option2"]
        gold[r["sentence"].split()[0]] = option + " " + r["sentence"].split("_", 1)[1].strip()
    for task in ("arc_easy", "arc_challenge"):
        for r in rows[task]:
            gold[r["question"].split()[0]] = " " + r["choices"]["text"][r["choices"]["label"].index(r["answerKey"])]
    for r in rows["boolq"]:
        gold[r["question"].split()[0]] = " " + ("yes" if r["label"] else "no")
    for r in rows["piqa"]:
        gold[r["goal"].split()[0]] = " " + (r["sol2"] if r["label"] else r["sol1"])
    for j, subject in enumerate(MMLU_SUBJECTS):
        for r in mmlu_rows(subject, 1000 + 100 * j)["test"]:
            gold[r["question"].split()[0]] = " " + LETTERS[r["answer"]]
    return gold


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return write_task_data(tmp_path_factory.mktemp("eval_data"))


@pytest.fixture
def eval_config(gqa_config) -> Config:
    """gqa_config with room for five-shot prompts."""
    return replace(gqa_config, name="test_eval", block_size=512)


def save_tiny_checkpoint(out_dir: Path, config: Config, tokenizer_dir: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = GPT(config)
    randomize_norms(model, seed)
    return save_checkpoint(out_dir, model.state_dict(), config, Tokenizer(tokenizer_dir).files())


@pytest.fixture
def checkpoint_dir(tmp_path, eval_config, tokenizer_dir) -> Path:
    return save_tiny_checkpoint(tmp_path / "checkpoint", eval_config, tokenizer_dir)
