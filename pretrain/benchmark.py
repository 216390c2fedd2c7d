"""Training-step throughput of lit_tiny's GPT against Hugging Face's ``LlamaForCausalLM``, in one run.

Both models are built from the same config and start from the same weights; they train on the same
synthetic random tokens with the same AdamW settings, precision and gradient clipping. After warmup
steps, timed rounds alternate A B A B ... so that drifting machine load hits both alike. Prints a
summary and the line ``lit_tiny / HF tokens/s ratio: 1.23x``, and writes every number to a JSON file.

    python pretrain/benchmark.py --model debug --seq_len 256 --micro_batch_size 8 --precision 32-true
    python pretrain/benchmark.py --model tiny_LLaMA_1b --seq_len 2048 --micro_batch_size 8 --precision bf16-mixed
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn

from lit_tiny.config import AttentionBackend, Config, LossBackend
from lit_tiny.devices import TrainingPrecision, resolve_device, resolve_precision
from lit_tiny.hf_interop import config_to_hf, state_dict_to_hf
from lit_tiny.losses import IGNORE_INDEX
from lit_tiny.model import GPT
from lit_tiny.training.optimizer import make_optimizer
from lit_tiny.training.speed import measure_flops, peak_flops, peak_memory_bytes, reset_peak_memory

HF_ATTENTION = "sdpa"


@dataclass
class Contender:
    """One model under test, its optimizer and everything measured about it."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    rounds: list[list[float]] = field(default_factory=list)  # step seconds, one list per timed round
    peak_memory: list[int] = field(default_factory=list)  # raw peak bytes, one per timed round
    others_resident: int = 0  # bytes the other model holds meanwhile (weights, optimizer states)
    measured_flops_per_step: Optional[int] = None
    first_loss: Optional[float] = None
    last_loss: Optional[float] = None


