"""The speed options give the same numbers as the plain paths: fused AdamW, FlashAttention-2, torch.compile."""

import sys

import pytest
import torch

from lit_tiny.config import Config
from lit_tiny.model import GPT
from lit_tiny.training.optimizer import make_optimizer
from tests.conftest import randomize_norms


def tiny_config(**overrides) -> Config:
    fields = dict(name="test_speed", block_size=16, vocab_size=64, n_layer=1, n_embd=32, n_head=4,
                  n_query_groups=2, intermediate_size=48)
    return Config(**{**fields, **overrides})


def train(model: GPT, fused: bool, steps: int = 4) -> torch.optim.Optimizer:
    optimizer = make_optimizer(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-5, fused=fused)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, model.config.vocab_size, (2, 16), generator=g)
        model(idx, targets=idx.roll(-1, dims=1)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return optimizer


def test_fused_adamw_matches_unfused_on_cpu():
    torch.manual_seed(0)
    plain = GPT(tiny_config())
    fused = GPT(tiny_config())
    fused.load_state_dict(plain.state_dict())
    start = {n: p.detach().clone() for n, p in plain.named_parameters()}

    assert train(fused, fused=True).defaults["fused"] is True
    assert train(plain, fused=False).defaults["fused"] is False
    for name, p in plain.named_parameters():
        assert not torch.equal(p, start[name]), f"{name} did not train"
        torch.testing.assert_close(dict(fused.named_parameters())[name], p, atol=1e-6, rtol=1e-5, msg=name)


def test_fused_adamw_is_automatic_only_on_gpus():
    model = GPT(tiny_config())
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-5)
    assert optimizer.defaults["fused"] is (model.lm_head.weight.device.type == "cuda")


def test_flash_backend_without_flash_attn_raises_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # makes `import flash_attn` fail
    model = GPT(tiny_config(attention_backend="flash"))
    with pytest.raises(ImportError, match="attention_backend='flash' needs the flash-attn package"):
        model(torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch internals
def test_compiled_model_matches_eager():
    """torch.compile (inductor, C++ on CPU) of the whole model and its chunked loss. The first run on
    a machine compiles for ~25 s; later runs reuse inductor's on-disk cache."""
    torch.manual_seed(0)
    eager = GPT(tiny_config())
    randomize_norms(eager)
    compiled = GPT(tiny_config())
    compiled.load_state_dict(eager.state_dict())
    idx = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    targets = idx.roll(-1, dims=1)

    eager_loss = eager(idx, targets=targets)
    eager_loss.backward()
    compiled_loss = torch.compile(compiled)(idx, targets=targets)
    compiled_loss.backward()
    torch.testing.assert_close(compiled_loss, eager_loss, atol=1e-5, rtol=1e-5)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.gpu
def test_flash_matches_sdpa_forward_and_gradients_on_gpu(gqa_config):
    pytest.importorskip("flash_attn")
    torch.manual_seed(0)
    sdpa = GPT(gqa_config).cuda().to(torch.bfloat16)
    randomize_norms(sdpa)
    flash = GPT(Config(**{**gqa_config.__dict__, "attention_backend": "flash"})).cuda().to(torch.bfloat16)
    flash.load_state_dict(sdpa.state_dict())
    idx = torch.randint(0, gqa_config.vocab_size, (2, 64), device="cuda")

    torch.testing.assert_close(flash(idx).float(), sdpa(idx).float(), atol=2e-2, rtol=2e-2)
    for model in (sdpa, flash):
        model(idx, targets=idx.roll(-1, dims=1)).backward()
    for (name, p), q in zip(sdpa.named_parameters(), flash.parameters()):
        assert q.grad is not None and q.grad.abs().sum() > 0, name
        scale = p.grad.float().abs().max()
        torch.testing.assert_close(q.grad.float() / scale, p.grad.float() / scale, atol=3e-2, rtol=0, msg=name)


@pytest.mark.gpu
def test_flash_under_bf16_autocast_matches_sdpa_on_gpu(gqa_config):
    """bf16-mixed: fp32 weights, autocast gives FlashAttention bf16 inputs, gradients stay fp32."""
    pytest.importorskip("flash_attn")
    torch.manual_seed(0)
    sdpa = GPT(gqa_config).cuda()
    flash = GPT(Config(**{**gqa_config.__dict__, "attention_backend": "flash"})).cuda()
    flash.load_state_dict(sdpa.state_dict())
    idx = torch.randint(0, gqa_config.vocab_size, (2, 64), device="cuda")
    losses = []
    for model in (sdpa, flash):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(idx, targets=idx.roll(-1, dims=1))
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0], atol=1e-2, rtol=1e-2)
    for (name, p), q in zip(sdpa.named_parameters(), flash.parameters()):
        assert q.grad.dtype == torch.float32, name
        scale = p.grad.abs().max()
        torch.testing.assert_close(q.grad / scale, p.grad / scale, atol=3e-2, rtol=0, msg=name)


@pytest.mark.gpu
def test_fused_adamw_matches_unfused_on_gpu():
    torch.manual_seed(0)
    plain = GPT(tiny_config()).cuda()
    fused = GPT(tiny_config()).cuda()
    fused.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 64, (2, 16), generator=g).cuda()
    for model, flag in ((plain, False), (fused, True)):
        optimizer = make_optimizer(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-5, fused=flag)
        for _ in range(4):
            model(idx, targets=idx.roll(-1, dims=1)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for (name, p), q in zip(plain.named_parameters(), fused.parameters()):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-4, msg=name)
