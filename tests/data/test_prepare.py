import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import zstandard

from lit_tiny.data.prepare import SUMMARY_FILE, prepare_files
from lit_tiny.data.readers import DataError
from lit_tiny.data.sources import check_vocab, slimpajama_files, starcoder_files, training_data
from lit_tiny.tokenizer import Tokenizer, train_bpe_tokenizer
from tests.conftest import REPO_ROOT, SAFETY_TIMEOUT_S, SAMPLE_TEXTS, train_sentencepiece
from tests.data.fixtures import write_slimpajama, write_starcoder


def all_tokens(folder) -> torch.Tensor:
    from litdata import StreamingDataset, TokensLoader

    ds = StreamingDataset(str(folder), item_loader=TokensLoader(block_size=1))
    return torch.cat([ds[i] for i in range(len(ds))]).to(torch.int64)


def documents(folder, tokenizer: Tokenizer) -> list[str]:
    """Split the stored token stream at BOS ... EOS and decode each document."""
    tokens = all_tokens(folder).tolist()
    docs, current = [], None
    for t in tokens:
        if t == tokenizer.bos_id:
            assert current is None, "BOS inside a document"
            current = []
        elif t == tokenizer.eos_id:
            docs.append(tokenizer.decode(current))
            current = None
        else:
            current.append(t)
    assert current is None, "stream ends inside a document (padding or truncation)"
    return docs


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(SAMPLE_TEXTS, vocab_size=400, out_dir=out)
    return out


def test_slimpajama_end_to_end_drops_github(tmp_path, tokenizer_dir):
    records = write_slimpajama(tmp_path / "SlimPajama", n_files=3)
    summary = prepare_files(slimpajama_files(tmp_path / "SlimPajama", "train"), tokenizer_dir, tmp_path / "out",
                            "slimpajama", exclude_sets=["RedPajamaGithub"], num_workers=2, chunk_tokens=500)
    kept = [r["text"] for r in records if r["meta"]["redpajama_set_name"] != "RedPajamaGithub"]
    github = [r["text"] for r in records if r["meta"]["redpajama_set_name"] == "RedPajamaGithub"]
    assert github and kept
    tokenizer = Tokenizer(tokenizer_dir)
    assert sorted(documents(tmp_path / "out", tokenizer)) == sorted(kept)
    assert summary["documents"] == len(kept)
    assert summary["skipped"] == {"excluded set RedPajamaGithub": len(github)}
    assert summary["tokens"] == all_tokens(tmp_path / "out").numel()
    assert json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())["documents"] == len(kept)


def test_slimpajama_validation_split(tmp_path, tokenizer_dir):
    records = write_slimpajama(tmp_path / "sp", n_files=1, split="validation")
    summary = prepare_files(slimpajama_files(tmp_path / "sp", "validation"), tokenizer_dir, tmp_path / "val", "val",
                            exclude_sets=["RedPajamaGithub"], num_workers=1)
    assert summary["documents"] == sum(r["meta"]["redpajama_set_name"] != "RedPajamaGithub" for r in records)


def test_starcoder_end_to_end_with_language_subset(tmp_path, tokenizer_dir):
    texts = write_starcoder(tmp_path / "starcoderdata", languages=("python", "java", "rust"))
    files = starcoder_files(tmp_path / "starcoderdata", languages=["python", "rust"])
    summary = prepare_files(files, tokenizer_dir, tmp_path / "out", "starcoder", num_workers=2, chunk_tokens=500)
    expected = texts["python"] + texts["rust"]
    assert sorted(documents(tmp_path / "out", Tokenizer(tokenizer_dir))) == sorted(expected)
    assert summary["documents"] == len(expected)


def test_unknown_language_lists_available(tmp_path):
    write_starcoder(tmp_path / "sc", languages=("python",))
    with pytest.raises(DataError, match=r"cobol.*available: \['python'\]"):
        starcoder_files(tmp_path / "sc", languages=["cobol"])


def test_missing_and_empty_input_folders(tmp_path):
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        slimpajama_files(tmp_path / "nowhere", "train")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no files matching.*empty"):
        slimpajama_files(tmp_path / "empty", "train")


def test_malformed_jsonl_line_is_skipped_counted_and_located(tmp_path, tokenizer_dir):
    path = tmp_path / "in" / "a.jsonl"
    path.parent.mkdir()
    path.write_text('{"text": "good one"}\n{"text": broken\n{"text": "good two"}\n{"no_text": 1}\n')
    summary = prepare_files([path], tokenizer_dir, tmp_path / "out", "generic", num_workers=1)
    assert summary["documents"] == 2
    assert summary["skipped"] == {"malformed json line": 1, "no string 'text' field": 1}
    assert any(p.startswith(f"{path}:2:") for p in summary["problems"])
    assert sorted(documents(tmp_path / "out", Tokenizer(tokenizer_dir))) == ["good one", "good two"]


def test_truncated_zst_names_the_file_and_writes_nothing(tmp_path, tokenizer_dir):
    write_slimpajama(tmp_path / "sp", n_files=2, docs_per_file=400)
    files = slimpajama_files(tmp_path / "sp", "train")
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{files[1].name}.*truncated or corrupt"):
        prepare_files(files, tokenizer_dir, tmp_path / "out", "slimpajama", num_workers=2)
    assert not (tmp_path / "out").exists()
    # Opting in to skipping keeps the good file and reports the bad one.
    summary = prepare_files(files, tokenizer_dir, tmp_path / "out", "slimpajama", num_workers=2, skip_corrupt_files=True)
    assert summary["skipped"]["corrupt file (rest of file dropped)"] == 1
    assert summary["per_file"][str(files[0])]["documents"] == 400


