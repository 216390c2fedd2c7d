"""The optional kernels give the reference path's numbers: each SDPA kernel choice (and that it is the kernel
that runs), Liger's RMSNorm, SwiGLU, RoPE and fused linear cross-entropy. CPU tests cover what runs on a CPU and
the errors; the CUDA ones are marked ``gpu``."""

import contextlib
import sys

import pytest
import torch
import torch.nn.functional as F

from lit_tiny import kernels
from lit_tiny.config import Config
from lit_tiny.losses import IGNORE_INDEX, cross_entropy_loss
from lit_tiny.model import GPT, RMSNorm, apply_rope, build_rope_cache
from lit_tiny.training.speed import RecordOps
from tests.conftest import randomize_norms

# The ATen op each forced SDPA kernel runs as (forward), by device; math runs as plain matmuls and softmax.
SDPA_OPS = {
    "cpu": {"sdpa_flash": "aten::_scaled_dot_product_flash_attention_for_cpu", "sdpa_math": None},
    "cuda": {"sdpa_cudnn": "aten::_scaled_dot_product_cudnn_attention",
             "sdpa_flash": "aten::_scaled_dot_product_flash_attention",
             "sdpa_efficient": "aten::_scaled_dot_product_efficient_attention", "sdpa_math": None},
}


def with_backends(config: Config, **backends) -> Config:
    return Config(**{**config.__dict__, **backends})


def loss_grads_and_ops(config: Config, idx: torch.Tensor, dtype: torch.dtype | None = None):
    """Loss, every gradient and the attention ops of one forward/backward, from seeded weights."""
    torch.manual_seed(0)
    model = GPT(config).to(idx.device)
    randomize_norms(model)
    autocast = torch.autocast(idx.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    with RecordOps() as ops, autocast:
        loss = model(idx, targets=idx.roll(-1, dims=1))
    with ops:
        loss.backward()
    return loss, {n: p.grad for n, p in model.named_parameters()}, ops.attention_kernels()


def assert_same_training_step(device: str, gqa_config: Config, backends: dict, dtype=None, tol=None):
    idx = torch.randint(0, gqa_config.vocab_size, (2, 64), generator=torch.Generator().manual_seed(1)).to(device)
    ref_loss, ref_grads, _ = loss_grads_and_ops(gqa_config, idx, dtype)
    loss, grads, ops = loss_grads_and_ops(with_backends(gqa_config, **backends), idx, dtype)
    tol = tol or dict(atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(loss, ref_loss, **tol)
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name
        scale = ref_grads[name].abs().max()
        torch.testing.assert_close(grad / scale, ref_grads[name] / scale, **tol, msg=name)
    return ops


@pytest.mark.parametrize("backend", sorted(SDPA_OPS["cpu"]))
def test_each_cpu_sdpa_kernel_runs_and_matches_the_default(gqa_config, backend):
    ops = assert_same_training_step("cpu", gqa_config, {"attention_backend": backend})
    expected = SDPA_OPS["cpu"][backend]
    assert ops == ([expected, expected + "_backward"] if expected else []), ops


def test_cuda_only_sdpa_kernels_are_refused_on_cpu_with_the_alternatives(gqa_config):
    for backend in ("sdpa_cudnn", "sdpa_efficient"):
        model = GPT(with_backends(gqa_config, attention_backend=backend))
        with pytest.raises(ValueError, match=rf"attention_backend='{backend}' is a CUDA kernel.*'sdpa'"):
            model(torch.zeros(1, 4, dtype=torch.long))


def test_decoding_with_the_kv_cache_works_under_a_forced_kernel(gqa_config):
    """Prefill runs the forced kernel; single-token steps with a cache (a mask) let PyTorch pick."""
    model = GPT(with_backends(gqa_config, attention_backend="sdpa_flash")).eval()
    idx = torch.randint(0, gqa_config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(idx)
        model.set_kv_cache(batch_size=1)
        steps = [model(idx[:, :8])[:, -1]] + [model(idx[:, t : t + 1], start=t)[:, -1] for t in range(8, 12)]
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 7:], atol=1e-5, rtol=1e-4)


def test_liger_is_refused_off_gpu_and_never_imported_by_building(gqa_config, monkeypatch):
    monkeypatch.delitem(sys.modules, "liger_kernel", raising=False)
    model = GPT(with_backends(gqa_config, kernel_backend="liger", loss_backend="liger"))
    assert "liger_kernel" not in sys.modules
    idx = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="run on CUDA GPUs, not on cpu: use kernel_backend='pytorch'"):
        model(idx)
    with pytest.raises(ValueError, match="not on cpu"):
        cross_entropy_loss(torch.randn(1, 4, 8), torch.randn(16, 8), idx, "liger")


