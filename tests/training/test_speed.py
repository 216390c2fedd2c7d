"""The search for the largest setting that fits, and the record of which ATen ops ran."""

import pytest
import torch
import torch.nn.functional as F

from lit_tiny.training.speed import RecordOps, largest_passing


@pytest.mark.parametrize("limit", [0, 1, 2, 7, 8, 9, 31, 100])
@pytest.mark.parametrize("start", [1, 8])
def test_largest_passing_finds_the_limit_with_few_probes(limit, start):
    tried = []

    def passes(n: int) -> bool:
        tried.append(n)
        return n <= limit

    assert largest_passing(passes, start) == limit
    assert len(tried) == len(set(tried)), tried  # no probe twice
    assert len(tried) <= 2 * max(limit, start).bit_length() + 2, tried


def test_largest_passing_needs_a_positive_start():
    with pytest.raises(ValueError, match="start must be positive"):
        largest_passing(lambda n: True, 0)


def test_record_ops_sees_the_kernel_sdpa_chose():
    q, k, v = (torch.randn(1, 2, 8, 4) for _ in range(3))
    with RecordOps() as ops:
        torch.mm(torch.randn(2, 3), torch.randn(3, 2))
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert "aten::mm" in ops.names
    assert ops.attention_kernels() == ["aten::_scaled_dot_product_flash_attention_for_cpu"]
