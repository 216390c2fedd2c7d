import math

import pytest
import torch

from lit_tiny.training.optimizer import cosine_lr, make_optimizer


def test_warmup_then_cosine_to_min_lr():
    lr, min_lr, warmup, total = 4e-4, 4e-5, 2000, 1_430_512
    assert cosine_lr(0, total, lr, min_lr, warmup) == pytest.approx(lr / warmup)
    assert cosine_lr(999, total, lr, min_lr, warmup) == pytest.approx(lr / 2)
    assert cosine_lr(warmup, total, lr, min_lr, warmup) == pytest.approx(lr)
    middle = warmup + (total - warmup) // 2
    assert cosine_lr(middle, total, lr, min_lr, warmup) == pytest.approx((lr + min_lr) / 2, rel=1e-5)
    assert cosine_lr(total, total, lr, min_lr, warmup) == pytest.approx(min_lr)
    values = [cosine_lr(s, total, lr, min_lr, warmup) for s in range(warmup, total, 10_000)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_adamw_follows_the_recipe():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4))
    opt = make_optimizer(model, lr=4e-4, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-5)
    (group,) = opt.param_groups
    assert (group["lr"], group["weight_decay"], group["betas"], group["eps"]) == (4e-4, 0.1, (0.9, 0.95), 1e-5)
    assert len(group["params"]) == 3  # all parameters decay, norms and embeddings included, as in TinyLlama
    assert not math.isnan(group["lr"])