def test_liger_without_the_package_names_it_and_the_alternative(monkeypatch):
    monkeypatch.setitem(sys.modules, "liger_kernel", None)  # makes `import liger_kernel...` fail
    with pytest.raises(ImportError, match="need the liger-kernel package .* use kernel_backend=.pytorch."):
        kernels.liger(torch.device("cuda"))


def test_unknown_backends_are_refused():
    for field in ("attention_backend", "loss_backend", "kernel_backend"):
        with pytest.raises(ValueError, match=f"{field} must be one of"):
            Config(**{field: "turbo"})


# ------------------------------------------------------------------ on a GPU


@pytest.mark.gpu
@pytest.mark.parametrize("backend", sorted(SDPA_OPS["cuda"]))
def test_each_cuda_sdpa_kernel_runs_and_matches_the_default_under_bf16_autocast(gqa_config, backend):
    ops = assert_same_training_step("cuda", gqa_config, {"attention_backend": backend}, torch.bfloat16,
                                    dict(atol=2e-2, rtol=2e-2))
    expected = SDPA_OPS["cuda"][backend]
    assert ops == ([expected, expected + "_backward"] if expected else []), ops


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_liger_rms_norm_matches_ours(dtype):
    x = torch.randn(4, 64, 256, device="cuda", dtype=dtype, requires_grad=True)
    ours, liger = RMSNorm(256).cuda(), RMSNorm(256, backend="liger").cuda()
    with torch.no_grad():
        ours.weight.copy_(1 + 0.1 * torch.randn(256))
        liger.weight.copy_(ours.weight)
    results = []
    for norm in (ours, liger):
        x.grad = None
        y = norm(x)
        y.backward(torch.ones_like(y))
        results.append((y.float(), x.grad.float(), norm.weight.grad.float()))
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    for ref, got in zip(*results):
        torch.testing.assert_close(got, ref, **tol)


@pytest.mark.gpu
def test_liger_swiglu_and_rope_match_ours():
    gate, up = (torch.randn(2, 32, 96, device="cuda", requires_grad=True) for _ in range(2))
    ref = F.silu(gate) * up
    ref_grads = torch.autograd.grad(ref.sum(), (gate, up))
    got = kernels.swiglu(gate, up)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    for g, r in zip(torch.autograd.grad(got.sum(), (gate, up)), ref_grads):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)

    cos, sin = build_rope_cache(32, 16, 10000.0, torch.device("cuda"))
    # Queries and keys as the model makes them: views of one (B, T, heads, hs) projection.
    qkv = torch.randn(2, 32, 4 + 2 * 2, 16, device="cuda", requires_grad=True)
    q, k = qkv[:, :, :4].transpose(1, 2), qkv[:, :, 4:6].transpose(1, 2)
    ref_q, ref_k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    ref_grad = torch.autograd.grad(ref_q.sum() + 2 * ref_k.sum(), qkv)[0]
    got_q, got_k = kernels.rope(q, k, cos, sin)
    torch.testing.assert_close(got_q, ref_q, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_k, ref_k, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.autograd.grad(got_q.sum() + 2 * got_k.sum(), qkv)[0], ref_grad, atol=1e-5,
                               rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "bf16-true"])
def test_liger_fused_cross_entropy_matches_chunked(precision):
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(4, 515, 256, generator=g), torch.randn(32000, 256, generator=g) * 0.05
    targets = torch.randint(0, 32000, (4, 515), generator=g)
    targets[:, -3:] = IGNORE_INDEX
    hidden, weight, targets = hidden.cuda(), weight.cuda(), targets.cuda()
    if precision == "bf16-true":
        hidden, weight = hidden.bfloat16(), weight.bfloat16()
    results = []
    for backend in ("chunked", "liger"):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = cross_entropy_loss(h, w, targets, backend)
        loss.backward()
        assert loss.dtype == torch.float32 and w.grad.dtype == w.dtype
        results.append((loss, h.grad.float(), w.grad.float()))
    tol = dict(atol=1e-4, rtol=1e-4) if precision == "32-true" else dict(atol=1e-3, rtol=3e-2)
    for ref, got in zip(*results):
        torch.testing.assert_close(got, ref, **tol)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16-autocast"])
def test_gpt_with_every_liger_kernel_matches_the_reference(gqa_config, dtype):
    tol = dict(atol=1e-4, rtol=1e-3) if dtype is None else dict(atol=3e-2, rtol=3e-2)
    assert_same_training_step("cuda", gqa_config, {"kernel_backend": "liger", "loss_backend": "liger"}, dtype, tol)
