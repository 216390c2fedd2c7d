import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lit_tiny.config import Config
from lit_tiny.hf_interop import state_dict_from_hf
from lit_tiny.model import GPT, build_rope_cache
from tests.conftest import randomize_norms


def hf_twin(config: Config) -> LlamaForCausalLM:
    hf_config = LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.n_embd,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_query_groups,
        max_position_embeddings=config.block_size,
        rms_norm_eps=config.norm_eps,
        rope_theta=config.rope_base,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(hf_config).float()
    randomize_norms(model)
    return model


def test_logits_and_gradients_match_hf_llama_with_gqa(gqa_config):
    assert 1 < gqa_config.n_query_groups < gqa_config.n_head
    hf = hf_twin(gqa_config)
    ours = GPT(gqa_config)
    ours.load_state_dict(state_dict_from_hf({k: v.clone() for k, v in hf.state_dict().items()}, gqa_config))

    idx = torch.randint(0, gqa_config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(1))
    ours_logits = ours(idx)
    hf_logits = hf(idx).logits
    assert ours_logits.shape == (2, 48, gqa_config.vocab_size)
    assert (ours_logits - hf_logits).abs().max().item() <= 1e-4

    target = torch.randn_like(ours_logits)
    (ours_logits * target).sum().backward()
    (hf_logits * target).sum().backward()
    ours_grads = {k: v.grad for k, v in ours.named_parameters()}
    hf_grads = state_dict_from_hf({k: v.grad for k, v in hf.named_parameters()}, gqa_config)
    assert set(ours_grads) == set(hf_grads)
    for name, grad in ours_grads.items():
        assert grad is not None, name
        torch.testing.assert_close(grad, hf_grads[name], atol=1e-4, rtol=1e-4, msg=name)


def test_rope_cache_is_fp32_and_half_rotation():
    cos, sin = build_rope_cache(8, 6, 10000.0)
    assert cos.dtype == torch.float32 and cos.shape == (8, 6)
    torch.testing.assert_close(cos[:, :3], cos[:, 3:])  # the two halves share frequencies
    assert torch.allclose(cos[0], torch.ones(6)) and torch.allclose(sin[0], torch.zeros(6))


def test_bf16_model_keeps_fp32_statistics(gqa_config):
    model = GPT(gqa_config).to(torch.bfloat16)
    idx = torch.randint(0, gqa_config.vocab_size, (1, 16))
    logits = model(idx)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    assert model.rope_cache(idx.device)[0].dtype == torch.float32


def test_init_follows_tinyllama(gqa_config):
    config = Config(**{**gqa_config.__dict__, "n_embd": 256, "n_head": 4, "intermediate_size": 512, "n_layer": 4})
    torch.manual_seed(0)
    model = GPT(config)
    std = (2 / (5 * 256)) ** 0.5
    out_std = 1 / 256**0.5 / 4
    assert model.wte.weight.std().item() == pytest.approx(std, rel=0.05)
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(std, rel=0.05)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(out_std, rel=0.05)
    assert model.blocks[3].mlp.proj.weight.std().item() == pytest.approx(out_std, rel=0.05)
    assert torch.all(model.blocks[0].norm_1.weight == 1)


def test_kv_cache_prefill_in_chunks_matches_full_forward(gqa_config):
    torch.manual_seed(0)
    model = GPT(gqa_config).eval()
    idx = torch.randint(0, gqa_config.vocab_size, (2, 20))
    with torch.no_grad():
        full = model(idx)
        model.set_kv_cache(batch_size=2)
        parts = [model(idx[:, :7]), model(idx[:, 7:8], start=7), model(idx[:, 8:], start=8)]
        model.clear_kv_cache()
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_too_long_input_is_refused(gqa_config):
    model = GPT(gqa_config)
    with pytest.raises(ValueError, match="exceeds"):
        model(torch.zeros(1, gqa_config.block_size + 1, dtype=torch.long))


def test_flash_backend_is_lazy_and_explains_itself(gqa_config):
    config = Config(**{**gqa_config.__dict__, "attention_backend": "flash"})
    model = GPT(config)  # building never imports flash-attn
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="flash-attn"):
            model(torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.gpu
def test_flash_backend_matches_sdpa_on_gpu(gqa_config):
    pytest.importorskip("flash_attn")
    torch.manual_seed(0)
    sdpa = GPT(gqa_config).cuda().to(torch.bfloat16)
    flash = GPT(Config(**{**gqa_config.__dict__, "attention_backend": "flash"})).cuda().to(torch.bfloat16)
    flash.load_state_dict(sdpa.state_dict())
    idx = torch.randint(0, gqa_config.vocab_size, (2, 64), device="cuda")
    torch.testing.assert_close(flash(idx).float(), sdpa(idx).float(), atol=2e-2, rtol=2e-2)
