"""Speed accounting: device peak FLOP/s, model FLOPs utilisation (MFU), a tokens/s + ETA meter,
FLOPs measured op by op, the attention kernels that ran, peak memory, the search for the largest
setting that fits, and the variants ``pretrain/benchmark.py`` compares."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lit_tiny.config import AttentionBackend, KernelBackend, LossBackend

# Dense peak FLOP/s by (device-name fragment, compute dtype), from the vendors' spec sheets (no sparsity).
PEAK_FLOPS = {
    ("H200", torch.bfloat16): 989e12,
    ("H100", torch.bfloat16): 989e12,
    ("A100", torch.bfloat16): 312e12,
    ("A10G", torch.bfloat16): 125e12,
    ("L40S", torch.bfloat16): 362e12,
    ("4090", torch.bfloat16): 165e12,
    ("H200", torch.float32): 67e12,
    ("H100", torch.float32): 67e12,
    ("A100", torch.float32): 19.5e12,
}


def peak_flops(device: torch.device, dtype: torch.dtype) -> Optional[float]:
    """Peak dense FLOP/s of one ``device`` computing in ``dtype``, or None when unknown (CPUs, new GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for (fragment, peak_dtype), value in PEAK_FLOPS.items():
        if fragment in name and peak_dtype == dtype:
            return value
    return None


class SpeedMeter:
    """Tokens/s and seconds per step over a sliding window of steps, and the ETA they imply."""

    def __init__(self, window: int = 20) -> None:
        self.times: deque[float] = deque(maxlen=window + 1)
        self.tokens: deque[int] = deque(maxlen=window + 1)

    def update(self, tokens_seen: int) -> None:
        self.times.append(time.perf_counter())
        self.tokens.append(tokens_seen)

    def tokens_per_second(self) -> Optional[float]:
        if len(self.times) < 2:
            return None
        return (self.tokens[-1] - self.tokens[0]) / (self.times[-1] - self.times[0])

    def seconds_per_step(self) -> Optional[float]:
        if len(self.times) < 2:
            return None
        return (self.times[-1] - self.times[0]) / (len(self.times) - 1)

    def eta_seconds(self, steps_left: int) -> Optional[float]:
        per_step = self.seconds_per_step()
        return None if per_step is None else per_step * steps_left


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"


def measure_flops(fn: Callable[[], Any]) -> int:
    """FLOPs that ``fn()`` executes, counted op by op with ``torch.utils.flop_counter.FlopCounterMode``.

    Matrix multiplies and PyTorch's attention kernels are counted, attention without a causal discount
    (as in the PaLM convention); elementwise work and kernels PyTorch does not know (flash-attn's) are not.
    PyTorch counts its CUDA attention kernels itself; the CPU one is added here.
    """
    from torch.utils import flop_counter

    aten = torch.ops.aten
    cpu_attention = {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops,
    }
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=cpu_attention)
    with counter:
        fn()
    return counter.get_total_flops()


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_attention_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                                  **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


class RecordOps(TorchDispatchMode):
    """Records the name of every ATen op that runs inside it (``aten::mm``, ...), after PyTorch's own
    dispatching: for ``scaled_dot_product_attention`` that is the kernel it chose."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.name())
        return func(*args, **(kwargs or {}))

    def attention_kernels(self) -> list[str]:
        """The attention ops among them, e.g. ``aten::_scaled_dot_product_cudnn_attention`` and its backward.
        Empty when attention ran as plain matmuls and softmax (SDPA's math kernel)."""
        return sorted(n for n in self.names if "attention" in n or "flash" in n)


def largest_passing(passes: Callable[[int], bool], start: int) -> int:
    """The largest ``n >= 1`` with ``passes(n)``, for a ``passes`` that holds up to some ``n`` and fails beyond:
    doubling from ``start`` until it fails, then bisecting. 0 when even ``n = 1`` fails."""
    if start < 1:
        raise ValueError(f"start must be positive, got {start}")
    low, high = 0, start  # passes(low) holds (0: nothing known to pass); passes(high) is to be tried
    while passes(high):
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if passes(mid) else (low, mid)
    return low


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window: CUDA's allocator statistics, or the process's peak RSS on Linux."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
    except OSError:
        pass


def peak_memory_bytes(device: torch.device) -> Optional[int]:
    """Peak memory since ``reset_peak_memory``: ``torch.cuda.max_memory_allocated`` on a GPU, the process's
    peak resident set size (VmHWM, everything the process holds) on a Linux CPU, None elsewhere."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


@dataclass(frozen=True)
class Variant:
    """One setup that ``pretrain/benchmark.py`` measures.

    Args:
        name: Its label in the printout and the JSON.
        implementation: ``lit_tiny`` (our GPT) or ``hf`` (``transformers.LlamaForCausalLM`` with attention
            ``sdpa`` and its own loss).
        compile: ``torch.compile`` every transformer block, as ``pretrain/tinyllama.py --compile`` does
            (HF: every decoder layer). The loss stays eager.
        attention_backend: Our attention (``lit_tiny.kernels``): ``sdpa`` (PyTorch picks the kernel),
            ``sdpa_cudnn``, ``sdpa_flash``, ``sdpa_efficient``, ``sdpa_math`` (one SDPA kernel) or ``flash``
            (the flash-attn package).
        loss_backend: Our cross-entropy: ``chunked``, ``full`` or ``liger`` (Liger's fused linear cross-entropy).
        kernel_backend: Our RMSNorm, SwiGLU and RoPE: ``pytorch`` or ``liger`` (Liger's Triton kernels).
    """

    name: str
    implementation: Literal["lit_tiny", "hf"] = "lit_tiny"
    compile: bool = False
    attention_backend: AttentionBackend = "sdpa"
    loss_backend: LossBackend = "chunked"
    kernel_backend: KernelBackend = "pytorch"
