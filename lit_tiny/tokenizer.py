"""Tokenizer: Hugging Face ``tokenizer.json`` or sentencepiece ``tokenizer.model``, one BOS/EOS policy.

The policy, used by data preparation, evaluation and generation alike:

* A training document is encoded as ``[BOS] + tokens(text) + [EOS]`` (:meth:`Tokenizer.encode_document`).
  Documents are packed back to back, so EOS closes a document and BOS opens the next; nothing pads.
* A prompt (generation, evaluation context) is ``[BOS] + tokens(text)`` (:meth:`Tokenizer.encode` defaults).
* Generation stops at EOS.

The tokenizer file's own post-processing (Llama's ``tokenizer.json`` adds BOS itself) is never applied,
so BOS is added exactly once whichever file format is loaded. Special-token strings inside text
(``<s>``, ``</s>``, ``<unk>``: HTML, XML and NLP code are full of them) are encoded as ordinary text:
only the policy above puts control ids into a sequence.

:meth:`Tokenizer.digest` identifies a tokenizer by what decides its ids, so that data, training,
checkpoints and evaluation can check they all use the same one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

LLAMA_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
ALPHABET_SIZE = 200  # characters a trained tokenizer keeps as tokens; rarer ones fall back to bytes


class Tokenizer:
    """Loads ``tokenizer.json`` (preferred) or ``tokenizer.model`` from a checkpoint folder or a file path."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            found = [path / name for name in TOKENIZER_FILES if (path / name).is_file()]
            if not found:
                raise FileNotFoundError(
                    f"No tokenizer in {path}: expected {' or '.join(TOKENIZER_FILES)}. Copy the tokenizer files of the "
                    "model's Hugging Face folder there, or train one with `lit-tiny train_tokenizer`."
                )
            path = found[0]
        elif not path.is_file():
            raise FileNotFoundError(f"Tokenizer file {path} does not exist")
        self.path = path

        if path.suffix == ".json":
            from tokenizers import Tokenizer as HFTokenizer

            try:
                self._hf = HFTokenizer.from_file(str(path))
            except Exception as e:
                raise ValueError(f"{path} is not a valid Hugging Face tokenizer.json: {e}") from e
            self._hf.encode_special_tokens = True  # "<s>" inside a document is text, not a document boundary
            self._sp = None
            bos, eos = self._special_tokens_from_config(path.parent)
            self.bos_id = self._hf.token_to_id(bos)
            self.eos_id = self._hf.token_to_id(eos)
            self.vocab_size = self._hf.get_vocab_size(with_added_tokens=True)
        else:
            import sentencepiece

            try:
                self._sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
            except Exception as e:
                raise ValueError(f"{path} is not a valid sentencepiece model: {e}") from e
            self._hf = None
            self.bos_id = self._sp.bos_id()
            self.eos_id = self._sp.eos_id()
            self.vocab_size = self._sp.vocab_size()
        if self.bos_id is None or self.bos_id < 0 or self.eos_id is None or self.eos_id < 0:
            raise ValueError(f"{path}: the tokenizer has no BOS or EOS token (found bos={self.bos_id}, eos={self.eos_id})")

    @staticmethod
    def _special_tokens_from_config(folder: Path) -> tuple[str, str]:
        bos, eos = LLAMA_SPECIAL_TOKENS[1], LLAMA_SPECIAL_TOKENS[2]
        config_file = folder / "tokenizer_config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text())

            def content(token, default):
                if isinstance(token, dict):
                    return token.get("content", default)
                return token or default

            bos = content(config.get("bos_token"), bos)
            eos = content(config.get("eos_token"), eos)
        return bos, eos

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        if self._hf is not None:
            ids = self._hf.encode(text, add_special_tokens=False).ids
        else:
            ids = self._sp.encode(text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def encode_document(self, text: str) -> list[int]:
        """A training document: BOS, the text, EOS."""
        return self.encode(text, bos=True, eos=True)

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids if int(i) not in (self.bos_id, self.eos_id)]
        if self._hf is not None:
            return self._hf.decode(ids, skip_special_tokens=False)
        return self._sp.decode(ids)

    def decode_continuation(self, prefix: Sequence[int], ids: Sequence[int]) -> str:
        """The text ``ids`` add after ``prefix``: what decoding the whole sequence shows past the prefix.

        Decoding ``ids`` alone loses what depends on context: Llama-style decoders drop the leading space
        of the first piece (so an indented line of code would lose a column), and a character split over
        byte pieces needs its first bytes.
        """
        head = self.decode(prefix).rstrip("\ufffd")  # a character cut at the end of the prefix is completed
        whole = self.decode([*prefix, *ids])
        return whole[len(head):] if whole.startswith(head) else self.decode(ids)

    def digest(self) -> str:
        """SHA-256 of what decides the ids: ``tokenizer.json`` (parsed, re-serialised with sorted keys, so
        formatting does not count) or ``tokenizer.model``'s bytes, and the BOS and EOS ids."""
        if self._hf is not None:
            content = json.dumps(json.loads(self.path.read_text(encoding="utf-8")), sort_keys=True).encode()
        else:
            content = self.path.read_bytes()
        return hashlib.sha256(content + f"|bos={self.bos_id}|eos={self.eos_id}".encode()).hexdigest()

    def check_fits(self, vocab_size: int) -> None:
        """Refuse a model whose embedding table has fewer rows than this tokenizer has ids."""
        if self.vocab_size > vocab_size:
            raise ValueError(
                f"{self.path} has {self.vocab_size} tokens but the model's vocab_size is {vocab_size}: "
                "the tokenizer does not belong to this model"
            )

    def files(self) -> list[Path]:
        """The files a checkpoint folder needs to rebuild this tokenizer."""
        extra = [self.path.parent / n for n in ("tokenizer_config.json", "special_tokens_map.json")]
        return [self.path] + [p for p in extra if p.is_file()]


