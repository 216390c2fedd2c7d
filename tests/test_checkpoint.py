import pytest
import torch

from lit_tiny.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, load_model, load_tokenizer, save_checkpoint
from lit_tiny.config import Config
from lit_tiny.files import atomic_write_dir
from lit_tiny.model import GPT
from lit_tiny.tokenizer import train_bpe_tokenizer


@pytest.fixture
def checkpoint(tmp_path, gqa_config, tokenizer_dir):
    torch.manual_seed(0)
    model = GPT(gqa_config)
    out = save_checkpoint(tmp_path / "ckpt", model.state_dict(), gqa_config, [tokenizer_dir / "tokenizer.json"])
    return out, model


def test_save_and_load_round_trip(checkpoint, gqa_config):
    folder, model = checkpoint
    assert sorted(p.name for p in folder.iterdir()) == sorted([WEIGHTS_FILE, CONFIG_FILE, "tokenizer.json", "manifest.json"])
    config, sd = load_checkpoint(folder)
    assert config == gqa_config
    for k, v in model.state_dict().items():
        assert torch.equal(sd[k], v)
    loaded = load_model(folder)
    idx = torch.randint(0, gqa_config.vocab_size, (1, 8))
    torch.testing.assert_close(loaded(idx), model(idx))


@pytest.mark.parametrize("missing", [WEIGHTS_FILE, CONFIG_FILE])
def test_missing_file_is_named(checkpoint, missing):
    folder, _ = checkpoint
    (folder / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        load_checkpoint(folder)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere")


def test_shape_mismatch_names_file_and_tensor(checkpoint, gqa_config):
    folder, _ = checkpoint
    Config(**{**gqa_config.__dict__, "vocab_size": 500}).save(folder / CONFIG_FILE)
    with pytest.raises(ValueError, match=r"model.safetensors.*wte.weight has shape \(384, 64\).*\(500, 64\)"):
        load_checkpoint(folder)


def test_truncated_weights_are_reported(checkpoint):
    folder, _ = checkpoint
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model.safetensors has [\d,]+ bytes where [\d,]+ were written: it is truncated"):
        load_checkpoint(folder)
    (folder / "manifest.json").unlink()  # a folder written before manifests: safetensors itself refuses
    with pytest.raises(ValueError, match="model.safetensors.*corrupt"):
        load_checkpoint(folder)


def test_flipped_bytes_and_a_replaced_tokenizer_are_refused(checkpoint, tmp_path, gqa_config, tokenizer_dir):
    folder, _ = checkpoint
    data = bytearray((folder / WEIGHTS_FILE).read_bytes())
    data[-100:-96] = bytes(b ^ 0xFF for b in data[-100:-96])  # inside the last tensor: safetensors would load it
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors does not match the checksum"):
        load_checkpoint(folder)

    other = tmp_path / "other_tokenizer"
    train_bpe_tokenizer(["completely different text " * 20, "other merges"], vocab_size=300, out_dir=other)
    fresh = save_checkpoint(tmp_path / "fresh", GPT(gqa_config).state_dict(), gqa_config, [tokenizer_dir / "tokenizer.json"])
    (fresh / "tokenizer.json").write_bytes((other / "tokenizer.json").read_bytes())
    with pytest.raises(ValueError, match=r"fresh/tokenizer.json has [\d,]+ bytes where [\d,]+ were written"):
        load_tokenizer(fresh)


def test_atomic_write_keeps_old_folder_when_writing_fails(tmp_path):
    target = tmp_path / "out"
    atomic_write_dir(target, lambda d: (d / "a.txt").write_text("old"))

    def broken(d):
        (d / "a.txt").write_text("new, half written")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_dir(target, broken)
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary leftovers
