import pytest
import torch

from lit_tiny.config import PRESETS, Config
from lit_tiny.model import GPT


def test_tiny_llama_1b_parameter_count_on_meta_device():
    config = Config.from_name("tiny_LLaMA_1b")
    with torch.device("meta"):
        model = GPT(config)
    counted = sum(p.numel() for p in model.parameters())
    assert counted == 1_100_048_384
    assert config.num_params() == counted
    assert config.block_params() == 44_044_288
    assert config.num_params(non_embedding=True) == 968_976_384


def test_tiny_llama_1b_flops_per_token_palm_convention():
    config = Config.from_name("tiny_LLaMA_1b")
    flops = config.flops_per_token(2048)
    assert round(flops / 1e9, 3) == 7.314
    # 6 x matmul params (lm_head included) + 12 L H Q T, no causal discount.
    assert flops == 6 * (22 * (44_044_288 - 2 * 2048) + 32000 * 2048) + 12 * 22 * 32 * 64 * 2048


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_counts_its_own_parameters(name):
    config = Config.from_name(name)
    with torch.device("meta"):
        model = GPT(config)
    assert config.num_params() == sum(p.numel() for p in model.parameters())


def test_tiny_llama_120m_shape():
    c = Config.from_name("tiny_LLaMA_120M")
    assert (c.n_layer, c.n_embd, c.n_head, c.n_query_groups, c.intermediate_size) == (12, 768, 12, 1, 2048)


def test_ladder_grows_monotonically():
    ladder = [Config.from_name(n).num_params(non_embedding=True) for n in sorted(PRESETS) if n.startswith("ladder_")]
    assert len(ladder) >= 6
    assert all(a < b for a, b in zip(ladder, ladder[1:]))


def test_yaml_round_trip(tmp_path, gqa_config):
    gqa_config.save(tmp_path / "c.yaml")
    assert Config.from_file(tmp_path / "c.yaml") == gqa_config


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="Unknown model name 'nope'.*tiny_LLaMA_1b"):
        Config.from_name("nope")


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="n_query_groups"):
        Config(n_head=32, n_query_groups=5)
    with pytest.raises(ValueError, match="n_embd"):
        Config(n_embd=100, n_head=3, n_query_groups=1)


def test_unknown_yaml_key_names_the_file(tmp_path):
    path = tmp_path / "model_config.yaml"
    path.write_text("n_layer: 2\nn_layers: 3\n")
    with pytest.raises(ValueError, match=r"model_config.yaml.*n_layers"):
        Config.from_file(path)