def main(
    model: str = "debug",
    micro_batch_size: int = 8,
    seq_len: Optional[int] = None,
    precision: Optional[TrainingPrecision] = None,
    warmup_steps: int = 3,
    rounds: int = 4,
    steps_per_round: int = 5,
    compile: bool = False,
    loss_backend: LossBackend = "chunked",
    attention_backend: AttentionBackend = "sdpa",
    fused_adamw: Optional[bool] = None,
    grad_clip: float = 1.0,
    compare_hf: bool = True,
    offload_idle: Optional[bool] = None,
    peak_tflops: Optional[float] = None,
    device: str = "auto",
    threads: Optional[int] = None,
    seed: int = 42,
    out: Optional[Path] = None,
) -> dict:
    """Benchmark training steps of lit_tiny's GPT (and Hugging Face Llama) on synthetic tokens.

    Args:
        model: Config preset name (``debug``, ``tiny_LLaMA_120M``, ``tiny_LLaMA_1b``, ...).
        micro_batch_size: Sequences per step.
        seq_len: Tokens per sequence (default: the preset's block size).
        precision: ``32-true``; ``bf16-mixed`` (fp32 weights, bf16 autocast); ``bf16-true`` (bf16 weights).
            Default: bf16-mixed on a GPU, 32-true on a CPU.
        warmup_steps: Untimed steps per model before the timed rounds (and compilation, with ``--compile``).
        rounds: Timed rounds per model, alternating between the models.
        steps_per_round: Timed steps in each round.
        compile: ``torch.compile`` both models.
        loss_backend: lit_tiny's cross-entropy backend (``chunked`` or ``full``).
        attention_backend: lit_tiny's attention backend (``sdpa`` or ``flash``).
        fused_adamw: Fused AdamW; default: fused on a GPU, not on a CPU.
        grad_clip: Clip the global gradient norm to this value before each step (0 disables).
        compare_hf: Also benchmark ``transformers.LlamaForCausalLM`` (attention: sdpa).
        offload_idle: Keep only the model being timed (weights and AdamW states) on the device; the other
            waits in CPU memory, moved between rounds, untimed. Default: on for GPUs, where two 1B models
            with their optimizer states would not leave room for activations.
        peak_tflops: Peak dense TFLOP/s of the device for MFU; default: looked up for known GPUs.
        device: ``cuda``, ``cuda:1``, ``cpu``, or ``auto`` (cuda when available).
        threads: PyTorch CPU threads (``torch.set_num_threads``); default: PyTorch's choice. On a CPU shared
            with another busy process, 1 thread avoids threads spinning against each other.
        seed: Seed of the weights and the synthetic tokens.
        out: JSON file to write (default: ``out/benchmark/<timestamp>.json``).
    """
    dev = resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    precision = resolve_precision(precision, dev, training=True)
    offload_idle = dev.type == "cuda" if offload_idle is None else offload_idle
    config = Config.from_name(model, loss_backend=loss_backend, attention_backend=attention_backend)
    seq_len = seq_len or config.block_size
    if seq_len > config.block_size:
        raise ValueError(f"seq_len {seq_len} exceeds {model}'s block size {config.block_size}")
    settings = {
        "model": model, "micro_batch_size": micro_batch_size, "seq_len": seq_len, "precision": precision,
        "warmup_steps": warmup_steps, "rounds": rounds, "steps_per_round": steps_per_round, "compile": compile,
        "loss_backend": loss_backend, "attention_backend": attention_backend, "fused_adamw": fused_adamw,
        "grad_clip": grad_clip, "compare_hf": compare_hf,
        "offload_idle": offload_idle, "peak_tflops": peak_tflops, "device": str(dev),
        "threads": threads, "seed": seed,
    }
    started = datetime.datetime.now()
    out = Path(out) if out else Path("out/benchmark") / f"{started:%Y%m%d-%H%M%S}.json"

    torch.manual_seed(seed)
    contenders = build_contenders(config, dev, precision, fused_adamw, compare_hf)
    batches = synthetic_batches(config.vocab_size, micro_batch_size, seq_len, dev, seed)
    autocast = (torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16-mixed"
                else contextlib.nullcontext())

    def step(c: Contender, i: int) -> torch.Tensor:
        x, y = batches[i % len(batches)]
        with autocast:
            loss = c.loss(x, y)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(c.model.parameters(), grad_clip)
        c.optimizer.step()
        c.optimizer.zero_grad(set_to_none=True)
        return loss

    for c in contenders:
        activate(contenders, c, dev, offload_idle)
        c.measured_flops_per_step = measure_step_flops(c, batches[0], autocast)
        c.first_loss = eager_loss(c, batches[0], autocast)
        if compile:
            c.loss = torch.compile(c.loss)
        for i in range(warmup_steps):
            step(c, i)
    synchronize(dev)

    tokens_per_step = micro_batch_size * seq_len
    for r in range(rounds):
        for c in contenders:
            activate(contenders, c, dev, offload_idle)
            c.others_resident = sum(resident_bytes(o, dev) for o in contenders if o is not c)
            synchronize(dev)
            reset_peak_memory(dev)
            times = []
            for i in range(steps_per_round):
                synchronize(dev)
                t0 = time.perf_counter()
                loss = step(c, warmup_steps + r * steps_per_round + i)
                synchronize(dev)
                times.append(time.perf_counter() - t0)
            c.rounds.append(times)
            c.peak_memory.append(peak_memory_bytes(dev))
            c.last_loss = loss.item()

    compute_dtype = torch.float32 if precision == "32-true" else torch.bfloat16
    peak = peak_tflops * 1e12 if peak_tflops else peak_flops(dev, compute_dtype)
    results = {c.name: summarize(c, tokens_per_step, config.flops_per_token(seq_len), peak) for c in contenders}
    report = {
        "settings": settings,
        "model_config": config.__dict__,
        "environment": environment(dev),
        "date": started.isoformat(timespec="seconds"),
        "peak_flops": peak,
        "memory_kind": "cuda_max_memory_allocated" if dev.type == "cuda" else "cpu_peak_rss",
        "hf_attn_implementation": contenders[-1].model.config._attn_implementation if compare_hf else None,
        "fused_adamw": contenders[0].optimizer.defaults.get("fused"),
        "tokens_per_step": tokens_per_step,
        "flops_per_token_palm": config.flops_per_token(seq_len),
        "results": results,
        "ratio_tokens_per_s": None,
    }
    print_summary(report)
    if compare_hf:
        ratio = results["lit_tiny"]["tokens_per_s"] / results["hf"]["tokens_per_s"]
        report["ratio_tokens_per_s"] = ratio
        print(f"lit_tiny / HF tokens/s ratio: {ratio:.2f}x")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"Wrote {out}")
    return report