def test_parquet_without_content_column_names_file_and_columns(tmp_path, tokenizer_dir):
    (tmp_path / "sc" / "python").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["x = 1"], "id": ["a"]}), tmp_path / "sc" / "python" / "train.parquet")
    with pytest.raises(DataError, match=r"train.parquet: no column 'content'.*\['text', 'id'\]"):
        prepare_files(starcoder_files(tmp_path / "sc"), tokenizer_dir, tmp_path / "out", "starcoder", num_workers=1)
    assert not (tmp_path / "out").exists()


def test_generic_txt_and_parquet_inputs(tmp_path, tokenizer_dir, english):
    (tmp_path / "a.txt").write_text(english[0])
    pq.write_table(pa.table({"body": english[1:4]}), tmp_path / "b.parquet")
    with open(tmp_path / "c.jsonl.zst", "wb") as f:
        f.write(zstandard.ZstdCompressor().compress("".join(json.dumps({"text": t}) + "\n" for t in english[4:6]).encode()))
    files = [tmp_path / "a.txt", tmp_path / "b.parquet", tmp_path / "c.jsonl.zst"]
    prepare_files(files, tokenizer_dir, tmp_path / "out", "generic", column="body", num_workers=1)
    assert sorted(documents(tmp_path / "out", Tokenizer(tokenizer_dir))) == sorted(english[:6])


def test_token_ids_beyond_model_vocab_are_refused(tmp_path, tokenizer_dir, english):
    (tmp_path / "a.txt").write_text(" ".join(english))
    summary = prepare_files([tmp_path / "a.txt"], tokenizer_dir, tmp_path / "out", "generic", num_workers=1)
    assert summary["max_token_id"] >= 300
    check_vocab([tmp_path / "out"], vocab_size=400)
    with pytest.raises(DataError, match=rf"out: token ids go up to {summary['max_token_id']}.*vocab_size is 300"):
        check_vocab([tmp_path / "out"], vocab_size=300)


def test_prepare_cli_help_and_run(tmp_path, tokenizer_dir):
    write_slimpajama(tmp_path / "sp", n_files=1)
    for script in ("prepare_slimpajama.py", "prepare_starcoder.py", "prepare_files.py"):
        out = subprocess.run([sys.executable, str(REPO_ROOT / "pretrain" / script), "--help"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "pretrain" / "prepare_slimpajama.py"), "--input_dir", str(tmp_path / "sp"),
         "--tokenizer_dir", str(tokenizer_dir), "--out_dir", str(tmp_path / "out"), "--num_workers", "2",
         "--splits", "train"],
        capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "skipped: 8 excluded set RedPajamaGithub" in out.stdout
    assert (tmp_path / "out" / "train" / SUMMARY_FILE).is_file()
    # One progress bar of ours, with rates; no sign-up banner, no cursor-moving escapes from nested bars.
    assert "lightning.ai" not in out.stdout + out.stderr and "\x1b[" not in out.stdout + out.stderr
    assert "docs/s" in out.stderr and "tokens/s" in out.stderr and "[slimpajama/train]" in out.stderr


@pytest.mark.parametrize("kind", ["tokenizer.json", "tokenizer.model"])
def test_special_token_strings_in_documents_survive_preparation_as_text(tmp_path, tokenizer_dir, kind):
    """HTML, XML and NLP code are full of "<s>": one BOS and one EOS per document, the strings kept as text."""
    folder = tokenizer_dir if kind == "tokenizer.json" else train_sentencepiece(tmp_path)
    tokenizer = Tokenizer(folder)
    assert tokenizer.path.name == kind
    texts = ["<p><s>old price</s> <unk> is gone</p>", "a </s> inside code: tok.decode('<s>')", "<unk><s></s>"]
    raw = tmp_path / "docs.jsonl"
    raw.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    prepare_files([raw], folder, tmp_path / "out", "html", num_workers=1, chunk_tokens=4096)
    assert documents(tmp_path / "out", tokenizer) == texts
    assert 0 not in all_tokens(tmp_path / "out").tolist()  # no <unk>


def test_the_summary_finds_the_tokenizer_from_any_working_folder(tmp_path, tokenizer_dir, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "tok2048").mkdir(parents=True)
    elsewhere.mkdir()
    for f in tokenizer_dir.iterdir():
        (work / "tok2048" / f.name).write_bytes(f.read_bytes())
    raw = work / "docs.jsonl"
    raw.write_text("".join(json.dumps({"text": t}) + "\n" for t in SAMPLE_TEXTS))
    monkeypatch.chdir(work)
    summary = prepare_files([Path("docs.jsonl")], Path("tok2048"), Path("data/mine"), "mine", num_workers=1,
                            chunk_tokens=500)
    assert summary["tokenizer"] == str((work / "tok2048" / "tokenizer.json").resolve())
    assert summary["tokenizer_sha256"] == Tokenizer(tokenizer_dir).digest()
    monkeypatch.chdir(elsewhere)
    data = training_data([work / "data/mine"], [1.0], [work / "data/mine"], None, vocab_size=400)
    assert data.tokenizer_dir == (work / "tok2048").resolve() and data.tokenizer_sha256 == summary["tokenizer_sha256"]
