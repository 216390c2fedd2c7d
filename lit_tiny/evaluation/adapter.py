"""An lm-evaluation-harness model that runs a lit_tiny :class:`~lit_tiny.model.GPT` directly.

No conversion to Hugging Face format happens: the weights, the tokenizer and the BOS policy are the
ones the model was trained with (``lit_tiny.tokenizer``: a prompt is ``[BOS] + tokens(text)``).

What lm-eval asks of a model, and how this class answers:

* ``loglikelihood``: :class:`~lm_eval.api.model.TemplateLM` splits each (context, continuation) pair into
  tokens; :meth:`LitTinyLM._loglikelihood_tokens` sorts the requests by length (longest first, so the
  first batch shows the worst-case memory), batches them with right padding (causal attention never
  looks at the pads that follow a row, so no attention mask is needed), and runs one forward pass per
  batch. Requests that share every input token (e.g. the four one-token MMLU answers) share that pass.
* ``loglikelihood_rolling``: the text is encoded *without* BOS and scored in windows whose first
  context token is BOS, so the score is log P(text | BOS) with a single BOS. (Encoding with BOS and
  then prefixing BOS again, as a Hugging Face Llama tokenizer with lm-eval's ``HFLM`` does, scores a
  second BOS.)
* ``generate_until``: sampling or greedy decoding with the KV cache, stopping at EOS, at any of the
  stop strings, or after ``max_gen_toks`` tokens. Prompts of equal token length are decoded together.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import Collator, normalize_gen_kwargs
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from lit_tiny.devices import inference_dtype, resolve_device, resolve_precision
from lit_tiny.generate import sample_next
from lit_tiny.model import GPT
from lit_tiny.tokenizer import Tokenizer

SUPPORTED_GEN_KWARGS = frozenset({"until", "max_gen_toks", "do_sample", "temperature", "top_k", "top_p"})


@dataclass(frozen=True)
class GenerationSettings:
    """How to continue a prompt.

    Args:
        max_new_tokens: Most tokens to generate.
        until: Stop strings; the returned text is cut before the first one found.
        temperature: 0 decodes greedily.
        top_k: Sample among the k most likely tokens only.
        top_p: Sample from the smallest set of tokens whose probabilities sum to at least p.
    """

    max_new_tokens: int
    until: tuple[str, ...] = ()
    temperature: float = 0.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def cut_at_stop(text: str, until: Sequence[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in until if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def warn_truncated(count: int, what: str, limit: int) -> None:
    if count:
        logging.getLogger(__name__).warning(
            f"{count} {what} were longer than {limit} tokens and lost tokens on the left (as in lm-eval's HFLM)"
        )


class LitTinyLM(TemplateLM):
    """lm-eval model backed by a lit_tiny GPT and its tokenizer.

    Args:
        model: The GPT to evaluate; it is put in eval mode and not moved.
        tokenizer: The tokenizer the model was trained with.
        batch_size: Sequences per forward pass (log-likelihoods) and prompts decoded together (generation).
        max_length: Longest input in tokens; longer log-likelihood inputs lose tokens on the left.
            Default: the model's ``block_size``.
        max_new_tokens: Generation length when a task does not set one (lm-eval's ``max_gen_toks``).
        seed: Seed of the sampling generator (greedy decoding does not use it).
        checkpoint_dir: Recorded in the results when the model came from a folder.
    """

    def __init__(
        self,
        model: GPT,
        tokenizer: Tokenizer,
        batch_size: int = 1,
        max_length: Optional[int] = None,
        max_new_tokens: int = 256,
        seed: int = 1234,
        checkpoint_dir: Optional[Path] = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        tokenizer.check_fits(model.config.vocab_size)
        self.model = model.eval()
        self.lit_tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length or model.config.block_size
        if self.max_length > model.config.block_size:
            raise ValueError(f"max_length {self.max_length} exceeds the model's block_size {model.config.block_size}")
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self._device = model.lm_head.weight.device
        self.generator = torch.Generator(device=self._device).manual_seed(seed)

    @classmethod
    def from_checkpoint(
        cls, checkpoint_dir: Path, device: str = "auto", precision: Optional[str] = None, **kwargs
    ) -> "LitTinyLM":
        """Load model and tokenizer from a lit_tiny checkpoint folder (``precision``: ``lit_tiny.devices``)."""
        from lit_tiny.checkpoint import load_model, load_tokenizer

        checkpoint_dir = Path(checkpoint_dir)
        device = resolve_device(device)
        dtype = inference_dtype(resolve_precision(precision, device, training=False))
        model = load_model(checkpoint_dir, device=device, dtype=dtype)
        tokenizer = load_tokenizer(checkpoint_dir)
        return cls(model, tokenizer, checkpoint_dir=checkpoint_dir, **kwargs)

    # ------------------------------------------------------------------ what lm-eval reads

    @property
    def eot_token_id(self) -> int:
        return self.lit_tokenizer.eos_id

    @property
    def prefix_token_id(self) -> int:
        return self.lit_tokenizer.bos_id

    def tok_encode(self, string: str, add_special_tokens: Optional[bool] = None, **kwargs) -> list[int]:
        """Token ids of ``string``: with BOS in front unless ``add_special_tokens`` is False.
        With ``add_special_tokens=None`` a string that already starts with the BOS token gets no second one."""
        ids = self.lit_tokenizer.encode(string, bos=False)
        if add_special_tokens is False or (add_special_tokens is None and ids[:1] == [self.prefix_token_id]):
            return ids
        return [self.prefix_token_id] + ids

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return self.lit_tokenizer.decode(tokens)

    def get_model_info(self) -> dict:
        """Merged by lm-eval into ``results["config"]``."""
        p = self.model.lm_head.weight
        return {
            "checkpoint_dir": str(self.checkpoint_dir) if self.checkpoint_dir else None,
            "model_config": asdict(self.model.config),
            "model_num_parameters": self.model.config.num_params(),
            "model_dtype": str(p.dtype).removeprefix("torch."),
            "model_device": str(p.device),
            "lit_tiny_batch_size": self.batch_size,
            "padding": "right, no attention mask (causal attention never reads later positions)",
            "max_length": self.max_length,
            "max_new_tokens": self.max_new_tokens,
            "sampling_seed": self.seed,
            "bos_policy": "context = [BOS] + tokens(context); rolling windows start with one BOS",
        }

    # ------------------------------------------------------------------ log-likelihoods

    @torch.inference_mode()
    def _loglikelihood_tokens(
        self, requests: list[tuple[tuple[str, str] | None, list[int], list[int]]], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        """(sum of log-probs of the continuation tokens, whether greedy decoding reproduces them) per request."""
        collator = Collator(
            requests,
            sort_fn=lambda r: (-len(r[1] + r[2]), tuple(r[1] + r[2])),
            group_by="contexts",
            group_fn=lambda r: r[1] + r[2][:-1],
        )
        results: list[tuple[float, bool]] = []
        truncated = 0
        pbar = tqdm(total=len(requests), disable=disable_tqdm, desc="Log-likelihoods")
        for chunk in collator.get_batched(n=self.batch_size):
            inputs = []
            for _, context, continuation in chunk:
                if not context or not continuation:
                    raise ValueError("Every log-likelihood request needs a non-empty context and continuation")
                if len(continuation) > self.max_length:
                    raise ValueError(
                        f"A continuation of {len(continuation)} tokens does not fit max_length {self.max_length}"
                    )
                truncated += len(context) + len(continuation) > self.max_length + 1
                inputs.append((context + continuation)[-(self.max_length + 1) :][:-1])
            width = max(len(x) for x in inputs)
            batch = torch.full((len(inputs), width), self.eot_token_id, dtype=torch.long, device=self.device)
            for row, ids in enumerate(inputs):
                batch[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            logprobs = F.log_softmax(self.model(batch).float(), dim=-1)

            for (request, context, continuation), row_logprobs, ids in zip(chunk, logprobs, inputs, strict=True):
                window = row_logprobs[len(ids) - len(continuation) : len(ids)].unsqueeze(0)
                for req, cont, lp in collator.get_cache(
                    req_str=request, cxt_toks=context, cont_toks=continuation, logits=window
                ):
                    target = torch.tensor(cont, dtype=torch.long, device=self.device)
                    lp = lp[0, -len(cont) :]
                    answer = (float(lp.gather(-1, target[:, None]).sum()), bool((lp.argmax(-1) == target).all()))
                    results.append(answer)
                    if req is not None:
                        self.cache_hook.add_partial("loglikelihood", req, answer)
                    pbar.update(1)
        pbar.close()
        warn_truncated(truncated, "log-likelihood inputs", self.max_length)
        return collator.get_original(results)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """log P(text | BOS) of each request's text, in windows of at most ``max_length`` tokens."""
        windows: list[tuple[None, list[int], list[int]]] = []
        owners: list[int] = []
        for i, (string,) in enumerate(req.args for req in requests):
            tokens = self.tok_encode(string, add_special_tokens=False)
            for context, continuation in map(
                make_disjoint_window,
                get_rolling_token_windows(tokens, self.prefix_token_id, self.max_length, context_len=1),
            ):
                windows.append((None, context, continuation))
                owners.append(i)
        totals = [0.0] * len(requests)
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)
        for owner, (logprob, _) in zip(owners, scores, strict=True):
            totals[owner] += logprob
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    # ------------------------------------------------------------------ generation

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Continue each request's context with its own generation kwargs (lm-eval's ``until``,
        ``max_gen_toks``, ``do_sample``, ``temperature``, ``top_k``, ``top_p``)."""
        by_settings: dict[GenerationSettings, list[int]] = {}
        for i, req in enumerate(requests):
            by_settings.setdefault(self.settings_from_gen_kwargs(req.args[1]), []).append(i)
        outputs: list[str] = [""] * len(requests)
        pbar = tqdm(total=len(requests), disable=disable_tqdm, desc="Generating")
        for settings, indices in by_settings.items():
            texts = self.generate_texts([requests[i].args[0] for i in indices], settings, pbar=pbar)
            for i, text in zip(indices, texts, strict=True):
                outputs[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
        pbar.close()
        return outputs

    def settings_from_gen_kwargs(self, gen_kwargs: dict) -> GenerationSettings:
        unknown = sorted(set(gen_kwargs) - SUPPORTED_GEN_KWARGS - {"max_new_tokens", "max_tokens"})
        if unknown:
            raise ValueError(
                f"Generation options {unknown} are not supported by LitTinyLM; "
                f"supported: {sorted(SUPPORTED_GEN_KWARGS)}"
            )
        kwargs = normalize_gen_kwargs(gen_kwargs, self.max_new_tokens)
        return GenerationSettings(
            max_new_tokens=kwargs["max_gen_toks"],
            until=tuple(kwargs["until"]),
            temperature=float(kwargs["temperature"]) if kwargs["do_sample"] else 0.0,
            top_k=kwargs.get("top_k"),
            top_p=kwargs.get("top_p"),
        )

    def generate_texts(
        self, prompts: Sequence[str], settings: GenerationSettings, pbar: Optional[tqdm] = None
    ) -> list[str]:
        """Continuations of ``prompts`` (each encoded as ``[BOS] + tokens``), cut before the first stop string.

        Contexts longer than ``max_length - max_new_tokens`` tokens lose tokens on the left. Prompts are
        sorted by token length, longest first, and prompts of equal length are decoded together in
        batches of ``batch_size``; generation is exact either way since no row is padded.
        """
        max_context = self.max_length - settings.max_new_tokens
        if max_context < 1:
            raise ValueError(
                f"Generating {settings.max_new_tokens} tokens leaves no room for a prompt "
                f"in max_length {self.max_length}"
            )
        encoded = [self.tok_encode(p) for p in prompts]
        warn_truncated(sum(len(ids) > max_context for ids in encoded), "prompts", max_context)
        encoded = [ids[-max_context:] for ids in encoded]
        order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), prompts[i]))
        outputs: list[str] = [""] * len(prompts)
        start = 0
        while start < len(order):
            length = len(encoded[order[start]])
            batch = [order[start]]
            while (
                len(batch) < self.batch_size
                and start + len(batch) < len(order)
                and len(encoded[order[start + len(batch)]]) == length
            ):
                batch.append(order[start + len(batch)])
            texts = self._decode_batch(torch.tensor([encoded[i] for i in batch], device=self.device), settings)
            for i, text in zip(batch, texts, strict=True):
                outputs[i] = text
            if pbar is not None:
                pbar.update(len(batch))
            start += len(batch)
        return outputs

    @torch.inference_mode()
    def _decode_batch(self, prompt: torch.Tensor, settings: GenerationSettings) -> list[str]:
        """Decode a (B, T) batch of equal-length prompts with the KV cache."""
        batch_size, length = prompt.shape
        prompts = prompt.tolist()
        tokens: list[list[int]] = [[] for _ in range(batch_size)]
        texts = [""] * batch_size
        done = [False] * batch_size
        self.model.set_kv_cache(batch_size=batch_size, max_seq_len=length + settings.max_new_tokens)
        try:
            logits = self.model(prompt)[:, -1]
            for step in range(settings.max_new_tokens):
                next_tokens = sample_next(logits, settings.temperature, settings.top_k, settings.top_p, self.generator)
                for row, token in enumerate(next_tokens.tolist()):
                    if done[row]:
                        continue
                    if token == self.eot_token_id:
                        done[row] = True
                        continue
                    tokens[row].append(token)
                    continuation = self.lit_tokenizer.decode_continuation(prompts[row], tokens[row])
                    texts[row], done[row] = cut_at_stop(continuation, settings.until)
                if all(done) or step == settings.max_new_tokens - 1:
                    break
                logits = self.model(next_tokens.view(batch_size, 1), start=length + step)[:, -1]
        finally:
            self.model.clear_kv_cache()
        return texts
