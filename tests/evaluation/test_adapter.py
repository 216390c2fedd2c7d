"""LitTinyLM against lm-eval's HFLM on the same weights, batch-size invariance, rolling log-likelihood,
generation with the KV cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance

from lit_tiny.checkpoint import load_model, save_checkpoint
from lit_tiny.evaluation.adapter import GenerationSettings, LitTinyLM
from lit_tiny.evaluation.harness import get_suite, run_lm_eval
from lit_tiny.evaluation.settings import HarnessSettings
from lit_tiny.hf_interop import convert_to_hf
from lit_tiny.model import GPT
from lit_tiny.tokenizer import Tokenizer


def per_request(results: dict) -> dict[tuple, tuple[float, bool]]:
    """(task, doc id, choice) -> (log-likelihood, is greedy), from lm-eval's logged samples."""
    out = {}
    for task, samples in results["samples"].items():
        for sample in samples:
            for choice, response in enumerate(sample["resps"]):
                out[(task, sample["doc_id"], choice)] = tuple(response[0])
    return out


def accuracies(results: dict) -> dict[str, dict[str, float]]:
    return {
        task: {k: v for k, v in r.items() if k in ("acc,none", "acc_norm,none")}
        for task, r in results["results"].items()
    }


def evaluate(lm, data_dir, suite_name, tasks, num_fewshot):
    suite = get_suite(suite_name)
    settings = HarnessSettings(bootstrap_iters=0, log_samples=True)
    results, _ = run_lm_eval(lm, suite, suite.family(tasks), settings, num_fewshot, data_dir)
    return results


CASES = [("commonsense", ["hellaswag", "winogrande", "arc_easy", "boolq"], 0), ("mmlu", ["marketing"], 5)]


def test_same_log_likelihoods_and_accuracies_as_hflm_on_exported_weights(tmp_path, checkpoint_dir, data_dir, caplog):
    """Includes five-shot MMLU prompts longer than max_length (512), which both cut on the left."""
    from lm_eval.models.huggingface import HFLM

    exported = convert_to_hf(checkpoint_dir, tmp_path / "hf")
    hflm = HFLM(pretrained=str(exported), device="cpu", batch_size=8, dtype="float32")
    ours = LitTinyLM.from_checkpoint(checkpoint_dir, device="cpu", batch_size=8)
    assert hflm.max_length == ours.max_length
    for suite, tasks, shots in CASES:
        theirs_results, ours_results = (
            evaluate(hflm, data_dir, suite, tasks, shots),
            evaluate(ours, data_dir, suite, tasks, shots),
        )
        theirs, mine = per_request(theirs_results), per_request(ours_results)
        assert theirs.keys() == mine.keys() and len(mine) >= 16
        for key, (logprob, greedy) in theirs.items():
            assert mine[key][0] == pytest.approx(logprob, abs=1e-4), key
            assert mine[key][1] == greedy, key
        assert accuracies(ours_results) == accuracies(theirs_results)
    assert "lost tokens on the left" in caplog.text


def test_batch_sizes_1_and_8_give_identical_results(checkpoint_dir, data_dir):
    """Same answers and metrics; log-likelihoods agree to float32 rounding (a batch pads rows to a common
    width, which changes the matmul shapes and so the order of additions, by about 1e-6)."""
    one = LitTinyLM.from_checkpoint(checkpoint_dir, device="cpu", batch_size=1)
    eight = LitTinyLM.from_checkpoint(checkpoint_dir, device="cpu", batch_size=8)
    for suite, tasks, shots in CASES:
        r1, r8 = evaluate(one, data_dir, suite, tasks, shots), evaluate(eight, data_dir, suite, tasks, shots)
        assert accuracies(r1) == accuracies(r8)
        for task in r1["samples"]:
            assert [s["acc"] for s in r1["samples"][task]] == [s["acc"] for s in r8["samples"][task]]
        a, b = per_request(r1), per_request(r8)
        assert a.keys() == b.keys()
        for key in a:
            assert b[key][0] == pytest.approx(a[key][0], abs=1e-5) and b[key][1] == a[key][1], key


