import pytest

from lit_tiny.tokenizer import Tokenizer, train_bpe_tokenizer
from tests.conftest import SAMPLE_TEXTS


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