class StreamingDecoder:
    """Text of a growing sequence, piece by piece, exactly as decoding the whole sequence shows it.

    ``text`` is what has been shown so far; ``push`` returns the text that became final with a new token.
    A character still missing some of its byte pieces (decoded as U+FFFD) is held back until it is
    complete; ``flush`` returns whatever is left once the sequence ends.
    """

    def __init__(self, tokenizer: Tokenizer, ids: Sequence[int] = ()) -> None:
        self.tokenizer, self.ids = tokenizer, list(ids)
        self.text = tokenizer.decode(self.ids).rstrip("\ufffd")

    def push(self, token: int) -> str:
        self.ids.append(int(token))
        text = self.tokenizer.decode(self.ids).rstrip("\ufffd")
        if not text.startswith(self.text):
            return ""
        new, self.text = text[len(self.text):], text
        return new

    def flush(self) -> str:
        text = self.tokenizer.decode(self.ids)
        new, self.text = text[len(os.path.commonprefix([text, self.text])):], text
        return new


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path) -> Path:
    """Train a Llama-style BPE tokenizer and write ``tokenizer.json`` and ``tokenizer_config.json``.

    The layout matches Llama 2's: ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``; ids 3 .. 258 are the
    byte-fallback pieces ``<0x00>`` .. ``<0xFF>``, so any text encodes without ``<unk>``; words carry a
    leading ``▁`` for the space before them. The result is a function of the texts alone: the same texts
    give the same file, byte for byte. ``texts`` is read twice (a one-shot iterator is read into a list).
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    n_reserved = len(LLAMA_SPECIAL_TOKENS) + 256
    if vocab_size <= n_reserved + 1:
        raise ValueError(f"vocab_size must exceed {n_reserved + 1} (specials and byte pieces), got {vocab_size}")

    def llama_style(model) -> HFTokenizer:
        tok = HFTokenizer(model)
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
        return tok

    # First learn merges over characters, then rebuild the vocabulary with the reserved ids in front.
    learner = llama_style(models.BPE())
    if iter(texts) is texts:
        texts = list(texts)
    # tokenizers keeps the ALPHABET_SIZE most frequent characters but breaks ties in their counts by hash
    # order, which changes from run to run (and with it every id after the byte pieces); so the alphabet is
    # chosen here, ties broken by code point, and handed over whole.
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - n_reserved, limit_alphabet=ALPHABET_SIZE,
                                  initial_alphabet=frequent_characters(map(learner.normalizer.normalize_str, texts),
                                                                       ALPHABET_SIZE), show_progress=False)
    learner.train_from_iterator(texts, trainer=trainer)
    learned = json.loads(learner.to_str())["model"]
    bytes_ = [f"<0x{i:02X}>" for i in range(256)]
    vocab = {token: i for i, token in enumerate(list(LLAMA_SPECIAL_TOKENS) + bytes_)}
    for token, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]

    tok = llama_style(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.add_special_tokens(list(LLAMA_SPECIAL_TOKENS))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(hf_tokenizer_config(), indent=2))
    return out_dir / "tokenizer.json"


def hf_tokenizer_config() -> dict:
    """``tokenizer_config.json`` that makes ``transformers.AutoTokenizer`` load ``tokenizer.json`` as is."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000_000,
    }


def frequent_characters(texts: Iterable[str], limit: int) -> list[str]:
    """The ``limit`` most frequent characters of ``texts``, ties broken by code point."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    return sorted(counts, key=lambda c: (-counts[c], c))[:limit]


class TextFiles:
    """The texts of ``paths`` (UTF-8, undecodable bytes replaced), read afresh on every pass over them."""

    def __init__(self, paths: Iterable[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]

    def __iter__(self) -> Iterator[str]:
        for path in self.paths:
            if not path.is_file():
                raise FileNotFoundError(f"Tokenizer training file {path} does not exist")
            yield path.read_text(encoding="utf-8", errors="replace")
