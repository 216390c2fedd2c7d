import pytest

from lit_tiny.training.batch_plan import BatchConfigError, BatchPlan


def test_tinyllama_plan_on_16_devices():
    plan = BatchPlan.make(2_097_152, 8, 2048, 16, max_tokens=3 * 10**12, warmup_steps=2000)
    assert (plan.sequences_per_step, plan.accumulation, plan.max_steps) == (1024, 8, 1_430_512)
    assert plan.total_tokens == 1_430_512 * 2_097_152
    text = plan.describe()
    assert "gradient accumulation     8" in text and "1,430,512" in text


@pytest.mark.parametrize("world, micro, accumulation", [(1, 8, 128), (8, 8, 16), (16, 4, 16), (64, 16, 1)])
def test_accumulation_follows_the_world_size(world, micro, accumulation):
    plan = BatchPlan.make(2_097_152, micro, 2048, world, max_tokens=10**9)
    assert plan.accumulation == accumulation
    assert plan.accumulation * micro * world * 2048 == 2_097_152


def test_max_steps_overrides_max_tokens():
    assert BatchPlan.make(4096, 2, 256, 1, max_tokens=10**12, max_steps=7).max_steps == 7


def test_indivisible_batches_are_refused_with_a_fix():
    with pytest.raises(BatchConfigError, match="micro_batch_size 4 divides it"):
        BatchPlan.make(2_097_152, 6, 2048, 16, max_tokens=10**9)  # 1024 sequences, 96 per pass
    with pytest.raises(BatchConfigError, match="pick a world size"):
        BatchPlan.make(3 * 2048, 1, 2048, 2, max_tokens=10**9)  # 3 sequences never split over 2 devices
    with pytest.raises(BatchConfigError, match="multiple of block_size"):
        BatchPlan.make(1000, 1, 256, 1, max_tokens=10**9)
    with pytest.raises(BatchConfigError, match="micro_batch_size must be positive"):
        BatchPlan.make(4096, 0, 256, 1, max_tokens=10**9)