def rolling(lm, texts):
    return lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)])


@torch.no_grad()
def direct_logprob(model, context: list[int], targets: list[int]) -> float:
    """log P(targets | context) with one forward pass, no batching."""
    ids = torch.tensor([context + targets])
    logprobs = F.log_softmax(model(ids[:, :-1]).float(), dim=-1)[0, len(context) - 1 :]
    return float(logprobs.gather(-1, torch.tensor(targets)[:, None]).sum())


def test_rolling_log_likelihood_conditions_on_a_single_bos(checkpoint_dir):
    model, tokenizer = load_model(checkpoint_dir).eval(), Tokenizer(checkpoint_dir)
    texts = ["The quick brown fox jumps over the lazy dog.", "def add(a, b):\n    return a + b\n"]
    lm = LitTinyLM(model, tokenizer, batch_size=2)
    for text, value in zip(texts, rolling(lm, texts), strict=True):
        ids = tokenizer.encode(text, bos=False)
        assert value == pytest.approx(direct_logprob(model, [tokenizer.bos_id], ids), abs=1e-4)
        doubled = direct_logprob(model, [tokenizer.bos_id], [tokenizer.bos_id] + ids)
        assert abs(value - doubled) > 1e-2  # scoring a second BOS would be a different number


def test_rolling_log_likelihood_windows_long_texts(checkpoint_dir):
    """Text longer than max_length: the first window starts at BOS, later windows keep max_length tokens of
    context, every token is scored exactly once."""
    model, tokenizer = load_model(checkpoint_dir).eval(), Tokenizer(checkpoint_dir)
    text = "Grouped-query attention shares keys and values across heads. " * 4
    ids = tokenizer.encode(text, bos=False)
    window = 16
    assert len(ids) > 3 * window
    expected = direct_logprob(model, [tokenizer.bos_id], ids[:window])
    predicted = window
    while predicted < len(ids):
        end = min(predicted + window, len(ids))
        context = ids[end - window - 1 : predicted]
        expected += direct_logprob(model, context, ids[predicted:end])
        predicted = end
    for batch_size in (1, 8):
        lm = LitTinyLM(model, tokenizer, batch_size=batch_size, max_length=window)
        assert rolling(lm, [text])[0] == pytest.approx(expected, abs=1e-4)


def test_greedy_generation_matches_transformers_generate(tmp_path, checkpoint_dir):
    from transformers import AutoModelForCausalLM

    exported = convert_to_hf(checkpoint_dir, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(exported, local_files_only=True, dtype=torch.float32).eval()
    tokenizer = Tokenizer(checkpoint_dir)
    prompts = ["The quick brown fox", "def add(a, b):", "Lorem ipsum dolor"]
    lm = LitTinyLM.from_checkpoint(checkpoint_dir, device="cpu", batch_size=1)
    ours = lm.generate_texts(prompts, GenerationSettings(max_new_tokens=12))
    assert all(len(text) > 3 for text in ours)
    for prompt, text in zip(prompts, ours, strict=True):
        ids = torch.tensor([tokenizer.encode(prompt)])
        out = hf.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=tokenizer.eos_id,
            pad_token_id=tokenizer.eos_id,
        )
        assert text == tokenizer.decode_continuation(ids[0].tolist(), out[0, ids.size(1) :].tolist())


