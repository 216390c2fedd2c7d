"""The pretraining script's fast paths: per-block torch.compile under FSDP2 (CPU), and on a GPU the micro-batch
loop's pinned, non-blocking copies without host synchronisation and fused AdamW on sharded parameters."""

from __future__ import annotations

import pytest
import torch

from lit_tiny.checkpoint import load_model
from lit_tiny.config import Config
from lit_tiny.data.loader import MixedLoader
from lit_tiny.data.sources import Source
from lit_tiny.model import GPT
from lit_tiny.training.distributed import make_fabric
from lit_tiny.training.optimizer import make_optimizer
from tests.pretrain.conftest import read_metrics, run_script, train_args, train_losses


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch internals
def test_compile_through_the_script_trains_like_eager(corpus, tmp_path, monkeypatch):
    """``--compile true`` compiles every block in place (inductor, C++ on the CPU: ~30 s), under FSDP2: the
    same losses as eager, and a checkpoint with the model's own parameter names."""
    common = ("--devices", "1", "--train.max_steps", "3", "--eval.interval", "3")
    run_script(train_args(corpus, tmp_path / "eager", *common))
    inductor = tmp_path / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(inductor))  # a fresh cache: what gets compiled lands here
    result = run_script(train_args(corpus, tmp_path / "compiled", *common, "--compile", "true"))
    assert list(inductor.rglob("*.py")), "inductor compiled nothing"
    eager, compiled = train_losses(tmp_path / "eager"), train_losses(tmp_path / "compiled")
    assert sorted(compiled) == [1, 2, 3] and "compile: true" in (tmp_path / "compiled" / "config.yaml").read_text()
    for step in eager:
        assert compiled[step] == pytest.approx(eager[step], rel=1e-4), step
    val = [[m["val_loss"] for m in read_metrics(tmp_path / run) if "val_loss" in m] for run in ("eager", "compiled")]
    assert val[1] == pytest.approx(val[0], rel=1e-4)
    assert "Saved checkpoint" in result.stdout
    load_model(tmp_path / "compiled" / "checkpoints" / "step-00000003")  # names and shapes checked on load


@pytest.mark.gpu
def test_micro_batches_on_one_gpu_never_wait_for_it(corpus):
    """What ``fit`` does per micro batch through the real Fabric strategy (FSDP2, bf16-mixed): a pinned batch
    copied with ``non_blocking``, forward with the chunked loss, backward with and without gradient sync. CUDA's
    sync debug mode turns any host synchronisation there into an error. Then fused AdamW steps the sharded
    parameters."""
    import torch.distributed as dist

    config = Config.from_file(corpus["model"])
    loader = MixedLoader([Source(corpus["english"], 0.7), Source(corpus["code"], 0.3)], config.block_size, 4,
                         num_workers=2)
    fabric = make_fabric(devices=1, num_nodes=1, precision="bf16-mixed")
    fabric.launch()
    try:
        with fabric.init_module(empty_init=False):
            model = GPT(config)
        model = fabric.setup(model)
        optimizer = fabric.setup_optimizers(make_optimizer(model, 1e-2, 0.1, (0.9, 0.95), 1e-5))
        assert optimizer.optimizer.defaults["fused"] is True
        batches = iter(loader)
        losses = []
        for step in range(3):
            if step > 0:  # the first step initialises CUDA libraries, which may synchronise once
                torch.cuda.set_sync_debug_mode("error")
            loss_sum = torch.zeros((), device=fabric.device)
            for micro in range(2):
                batch = next(batches)
                assert batch.is_pinned()
                batch = batch.to(fabric.device, non_blocking=True).long()
                with fabric.no_backward_sync(model, enabled=micro == 0):
                    loss = model(batch[:, :-1], targets=batch[:, 1:])
                    fabric.backward(loss / 2)
                loss_sum += loss.detach()
            torch.cuda.set_sync_debug_mode("default")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss_sum.item() / 2)
        assert losses[-1] < losses[0], losses
    finally:
        torch.cuda.set_sync_debug_mode("default")
        if dist.is_initialized():
            dist.destroy_process_group()
