import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from lit_tiny.checkpoint import load_model
from lit_tiny.hf_interop import convert_from_hf, convert_to_hf
from lit_tiny.tokenizer import Tokenizer
from tests.test_model import hf_twin


@pytest.fixture
def hf_dir(tmp_path, gqa_config, tokenizer_dir):
    """A Hugging Face Llama folder as a user downloads it: config.json, sharded safetensors, tokenizer."""
    model = hf_twin(gqa_config)
    out = tmp_path / "hf"
    model.save_pretrained(out, max_shard_size="100KB")
    for f in tokenizer_dir.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    assert len(list(out.glob("*.safetensors"))) > 1, "fixture should exercise sharded weights"
    return out


def hf_tensors(folder):
    tensors = {}
    for f in sorted(folder.glob("*.safetensors")):
        tensors |= load_file(str(f))
    return tensors


def test_round_trip_hf_to_lit_to_hf_is_identical(tmp_path, hf_dir):
    lit = convert_from_hf(hf_dir, tmp_path / "lit")
    back = convert_to_hf(lit, tmp_path / "back")
    original, returned = hf_tensors(hf_dir), hf_tensors(back)
    assert set(original) == set(returned)
    for name, tensor in original.items():
        assert torch.equal(tensor, returned[name]), name


def test_exported_folder_loads_in_transformers_with_same_logits(tmp_path, hf_dir, gqa_config):
    lit = convert_from_hf(hf_dir, tmp_path / "lit")
    exported = convert_to_hf(lit, tmp_path / "exported")
    assert (exported / "config.json").is_file()

    hf = AutoModelForCausalLM.from_pretrained(exported, local_files_only=True, dtype=torch.float32)
    ours = load_model(lit).eval()
    idx = torch.randint(0, gqa_config.vocab_size, (2, 32))
    with torch.no_grad():
        assert (hf(idx).logits - ours(idx)).abs().max().item() <= 1e-4

    hf_tokenizer = AutoTokenizer.from_pretrained(exported, local_files_only=True)
    ours_tokenizer = Tokenizer(lit)
    text = "def add(a, b): return a + b  # ünïcödé"
    assert hf_tokenizer(text).input_ids == ours_tokenizer.encode(text)


def test_tied_embeddings_are_untied(tmp_path, hf_dir):
    tensors = hf_tensors(hf_dir)
    head = tensors.pop("lm_head.weight")
    for f in hf_dir.glob("*.safetensors"):
        f.unlink()
    (hf_dir / "model.safetensors.index.json").unlink()
    save_file(tensors, str(hf_dir / "model.safetensors"))
    lit = convert_from_hf(hf_dir, tmp_path / "lit")
    sd = load_file(str(lit / "model.safetensors"))
    assert torch.equal(sd["lm_head.weight"], tensors["model.embed_tokens.weight"])
    assert not torch.equal(sd["lm_head.weight"], head)


def test_pytorch_bin_weights_are_read_safely(tmp_path, hf_dir):
    tensors = hf_tensors(hf_dir)
    for f in hf_dir.glob("*.safetensors"):
        f.unlink()
    torch.save(tensors, hf_dir / "pytorch_model.bin")
    lit = convert_from_hf(hf_dir, tmp_path / "lit", dtype="bfloat16")
    sd = load_file(str(lit / "model.safetensors"))
    assert sd["wte.weight"].dtype == torch.bfloat16


def test_missing_config_json_names_the_file(tmp_path, hf_dir):
    (hf_dir / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        convert_from_hf(hf_dir, tmp_path / "lit")
    assert not (tmp_path / "lit").exists()


def test_weights_that_do_not_fit_config_json_name_the_mismatch(tmp_path, hf_dir):
    config = json.loads((hf_dir / "config.json").read_text())
    config["intermediate_size"] = 128
    (hf_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"hf: model.layers.0.mlp.gate_proj.weight has shape \(96, 64\) but config.json "
                                         r"\(intermediate_size=128, hidden_size=64\) implies \(128, 64\)"):
        convert_from_hf(hf_dir, tmp_path / "lit")
    assert not (tmp_path / "lit").exists()


def test_a_head_count_that_does_not_fit_names_the_config_fields(tmp_path, hf_dir):
    config = json.loads((hf_dir / "config.json").read_text())
    config["num_key_value_heads"] = 4  # the weights have 2 key/value heads
    (hf_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model.layers.0.self_attn.k_proj.weight has shape \(32, 64\) but config.json "
                                         r"\(num_key_value_heads=4, head_dim=16, hidden_size=64\) implies \(64, 64\)"):
        convert_from_hf(hf_dir, tmp_path / "lit")


def test_a_missing_shard_is_named_from_the_index(tmp_path, hf_dir):
    index = json.loads((hf_dir / "model.safetensors.index.json").read_text())
    shard = index["weight_map"]["model.layers.1.mlp.down_proj.weight"]
    (hf_dir / shard).unlink()
    with pytest.raises(FileNotFoundError, match=rf"hf/{shard} is missing: model.safetensors.index.json lists it"):
        convert_from_hf(hf_dir, tmp_path / "lit")


def test_export_keeps_the_stored_dtype(tmp_path, hf_dir):
    lit = convert_from_hf(hf_dir, tmp_path / "lit", dtype="bfloat16")
    exported = convert_to_hf(lit, tmp_path / "hf_bf16")
    assert {t.dtype for t in hf_tensors(exported).values()} == {torch.bfloat16}
    assert json.loads((exported / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert {t.dtype for t in hf_tensors(convert_to_hf(lit, tmp_path / "hf_fp32", dtype="float32")).values()} == {
        torch.float32}


def test_missing_layer_names_the_tensor(tmp_path, hf_dir):
    config = json.loads((hf_dir / "config.json").read_text())
    config["num_hidden_layers"] = 3
    (hf_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model.layers.2.self_attn.q_proj.weight"):
        convert_from_hf(hf_dir, tmp_path / "lit")


def test_unsupported_llama_options_are_refused(tmp_path, hf_dir):
    config = json.loads((hf_dir / "config.json").read_text())
    config["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    (hf_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="rope_scaling"):
        convert_from_hf(hf_dir, tmp_path / "lit")


def test_cli_help_works():
    import subprocess
    import sys

    for cmd in ("convert_from_hf", "convert_to_hf", "generate", "train_tokenizer"):
        out = subprocess.run([sys.executable, "-m", "lit_tiny", cmd, "--help"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "--checkpoint_dir" in out.stdout or "--hf_dir" in out.stdout or "--inputs" in out.stdout