def build_contenders(config: Config, device: torch.device, precision: TrainingPrecision, fused_adamw: Optional[bool],
                     compare_hf: bool) -> list[Contender]:
    """Our GPT and, if asked, a ``LlamaForCausalLM`` holding the same weights, each with its own AdamW."""
    with torch.device(device):
        ours = GPT(config)
    models = {"lit_tiny": ours}
    if compare_hf:
        from transformers import LlamaConfig, LlamaForCausalLM

        hf_config = LlamaConfig.from_dict(config_to_hf(config), attn_implementation=HF_ATTENTION, use_cache=False)
        with torch.device(device):
            hf = LlamaForCausalLM(hf_config)
        hf.load_state_dict(state_dict_to_hf(ours.state_dict(), config))
        models["hf"] = hf
    contenders = []
    for name, m in models.items():
        if precision == "bf16-true":
            m.to(torch.bfloat16)
        m.train()
        optimizer = make_optimizer(m, lr=4e-4, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-5, fused=fused_adamw)
        loss = ours_loss(m) if name == "lit_tiny" else hf_loss(m)
        contenders.append(Contender(name, m, optimizer, loss))
    return contenders


def ours_loss(model: GPT) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return model(x, targets=y)

    return loss


def hf_loss(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Hugging Face's own loss path: ``labels`` are the inputs, shifted inside the model."""

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return model(input_ids=x, labels=x).loss

    return loss


def synthetic_batches(vocab_size: int, batch_size: int, seq_len: int, device: torch.device, seed: int,
                      count: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random token batches (x, y): y is x shifted left by one with the last position ignored, exactly
    the targets Hugging Face derives from ``labels=x``, so both models see the same loss."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        x = torch.randint(0, vocab_size, (batch_size, seq_len), generator=g)
        y = torch.cat((x[:, 1:], torch.full((batch_size, 1), IGNORE_INDEX)), dim=1)
        batches.append((x.to(device), y.to(device)))
    return batches


def measure_step_flops(c: Contender, batch: tuple[torch.Tensor, torch.Tensor], autocast) -> int:
    """FLOPs of one forward and backward pass, counted op by op; the gradients are dropped afterwards."""

    def forward_backward() -> None:
        with autocast:
            loss = c.loss(*batch)
        loss.backward()

    flops = measure_flops(forward_backward)
    c.optimizer.zero_grad(set_to_none=True)
    return flops


@torch.no_grad()
def eager_loss(c: Contender, batch: tuple[torch.Tensor, torch.Tensor], autocast) -> float:
    with autocast:
        return c.loss(*batch).item()


def resident_bytes(c: Contender, device: torch.device) -> int:
    """Bytes a model keeps on ``device`` between steps: parameters, gradients and optimizer states."""
    tensors = {}
    for p in c.model.parameters():
        tensors[id(p)] = p
        if p.grad is not None:
            tensors[id(p.grad)] = p.grad
    for state in c.optimizer.state.values():
        tensors |= {id(t): t for t in state.values() if isinstance(t, torch.Tensor)}
    return sum(t.numel() * t.element_size() for t in tensors.values() if t.device.type == device.type)


def activate(contenders: list[Contender], active: Contender, device: torch.device, offload_idle: bool) -> None:
    """With ``offload_idle``, move ``active`` (weights and AdamW moments) to ``device`` and the others to CPU
    memory. Scalar step counters stay where AdamW keeps them (CPU, or the device for fused AdamW)."""
    if not offload_idle:
        return
    for c in sorted(contenders, key=lambda c: c is active):  # free device memory before filling it
        target = device if c is active else torch.device("cpu")
        c.model.to(target)
        for state in c.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0:
                    state[key] = value.to(target)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(c: Contender, tokens_per_step: int, flops_per_token: int, peak: Optional[float]) -> dict:
    """Per-model figures. Tokens/s comes from the median step time (robust to a noisy neighbour). Peak memory
    is the raw peak of this model's rounds minus what the other model holds meanwhile: what it needs alone."""
    times = sorted(t for r in c.rounds for t in r)
    median = statistics.median(times)
    tokens_per_s = tokens_per_step / median
    achieved = tokens_per_s * flops_per_token
    measured = c.measured_flops_per_step / median if c.measured_flops_per_step else None
    raw_peak = max((m for m in c.peak_memory if m is not None), default=None)
    return {
        "tokens_per_s": tokens_per_s,
        "tokens_per_s_mean": tokens_per_step * len(times) / sum(times),
        "step_time_s": {
            "median": median,
            "min": times[0],
            "max": times[-1],
            "p10": times[int(0.1 * (len(times) - 1))],
            "p90": times[int(0.9 * (len(times) - 1))],
            "stdev": statistics.stdev(times) if len(times) > 1 else 0.0,
        },
        "achieved_tflops_palm": achieved / 1e12,
        "mfu_palm": achieved / peak if peak else None,
        "measured_flops_per_step": c.measured_flops_per_step,
        "achieved_tflops_measured": measured / 1e12 if measured else None,
        "mfu_measured": measured / peak if peak and measured else None,
        "peak_memory_gb": (raw_peak - c.others_resident) / 1e9 if raw_peak is not None else None,
        "peak_memory_raw_gb": raw_peak / 1e9 if raw_peak is not None else None,
        "others_resident_gb": c.others_resident / 1e9,
        "first_loss": c.first_loss,
        "last_loss": c.last_loss,
        "rounds": [{"step_times_s": r, "tokens_per_s": tokens_per_step * len(r) / sum(r)} for r in c.rounds],
    }


def environment(device: torch.device) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "device_name": name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15min": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo on Linux, else whatever ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def print_summary(report: dict) -> None:
    s = report["settings"]
    print(f"{s['model']}  micro batch {s['micro_batch_size']} x {s['seq_len']} tokens  {s['precision']}  "
          f"compile={s['compile']}  loss={s['loss_backend']}  attention={s['attention_backend']}  "
          f"on {report['environment']['device_name']}")
    for name, r in report["results"].items():
        t = r["step_time_s"]
        mfu = f"{r['mfu_palm']:.1%}" if r["mfu_palm"] is not None else "n/a"
        mfu_measured = f"{r['mfu_measured']:.1%}" if r["mfu_measured"] is not None else "n/a"
        memory = f"{r['peak_memory_gb']:.2f} GB" if r["peak_memory_gb"] is not None else "n/a"
        print(f"{name:>9}: {r['tokens_per_s']:,.0f} tokens/s  step {t['median'] * 1e3:.1f} ms "
              f"(p10 {t['p10'] * 1e3:.1f}, p90 {t['p90'] * 1e3:.1f})  "
              f"TFLOP/s {r['achieved_tflops_palm']:.3f} (measured {r['achieved_tflops_measured']:.3f})  "
              f"MFU {mfu} (measured {mfu_measured})  peak memory {memory}  "
              f"loss {r['first_loss']:.4f} -> {r['last_loss']:.4f}")


if __name__ == "__main__":
    from lit_tiny.cli import run

    run(main)
