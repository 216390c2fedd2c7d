import pytest
import torch

from lit_tiny.config import Config
from lit_tiny.losses import IGNORE_INDEX, chunked_cross_entropy, cross_entropy_loss
from lit_tiny.model import GPT
from lit_tiny.training.speed import measure_flops
from tests.conftest import randomize_norms


def loss_and_grads(backend, hidden, weight, targets, chunk_rows=7, autocast_dtype=None, grad_scale=1.0):
    """Loss and (hidden, weight) gradients of one backend on fresh leaf copies of the inputs."""
    hidden = hidden.detach().clone().requires_grad_()
    weight = weight.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        loss = cross_entropy_loss(hidden, weight, targets, backend, chunk_rows=chunk_rows)
    (loss * grad_scale).backward()
    return loss, hidden.grad, weight.grad


def make_inputs(batch=3, seq=11, width=24, vocab=97, dtype=torch.float32, seed=0):
    """Odd sizes: 33 rows never divide the chunk sizes used below; some targets are ignored."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, seq, width, generator=g).to(dtype)
    weight = (0.3 * torch.randn(vocab, width, generator=g)).to(dtype)
    targets = torch.randint(0, vocab, (batch, seq), generator=g)
    targets[0, :3] = IGNORE_INDEX
    return hidden, weight, targets


@pytest.mark.parametrize("chunk_rows", [1, 5, 7, 32, 33, 1000])
def test_chunked_matches_full_in_fp32(chunk_rows):
    hidden, weight, targets = make_inputs()
    ref_loss, ref_dh, ref_dw = loss_and_grads("full", hidden, weight, targets, grad_scale=2.5)
    loss, dh, dw = loss_and_grads("chunked", hidden, weight, targets, chunk_rows, grad_scale=2.5)
    assert loss.dtype == torch.float32 and dh.dtype == torch.float32 and dw.dtype == torch.float32
    torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(dh, ref_dh, atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(dw, ref_dw, atol=1e-7, rtol=1e-5)


def test_chunked_matches_full_under_bf16_autocast():
    hidden, weight, targets = make_inputs()
    ref_loss, ref_dh, ref_dw = loss_and_grads("full", hidden, weight, targets, autocast_dtype=torch.bfloat16)
    loss, dh, dw = loss_and_grads("chunked", hidden, weight, targets, autocast_dtype=torch.bfloat16)
    # fp32 master inputs keep fp32 gradients; the matmuls ran in bf16 for both backends.
    assert dh.dtype == torch.float32 and dw.dtype == torch.float32
    fp32_loss = loss_and_grads("full", hidden, weight, targets)[0]
    assert (ref_loss - fp32_loss).abs() > 0, "autocast should change the reference's result"
    torch.testing.assert_close(loss, ref_loss, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(dh, ref_dh, atol=1e-3, rtol=2e-2)
    torch.testing.assert_close(dw, ref_dw, atol=1e-3, rtol=2e-2)


def test_chunked_matches_full_with_bf16_inputs():
    hidden, weight, targets = make_inputs(dtype=torch.bfloat16)
    ref_loss, ref_dh, ref_dw = loss_and_grads("full", hidden, weight, targets)
    loss, dh, dw = loss_and_grads("chunked", hidden, weight, targets)
    assert loss.dtype == torch.float32 and dh.dtype == torch.bfloat16 and dw.dtype == torch.bfloat16
    torch.testing.assert_close(loss, ref_loss, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(dh.float(), ref_dh.float(), atol=1e-3, rtol=2e-2)
    torch.testing.assert_close(dw.float(), ref_dw.float(), atol=1e-3, rtol=2e-2)


def test_chunked_loss_without_grad_and_with_one_input_trainable():
    hidden, weight, targets = make_inputs()
    ref_loss, ref_dh, _ = loss_and_grads("full", hidden, weight, targets)
    with torch.no_grad():
        torch.testing.assert_close(chunked_cross_entropy(hidden.flatten(0, 1), weight, targets.flatten(), 4),
                                   ref_loss)
    h = hidden.clone().requires_grad_()
    cross_entropy_loss(h, weight, targets, "chunked", chunk_rows=4).backward()  # frozen head
    torch.testing.assert_close(h.grad, ref_dh, atol=1e-7, rtol=1e-5)


def test_chunked_loss_skips_gradient_work_when_grad_is_off():
    hidden, weight, targets = make_inputs()
    hidden.requires_grad_()
    weight.requires_grad_()
    matmul_flops = 2 * hidden.numel() * weight.size(0)  # (rows x width) @ (width x vocab)

    def loss():
        return cross_entropy_loss(hidden, weight, targets, "chunked", chunk_rows=8)

    assert measure_flops(loss) == 3 * matmul_flops  # logits, and the gradients of hidden and weight
    with torch.no_grad():
        assert measure_flops(loss) == matmul_flops


def test_unknown_backend_is_refused():
    hidden, weight, targets = make_inputs()
    with pytest.raises(ValueError, match="loss backend"):
        cross_entropy_loss(hidden, weight, targets, "fused")
    with pytest.raises(ValueError, match="loss_backend"):
        Config(loss_backend="fused")


def long_context_config(backend: str) -> Config:
    """2 x 1050 = 2100 rows: more than one default chunk of 2048 rows, with a ragged last chunk."""
    return Config(name="test_loss", block_size=1050, vocab_size=211, n_layer=2, n_embd=32, n_head=4,
                  n_query_groups=2, intermediate_size=48, loss_backend=backend)


def gpt_loss_and_grads(backend: str, idx: torch.Tensor, dtype=None):
    torch.manual_seed(0)
    model = GPT(long_context_config(backend))
    randomize_norms(model)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
        loss = model(idx, targets=idx.roll(-1, dims=1))
    loss.backward()
    return loss, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16-autocast"])
def test_gpt_forward_gives_the_same_loss_and_grads_with_each_backend(dtype):
    idx = torch.randint(0, 211, (2, 1050), generator=torch.Generator().manual_seed(1))
    ref_loss, ref_grads = gpt_loss_and_grads("full", idx, dtype)
    loss, grads = gpt_loss_and_grads("chunked", idx, dtype)
    tol = dict(atol=1e-6, rtol=1e-5) if dtype is None else dict(atol=1e-3, rtol=3e-2)
    torch.testing.assert_close(loss, ref_loss, **tol)
    assert set(grads) == set(ref_grads)
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, ref_grads[name], **tol, msg=name)


def test_chunked_backend_under_fsdp2_mixed_precision(gqa_config):
    """FSDP2 (one gloo process) gathers the head's weight in bf16 for the forward pass: the chunked loss
    receives that unsharded parameter and its gradient must reach the sharded fp32 parameter unchanged."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if dist.is_initialized():
        pytest.skip("a process group already exists in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        idx = torch.randint(0, gqa_config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(1))
        results = {}
        for backend in ("full", "chunked"):
            torch.manual_seed(0)
            model = GPT(Config(**{**gqa_config.__dict__, "loss_backend": backend}))
            randomize_norms(model)
            policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            for block in model.blocks:
                fully_shard(block, mesh=mesh, mp_policy=policy)
            fully_shard(model, mesh=mesh, mp_policy=policy)
            loss = model(idx, targets=idx.roll(-1, dims=1))
            loss.backward()
            results[backend] = loss, {n: p.grad.full_tensor() for n, p in model.named_parameters()}
        (ref_loss, ref_grads), (loss, grads) = results["full"], results["chunked"]
        assert grads["lm_head.weight"].dtype == torch.float32
        torch.testing.assert_close(loss, ref_loss, atol=1e-3, rtol=1e-3)
        for name, grad in grads.items():
            assert grad.abs().sum() > 0, name
            torch.testing.assert_close(grad, ref_grads[name], atol=1e-3, rtol=3e-2, msg=name)
    finally:
        dist.destroy_process_group()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_chunked_matches_full_on_gpu(precision):
    hidden, weight, targets = (t.cuda() for t in make_inputs(batch=4, seq=515, width=256, vocab=32000))
    if precision == "bf16-true":
        hidden, weight = hidden.bfloat16(), weight.bfloat16()
    results = []
    for backend in ("full", "chunked"):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = cross_entropy_loss(h, w, targets, backend, chunk_rows=1000)
        loss.backward()
        results.append((loss, h.grad.float(), w.grad.float()))
    for ref, got in zip(*results):
        torch.testing.assert_close(got, ref, atol=1e-3, rtol=3e-2)
