"""Through lm-eval's real evaluate path on the local tasks: a model that always prefers the right answer
scores 1.0, one that always prefers a wrong answer scores 0.0; summaries and tables say what they hold."""

from __future__ import annotations

import pytest

from lit_tiny.checkpoint import load_model
from lit_tiny.evaluation.adapter import LitTinyLM
from lit_tiny.evaluation.harness import evaluate_suite, format_report
from lit_tiny.evaluation.settings import HarnessSettings
from lit_tiny.evaluation.reference import COMMONSENSE_TASKS
from lit_tiny.tokenizer import Tokenizer
from tests.evaluation.conftest import MMLU_SUBJECTS, gold_suffixes


class AnswerKeyLM(LitTinyLM):
    """Scores a continuation 0 if it completes the right answer of the question in the context, else -10
    (or the reverse with ``prefer_right=False``). The answer key comes from the raw fixture rows
    (``gold_suffixes``), not from lm-eval; contexts are still tokenized by LitTinyLM."""

    def __init__(self, *args, prefer_right: set[str] | bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.gold = gold_suffixes()
        self.prefer_right = prefer_right

    def _loglikelihood_tokens(self, requests, disable_tqdm=False):
        scores = []
        for (context, continuation), context_ids, continuation_ids in requests:
            assert context_ids[0] == self.prefix_token_id and continuation_ids
            marker = max(self.gold, key=lambda m: context.rfind(m))  # the question asked last
            assert marker in context
            right = (context + continuation).endswith(self.gold[marker])
            task_prefers_right = (
                self.prefer_right if isinstance(self.prefer_right, bool) else marker in self.prefer_right
            )
            scores.append((0.0 if right == task_prefers_right else -10.0, False))
        return scores


def answer_key_lm(checkpoint_dir, prefer_right):
    return AnswerKeyLM(load_model(checkpoint_dir), Tokenizer(checkpoint_dir), prefer_right=prefer_right)


@pytest.mark.parametrize("prefer_right, expected", [(True, 100.0), (False, 0.0)])
def test_always_right_scores_one_and_always_wrong_scores_zero(checkpoint_dir, data_dir, prefer_right, expected):
    lm = answer_key_lm(checkpoint_dir, prefer_right)
    commonsense = evaluate_suite("commonsense", lm, HarnessSettings(bootstrap_iters=0), data_dir)
    assert list(commonsense["summary"]["scores"]) == list(COMMONSENSE_TASKS)
    for task, score in commonsense["summary"]["scores"].items():
        assert score["n"] == 6, task
        assert score["acc"] == expected, task
        assert score["acc_norm"] in ((expected,) if task not in ("winogrande", "boolq") else (None,)), task
        assert score["value"] == expected, task
    assert commonsense["summary"]["headline"]["value"] == expected

    mmlu = evaluate_suite("mmlu", lm, HarnessSettings(bootstrap_iters=0), data_dir, tasks=list(MMLU_SUBJECTS))
    assert mmlu["summary"]["scores"]["mmlu"]["acc"] == expected
    assert {n for n in mmlu["summary"]["scores"]} == {"mmlu", "mmlu_stem", "mmlu_other", "mmlu_humanities"}


def test_paper_column_average_and_table(checkpoint_dir, data_dir):
    """Right on HellaSwag and WinoGrande only: the paper column takes acc_norm for HellaSwag and acc for
    WinoGrande, and the average is over the seven tasks."""
    right = {f"zq{base + i}z" for base in (100, 300) for i in range(6)}  # hellaswag and winogrande markers
    assert right <= set(gold_suffixes())
    lm = answer_key_lm(checkpoint_dir, right)
    payload = evaluate_suite("commonsense", lm, HarnessSettings(limit=4, bootstrap_iters=0, seed=7), data_dir)
    scores = payload["summary"]["scores"]
    assert (scores["hellaswag"]["paper_metric"], scores["winogrande"]["paper_metric"]) == ("acc_norm", "acc")
    assert {t: s["value"] for t, s in scores.items()} == {
        t: 100.0 if t in ("hellaswag", "winogrande") else 0.0 for t in COMMONSENSE_TASKS
    }
    assert payload["summary"]["headline"]["value"] == pytest.approx(200 / 7)
    assert all(s["n"] == 4 for s in scores.values())

    settings = payload["settings"]
    assert settings["limit"] == 4 and settings["seeds"] == {
        "random_seed": 7,
        "numpy_seed": 7,
        "torch_seed": 7,
        "fewshot_seed": 7,
    }
    assert settings["model"]["lit_tiny_batch_size"] == 1 and settings["model"]["model_dtype"] == "float32"
    assert settings["lm_eval_version"] and set(settings["data_files"]) == set(COMMONSENSE_TASKS)
    assert all(len(f["sha256"]) == 64 for files in settings["data_files"].values() for f in files)

    table = format_report(payload, "fixture")
    assert "| fixture | 100.00 | 0.00 | 100.00 | 0.00 | 0.00 | 0.00 | 0.00 | 28.57 |" in table
    assert "| TinyLlama 1.1B (3T) (paper) | 59.20 | 36.00 | 59.12 | 30.12 | 55.25 | 57.83 | 73.29 | 52.99 |" in table
    assert "| Pythia-1.0B (paper) |" in table and "acc_norm where lm-eval has it" in table