def test_batched_generation_equals_one_by_one_and_honours_stop_strings(checkpoint_dir):
    prompts = ["The quick brown fox", "The quick brown dog", "def add(a, b):", "The lazy brown fox"]
    one = LitTinyLM.from_checkpoint(checkpoint_dir, device="cpu", batch_size=1)
    eight = LitTinyLM.from_checkpoint(checkpoint_dir, device="cpu", batch_size=8)
    settings = GenerationSettings(max_new_tokens=10)
    texts = one.generate_texts(prompts, settings)
    assert eight.generate_texts(prompts, settings) == texts
    text = max(texts, key=len)
    assert len(text) >= 5
    stop = text[2:4]
    cut = one.generate_texts([prompts[texts.index(text)]], GenerationSettings(max_new_tokens=10, until=(stop,)))[0]
    assert cut == text[: text.index(stop)]


def forced_token_checkpoint(out_dir, config, tokenizer_dir, token: int):
    """A GPT that predicts ``token`` after any input: blocks output zero, the head reads a constant state."""
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.wte.weight.fill_(1.0)
        model.norm.weight.fill_(1.0)
        model.lm_head.weight[token] = 1.0
    return save_checkpoint(out_dir, model.state_dict(), config, Tokenizer(tokenizer_dir).files())


def test_generation_stops_at_eos_and_after_max_tokens(tmp_path, eval_config, tokenizer_dir):
    tokenizer = Tokenizer(tokenizer_dir)
    piece, fox = min((p, i) for p, i in tokenizer._hf.get_vocab().items() if p.startswith("▁") and len(p) > 3)
    word = " " + piece[1:]  # a word piece: the space before the word is part of it
    lm = LitTinyLM.from_checkpoint(forced_token_checkpoint(tmp_path / "fox", eval_config, tokenizer_dir, fox))
    # The continuation as decoding the whole sequence shows it, the leading space included.
    assert lm.generate_texts(["Once"], GenerationSettings(max_new_tokens=5))[0] == word * 5
    eos = LitTinyLM.from_checkpoint(
        forced_token_checkpoint(tmp_path / "eos", eval_config, tokenizer_dir, tokenizer.eos_id)
    )
    assert eos.generate_texts(["Once"], GenerationSettings(max_new_tokens=5)) == [""]

    requests = [
        Instance("generate_until", {}, ("Once", {"until": ["\n"], "max_gen_toks": 3}), 0),
        Instance("generate_until", {}, ("Upon", {"until": [piece[1:]], "do_sample": False}), 1),
    ]
    assert lm.generate_until(requests) == [word * 3, " "]


def test_sampling_is_seeded_and_a_tiny_top_p_is_greedy(checkpoint_dir):
    greedy = LitTinyLM.from_checkpoint(checkpoint_dir, seed=1).generate_texts(["The quick"], GenerationSettings(8))
    nucleus = GenerationSettings(8, temperature=1.0, top_p=1e-6)
    assert LitTinyLM.from_checkpoint(checkpoint_dir, seed=2).generate_texts(["The quick"], nucleus) == greedy
    hot = GenerationSettings(8, temperature=5.0)
    a = LitTinyLM.from_checkpoint(checkpoint_dir, seed=3).generate_texts(["The quick"] * 3, hot)
    b = LitTinyLM.from_checkpoint(checkpoint_dir, seed=3).generate_texts(["The quick"] * 3, hot)
    assert a == b and len(set(a)) > 1


def test_unsupported_generation_options_and_foreign_tokenizers_are_refused(checkpoint_dir, eval_config, tmp_path):
    lm = LitTinyLM.from_checkpoint(checkpoint_dir)
    with pytest.raises(ValueError, match=r"\['num_beams'\] are not supported"):
        lm.generate_until([Instance("generate_until", {}, ("Hi", {"until": [], "num_beams": 4}), 0)])
    with pytest.raises(ValueError, match="leaves no room for a prompt"):
        lm.generate_texts(["Hi"], GenerationSettings(max_new_tokens=eval_config.block_size))
    from dataclasses import replace

    small = GPT(replace(eval_config, vocab_size=300))
    with pytest.raises(ValueError, match="does not belong to this model"):
        LitTinyLM(small, Tokenizer(checkpoint_dir))
