import hashlib
import subprocess
import sys

import pytest

from lit_tiny.tokenizer import ALPHABET_SIZE, TextFiles, Tokenizer, frequent_characters, train_bpe_tokenizer
from tests.conftest import SAMPLE_TEXTS, train_sentencepiece


def test_llama_layout_of_trained_tokenizer(tokenizer_dir):
    tok = Tokenizer(tokenizer_dir)
    assert (tok.bos_id, tok.eos_id, tok.vocab_size) == (1, 2, 384)
    assert tok._hf.token_to_id("<unk>") == 0
    assert tok._hf.token_to_id("<0x00>") == 3 and tok._hf.token_to_id("<0xFF>") == 258


@pytest.mark.parametrize(
    "text", ["hello world", " leading space", "tabs\tand\n\nnewlines  ", "ünïcödé 漢字 🙂 ℵ", "", *SAMPLE_TEXTS[:6]]
)
def test_round_trip(tokenizer_dir, text):
    tok = Tokenizer(tokenizer_dir)
    ids = tok.encode(text)
    assert 0 not in ids, "byte fallback means no <unk>"
    assert tok.decode(ids) == text


def test_bos_eos_policy(tokenizer_dir):
    tok = Tokenizer(tokenizer_dir)
    body = tok.encode("abc", bos=False)
    assert tok.encode("abc") == [1, *body]
    assert tok.encode_document("abc") == [1, *body, 2]
    assert tok.bos_id not in body  # the file's own post-processor adds nothing


def test_sentencepiece_model_is_supported(tmp_path):
    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SAMPLE_TEXTS))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "tokenizer"), vocab_size=400, model_type="bpe", minloglevel=2,
        byte_fallback=True, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
    )
    tok = Tokenizer(tmp_path)
    assert tok.path.name == "tokenizer.model"
    ids = tok.encode_document("The quick brown fox")
    assert ids[0] == 1 and ids[-1] == 2 and ids.count(1) == 1
    assert tok.decode(ids) == "The quick brown fox"


def test_missing_tokenizer_names_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json or tokenizer.model"):
        Tokenizer(tmp_path)


def test_vocab_too_small_is_refused(tmp_path):
    with pytest.raises(ValueError, match="vocab_size must exceed"):
        train_bpe_tokenizer(["abc"], vocab_size=100, out_dir=tmp_path)


@pytest.mark.parametrize("text", ["<p><s>old price</s> <unk> new</p>", "a </s> b", "<s>"])
def test_special_token_strings_inside_text_are_text(tokenizer_dir, text):
    tok = Tokenizer(tokenizer_dir)
    ids = tok.encode_document(text)
    assert ids.count(tok.bos_id) == 1 and ids.count(tok.eos_id) == 1 and 0 not in ids
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids) == text


def test_special_token_strings_stay_text_with_sentencepiece_too(tmp_path):
    tok = Tokenizer(train_sentencepiece(tmp_path))
    text = "<p><s>old price</s> <unk> new</p>"
    ids = tok.encode_document(text)
    assert ids.count(1) == 1 and ids.count(2) == 1 and 0 not in ids
    assert tok.decode(ids) == text


def test_digest_names_the_content_not_the_formatting(tokenizer_dir, tmp_path):
    import json

    tok = Tokenizer(tokenizer_dir)
    copy = tmp_path / "reformatted"
    copy.mkdir()
    (copy / "tokenizer.json").write_text(json.dumps(json.loads((tokenizer_dir / "tokenizer.json").read_text()), indent=4))
    (copy / "tokenizer_config.json").write_text((tokenizer_dir / "tokenizer_config.json").read_text())
    assert Tokenizer(copy).digest() == tok.digest()
    other = tmp_path / "other"
    train_bpe_tokenizer([t[::-1] for t in SAMPLE_TEXTS], vocab_size=384, out_dir=other)
    assert Tokenizer(other).vocab_size == tok.vocab_size and Tokenizer(other).digest() != tok.digest()


@pytest.mark.parametrize("text", ["import os (or\"x\")", "Smile 🙂 and ünïcödé", "def f():\n    return 1", " lead"])
def test_streamed_text_is_what_decoding_the_whole_sequence_shows(tokenizer_dir, text):
    """Wherever the prompt ends, the streamed continuation adds up to the decoding of the whole sequence:
    the leading space of the first new piece and characters split over byte pieces included."""
    from lit_tiny.tokenizer import StreamingDecoder

    tok = Tokenizer(tokenizer_dir)
    ids = tok.encode(text)
    whole = tok.decode(ids)
    assert whole == text
    for k in range(1, len(ids)):
        decoder = StreamingDecoder(tok, ids[:k])
        shown = decoder.text + "".join(decoder.push(i) for i in ids[k:]) + decoder.flush()
        assert shown == whole, (k, shown)
        assert tok.decode(ids[:k]).rstrip("\ufffd") + tok.decode_continuation(ids[:k], ids[k:]) == whole


# 400 characters, each exactly 3 times: the alphabet's last places are decided by ties alone.
TIED = """
import sys
from lit_tiny.tokenizer import train_bpe_tokenizer
chars = [chr(c) for c in range(0x100, 0x100 + 400)]
texts = (" ".join(chars[i:i + 20]) for i in range(0, 400, 20))
train_bpe_tokenizer(list(texts) * 3 + ["the quick brown fox"] * 40, 512, sys.argv[1])
"""


def test_training_is_a_function_of_the_texts_in_every_process(tmp_path):
    """tokenizers breaks ties in character counts by a per-process hash order; the trained file must not
    change with it (a demo corpus built twice must give the same token ids)."""
    digests = set()
    for i in range(3):
        out = tmp_path / str(i)
        subprocess.run([sys.executable, "-c", TIED, str(out)], check=True)
        digests.add(hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_alphabet_counts_characters_as_the_normalizer_leaves_them(tmp_path):
    assert frequent_characters(["▁a▁b", "▁ba"], 10) == ["▁", "a", "b"]
    # Trained on texts whose spaces are their most frequent character, the alphabet holds ▁ and no space.
    vocab = Tokenizer(train_bpe_tokenizer(["a b c d e"] * 20, 300, tmp_path).parent)._hf.get_vocab()
    assert "▁" in vocab and " " not in vocab
    assert frequent_characters(["zyx"], 2) == ["x", "y"]  # ties by code point
    assert ALPHABET_SIZE == 200


def test_text_files_can_be_read_twice_and_name_a_missing_file(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    files = TextFiles([tmp_path / "a.txt"])
    assert list(files) == list(files) == ["alpha"]
    with pytest.raises(FileNotFoundError, match="missing.txt does not exist"):
        list(TextFiles([tmp_path / "missing.txt"]))
