"""Training-step throughput of lit_tiny's GPT in several setups beside Hugging Face's ``LlamaForCausalLM``.

Every variant (``--variants``) is built from the same config and seed, so all start from the same weights;
all train on the same synthetic random tokens with the same AdamW settings, precision and gradient
clipping. Each variant first runs one forward/backward pass under ``FlopCounterMode`` (its measured FLOPs,
and the attention kernel that actually ran), then warmup steps, then timed rounds. With ``--interleave``
(the CPU default) all variants stay resident and their rounds alternate A B A B ..., so that drifting load
from other processes hits all alike; without it (the GPU default: a dedicated device, where several 1B
models with their AdamW states would not fit together) each variant is measured and freed before the next
one is built. Prints one line per variant and its ratio to HF eager, ``lit_tiny / hf tokens/s: 1.23x``,
and writes every number to a JSON file.

``--search_max_micro_batch true`` instead finds the largest micro batch whose training step fits in memory.

    python pretrain/benchmark.py --model debug --seq_len 256 --micro_batch_size 8 --precision 32-true
    python pretrain/benchmark.py --model tiny_LLaMA_1b --seq_len 2048 --micro_batch_size 8 --precision bf16-mixed
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn

from lit_tiny.config import Config
from lit_tiny.devices import TrainingPrecision, resolve_device, resolve_precision
from lit_tiny.hf_interop import config_to_hf, state_dict_to_hf
from lit_tiny.losses import IGNORE_INDEX
from lit_tiny.model import GPT
from lit_tiny.training.optimizer import make_optimizer
from lit_tiny.training.speed import (
    RecordOps,
    Variant,
    largest_passing,
    measure_flops,
    peak_flops,
    peak_memory_bytes,
    reset_peak_memory,
)

HF_ATTENTION = "sdpa"


DEFAULT_VARIANTS = (Variant("lit_tiny"), Variant("hf", implementation="hf"))


@dataclass(frozen=True)
class Setup:
    """What every variant shares."""

    config: Config
    device: torch.device
    precision: TrainingPrecision
    micro_batch_size: int
    seq_len: int
    fused_adamw: Optional[bool]
    grad_clip: float
    seed: int

    def autocast(self):
        if self.precision == "bf16-mixed":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


@dataclass
class Contender:
    """One variant's model, its optimizer and everything measured about it."""

    variant: Variant
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    rounds: list[list[float]] = field(default_factory=list)  # step seconds, one list per timed round
    peak_memory: list[int] = field(default_factory=list)  # raw peak bytes, one per timed round
    others_resident: int = 0  # bytes the other variants hold meanwhile (weights, optimizer states)
    measured_flops_per_step: Optional[int] = None
    attention_kernels: list[str] = field(default_factory=list)
    first_loss: Optional[float] = None
    last_loss: Optional[float] = None


class VariantsFailed(ValueError):
    """Some variants could not run here (a missing package, a kernel this device lacks, memory)."""


def main(
    model: str = "debug",
    micro_batch_size: int = 8,
    seq_len: Optional[int] = None,
    precision: Optional[TrainingPrecision] = None,
    variants: Optional[list[Variant]] = None,
    warmup_steps: int = 3,
    rounds: int = 4,
    steps_per_round: int = 5,
    interleave: Optional[bool] = None,
    fused_adamw: Optional[bool] = None,
    grad_clip: float = 1.0,
    search_max_micro_batch: bool = False,
    max_memory_gb: Optional[float] = None,
    peak_tflops: Optional[float] = None,
    device: str = "auto",
    threads: Optional[int] = None,
    seed: int = 42,
    out: Optional[Path] = None,
) -> dict:
    """Benchmark training steps of lit_tiny's GPT, in several setups, and of Hugging Face Llama on synthetic tokens.

    Args:
        model: Config preset name (``debug``, ``tiny_LLaMA_120M``, ``tiny_LLaMA_1b``, ...).
        micro_batch_size: Sequences per step (with ``--search_max_micro_batch``: where the search starts).
        seq_len: Tokens per sequence (default: the preset's block size).
        precision: ``32-true``; ``bf16-mixed`` (fp32 weights, bf16 autocast); ``bf16-true`` (bf16 weights).
            Default: bf16-mixed on a GPU, 32-true on a CPU.
        variants: The setups to measure, e.g. ``'[{name: lit_tiny}, {name: compiled, compile: true},
            {name: hf, implementation: hf}]'``. Default: lit_tiny and hf, both eager.
        warmup_steps: Untimed steps per variant before the timed rounds (and compilation, for compiled ones).
        rounds: Timed rounds per variant.
        steps_per_round: Timed steps in each round.
        interleave: Keep all variants resident and alternate their rounds. Default: on for CPUs (shared
            with other load), off for GPUs (each variant measured alone, then freed).
        fused_adamw: Fused AdamW; default: fused on a GPU, not on a CPU.
        grad_clip: Clip the global gradient norm to this value before each step (0 disables).
        search_max_micro_batch: Instead of timing, find the largest micro batch for which a training step of
            the first variant fits (without activation checkpointing): doubling from ``micro_batch_size``
            until a step runs out of memory (or passes ``max_memory_gb``), then bisecting.
        max_memory_gb: With ``--search_max_micro_batch``: a step fits only if its peak memory stays below
            this (needed on a CPU, where nothing runs out of memory). Default: the device's memory.
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
    variants = list(variants or DEFAULT_VARIANTS)
    check_variants(variants)
    config = Config.from_name(model)
    seq_len = seq_len or config.block_size
    if seq_len > config.block_size:
        raise ValueError(f"seq_len {seq_len} exceeds {model}'s block size {config.block_size}")
    if search_max_micro_batch and dev.type != "cuda" and max_memory_gb is None:
        raise ValueError(f"On {dev.type} nothing runs out of memory: give --max_memory_gb with "
                         "--search_max_micro_batch")
    setup = Setup(config, dev, resolve_precision(precision, dev, training=True), micro_batch_size, seq_len,
                  fused_adamw, grad_clip, seed)
    interleave = dev.type != "cuda" if interleave is None else interleave
    started = datetime.datetime.now()
    out = Path(out) if out else Path("out/benchmark") / f"{started:%Y%m%d-%H%M%S}.json"
    report = {
        "settings": {
            "model": model, "micro_batch_size": micro_batch_size, "seq_len": seq_len, "precision": setup.precision,
            "variants": [asdict(v) for v in variants], "warmup_steps": warmup_steps, "rounds": rounds,
            "steps_per_round": steps_per_round, "interleave": interleave, "fused_adamw": fused_adamw,
            "grad_clip": grad_clip, "search_max_micro_batch": search_max_micro_batch,
            "max_memory_gb": max_memory_gb, "peak_tflops": peak_tflops, "device": str(dev), "threads": threads,
            "seed": seed,
        },
        "model_config": asdict(config),
        "environment": environment(dev),
        "date": started.isoformat(timespec="seconds"),
        "memory_kind": "cuda_max_memory_allocated" if dev.type == "cuda" else "cpu_peak_rss",
    }
    if search_max_micro_batch:
        report["max_micro_batch"] = search_micro_batch(setup, variants[0], max_memory_gb)
        print_search(report["max_micro_batch"])
    else:
        compute_dtype = torch.float32 if setup.precision == "32-true" else torch.bfloat16
        peak = peak_tflops * 1e12 if peak_tflops else peak_flops(dev, compute_dtype)
        results, failures = benchmark(setup, variants, warmup_steps, rounds, steps_per_round, interleave, peak)
        report |= {"peak_flops": peak, "hf_attn_implementation": HF_ATTENTION,
                   "tokens_per_step": micro_batch_size * seq_len, "flops_per_token_palm": config.flops_per_token(seq_len),
                   "results": results, "failures": failures, "ratios_to_hf": ratios_to_hf(variants, results)}
        print_summary(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"Wrote {out}")
    if report.get("failures"):
        raise VariantsFailed(f"{len(report['failures'])} of {len(variants)} variants failed "
                             f"({', '.join(report['failures'])}); their errors are under 'failures' in {out}. "
                             "Drop them from --variants or install what they need.")
    return report


def check_variants(variants: list[Variant]) -> None:
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"--variants: names must be unique, got {names}")
    reference = Variant("reference", implementation="hf")
    for v in variants:
        ours_only = [f for f in ("attention_backend", "loss_backend", "kernel_backend")
                     if getattr(v, f) != getattr(reference, f)]
        if v.implementation == "hf" and ours_only:
            raise ValueError(f"--variants: {v.name!r} sets {', '.join(ours_only)}, which only lit_tiny has; "
                             "HF runs its own attention (sdpa) and loss")


def benchmark(setup: Setup, variants: list[Variant], warmup_steps: int, rounds: int, steps_per_round: int,
              interleave: bool, peak: Optional[float]) -> tuple[dict, dict]:
    """Per-variant figures, and the error of each variant that failed (the others go on)."""
    batches = synthetic_batches(setup.config.vocab_size, setup.micro_batch_size, setup.seq_len, setup.device,
                                setup.seed)
    results, failures = {}, {}
    for group in [variants] if interleave else [[v] for v in variants]:
        results |= measure_group(setup, group, batches, warmup_steps, rounds, steps_per_round, peak, failures)
        release_memory(setup.device)
    return results, failures


def measure_group(setup: Setup, group: list[Variant], batches, warmup_steps: int, rounds: int,
                  steps_per_round: int, peak: Optional[float], failures: dict[str, str]) -> dict:
    """Build the variants of ``group``, then time their rounds in turn; failures are added to ``failures``.
    The models live only as long as this call."""
    contenders = []
    for v in group:
        with recorded(v.name, failures):
            contenders.append(prepare(setup, v, batches, warmup_steps))
    for r in range(rounds):
        for c in contenders:
            if c.variant.name in failures:
                continue
            c.others_resident = sum(resident_bytes(o, setup.device) for o in contenders if o is not c)
            with recorded(c.variant.name, failures):
                time_round(setup, c, batches, warmup_steps + r * steps_per_round, steps_per_round)
    tokens_per_step = setup.micro_batch_size * setup.seq_len
    flops_per_token = setup.config.flops_per_token(setup.seq_len)
    return {c.variant.name: summarize(c, tokens_per_step, flops_per_token, peak)
            for c in contenders if c.variant.name not in failures}


@contextlib.contextmanager
def recorded(name: str, failures: dict[str, str]):
    """Run one variant's work; if it fails, record why and go on with the other variants. Optional backends
    fail in many ways (a missing package, a kernel the device lacks, a Triton or compiler error, memory)."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - recorded in the report and raised at the end as VariantsFailed
        failures[name] = f"{type(err).__name__}: {err}"
        print(f"{name} failed: {failures[name]}")


def build(setup: Setup, variant: Variant) -> Contender:
    """A variant's model (our weights from the seed; HF's copied from ours), its AdamW and its loss."""
    torch.manual_seed(setup.seed)
    config = replace(setup.config, attention_backend=variant.attention_backend, loss_backend=variant.loss_backend,
                     kernel_backend=variant.kernel_backend)
    with torch.device(setup.device):
        model = GPT(config)
    if variant.implementation == "hf":
        model = hf_model(model, config, setup.device)
    if setup.precision == "bf16-true":
        model.to(torch.bfloat16)
    model.train()
    optimizer = make_optimizer(model, lr=4e-4, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-5, fused=setup.fused_adamw)
    loss = hf_loss(model) if variant.implementation == "hf" else ours_loss(model)
    return Contender(variant, model, optimizer, loss)


def hf_model(ours: GPT, config: Config, device: torch.device) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_config = LlamaConfig.from_dict(config_to_hf(config), attn_implementation=HF_ATTENTION, use_cache=False)
    with torch.device(device):
        hf = LlamaForCausalLM(hf_config)
    hf.load_state_dict(state_dict_to_hf(ours.state_dict(), config))
    return hf


def ours_loss(model: GPT) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return model(x, targets=y)

    return loss


def hf_loss(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Hugging Face's own loss path: ``labels`` are the inputs, shifted inside the model."""

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return model(input_ids=x, labels=x).loss

    return loss


def compile_blocks(c: Contender) -> None:
    """``torch.compile`` each transformer block in place (parameter names unchanged), as the pretraining script does."""
    blocks = c.model.model.layers if c.variant.implementation == "hf" else c.model.blocks
    for block in blocks:
        block.compile()


def prepare(setup: Setup, variant: Variant, batches, warmup_steps: int) -> Contender:
    """Build a variant, measure one eager step (FLOPs, attention kernels, the first loss), compile it if
    asked, and run its warmup steps."""
    c = build(setup, variant)
    with RecordOps() as ops:
        c.measured_flops_per_step = measure_step_flops(c, batches[0], setup.autocast())
    c.attention_kernels = ops.attention_kernels()
    c.first_loss = eager_loss(c, batches[0], setup.autocast())
    if variant.compile:
        compile_blocks(c)
    for i in range(warmup_steps):
        train_step(setup, c, batches[i % len(batches)])
    synchronize(setup.device)
    return c


def train_step(setup: Setup, c: Contender, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    with setup.autocast():
        loss = c.loss(x, y)
    loss.backward()
    if setup.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(c.model.parameters(), setup.grad_clip)
    c.optimizer.step()
    c.optimizer.zero_grad(set_to_none=True)
    return loss


def time_round(setup: Setup, c: Contender, batches, first: int, steps: int) -> None:
    """``steps`` timed training steps, each bracketed by device synchronisation, and the round's peak memory."""
    synchronize(setup.device)
    reset_peak_memory(setup.device)
    times = []
    for i in range(first, first + steps):
        synchronize(setup.device)
        t0 = time.perf_counter()
        loss = train_step(setup, c, batches[i % len(batches)])
        synchronize(setup.device)
        times.append(time.perf_counter() - t0)
    c.rounds.append(times)
    c.peak_memory.append(peak_memory_bytes(setup.device))
    c.last_loss = loss.item()


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


def release_memory(device: torch.device) -> None:
    """Free what measured variants held: compiled code (which keeps its modules alive) and cached blocks."""
    torch.compiler.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def search_micro_batch(setup: Setup, variant: Variant, max_memory_gb: Optional[float]) -> dict:
    """The largest micro batch whose training step (forward, backward, AdamW) of ``variant`` fits, with
    the peak memory of every micro batch tried."""
    largest, probes = probe_micro_batches(setup, variant, max_memory_gb * 1e9 if max_memory_gb is not None else None)
    release_memory(setup.device)
    total = torch.cuda.get_device_properties(setup.device).total_memory if setup.device.type == "cuda" else None
    return {"variant": variant.name, "largest_micro_batch": largest, "seq_len": setup.seq_len,
            "activation_checkpointing": False, "max_memory_gb": max_memory_gb,
            "device_memory_gb": total / 1e9 if total else None, "probes": probes}


def probe_micro_batches(setup: Setup, variant: Variant, limit: Optional[float]) -> tuple[int, list[dict]]:
    """Search with one model of ``variant``, which lives only as long as this call."""
    c = build(setup, variant)
    if variant.compile:
        compile_blocks(c)
    probes = []

    def fits(micro_batch_size: int) -> bool:
        peak = probe_step(setup, c, micro_batch_size)
        probes.append({"micro_batch_size": micro_batch_size, "peak_memory_gb": None if peak is None else peak / 1e9,
                       "fits": peak is not None and (limit is None or peak <= limit)})
        return probes[-1]["fits"]

    return largest_passing(fits, setup.micro_batch_size), probes


def probe_step(setup: Setup, c: Contender, micro_batch_size: int) -> Optional[int]:
    """Peak memory of one training step at ``micro_batch_size``, or None when it runs out of memory."""
    batch = synthetic_batches(setup.config.vocab_size, micro_batch_size, setup.seq_len, setup.device, setup.seed,
                              count=1)[0]
    synchronize(setup.device)
    reset_peak_memory(setup.device)
    try:
        train_step(setup, c, batch)
        synchronize(setup.device)
        out_of_memory = False
    except torch.cuda.OutOfMemoryError:
        out_of_memory = True
    del batch
    if out_of_memory:  # outside the except clause, so that the failed step's tensors can be freed
        c.optimizer.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
        return None
    return peak_memory_bytes(setup.device)


def summarize(c: Contender, tokens_per_step: int, flops_per_token: int, peak: Optional[float]) -> dict:
    """Per-variant figures. Tokens/s comes from the median step time (robust to a noisy neighbour). Peak memory
    is the raw peak of this variant's rounds minus what the others hold meanwhile: what it needs alone."""
    times = sorted(t for r in c.rounds for t in r)
    median = statistics.median(times)
    tokens_per_s = tokens_per_step / median
    achieved = tokens_per_s * flops_per_token
    measured = c.measured_flops_per_step / median if c.measured_flops_per_step else None
    raw_peak = max((m for m in c.peak_memory if m is not None), default=None)
    return {
        "variant": asdict(c.variant),
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
        "attention_kernels": c.attention_kernels,
        "fused_adamw": c.optimizer.defaults.get("fused"),
        "peak_memory_gb": (raw_peak - c.others_resident) / 1e9 if raw_peak is not None else None,
        "peak_memory_raw_gb": raw_peak / 1e9 if raw_peak is not None else None,
        "others_resident_gb": c.others_resident / 1e9,
        "first_loss": c.first_loss,
        "last_loss": c.last_loss,
        "rounds": [{"step_times_s": r, "tokens_per_s": tokens_per_step * len(r) / sum(r)} for r in c.rounds],
    }


def ratios_to_hf(variants: list[Variant], results: dict) -> dict[str, float]:
    """Each variant's tokens/s over HF eager's (the first uncompiled ``hf`` variant), when that one ran."""
    hf = next((v.name for v in variants if v.implementation == "hf" and not v.compile), None)
    if hf not in results:
        return {}
    return {name: r["tokens_per_s"] / results[hf]["tokens_per_s"] for name, r in results.items() if name != hf}


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
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "triton": package_version("triton"),
        "liger_kernel": package_version("liger-kernel"),
        "flash_attn": package_version("flash-attn"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def package_version(name: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


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
          f"on {report['environment']['device_name']}")
    width = max(len(v["name"]) for v in s["variants"])
    for name, r in report["results"].items():
        t = r["step_time_s"]
        mfu = f"{r['mfu_palm']:.1%}" if r["mfu_palm"] is not None else "n/a"
        mfu_measured = f"{r['mfu_measured']:.1%}" if r["mfu_measured"] is not None else "n/a"
        memory = f"{r['peak_memory_gb']:.2f} GB" if r["peak_memory_gb"] is not None else "n/a"
        attention = ", ".join(k for k in r["attention_kernels"] if not k.endswith("_backward")) or "math (no fused kernel)"
        print(f"{name:>{width}}: {r['tokens_per_s']:,.0f} tokens/s  step {t['median'] * 1e3:.1f} ms "
              f"(p10 {t['p10'] * 1e3:.1f}, p90 {t['p90'] * 1e3:.1f})  "
              f"TFLOP/s {r['achieved_tflops_palm']:.3f} (measured {r['achieved_tflops_measured']:.3f})  "
              f"MFU {mfu} (measured {mfu_measured})  peak memory {memory}  "
              f"loss {r['first_loss']:.4f} -> {r['last_loss']:.4f}  attention {attention}")
    hf = next((v["name"] for v in s["variants"] if v["implementation"] == "hf" and not v["compile"]), None)
    for name, ratio in report["ratios_to_hf"].items():
        print(f"{name} / {hf} tokens/s: {ratio:.2f}x")


def print_search(search: dict) -> None:
    tried = ", ".join(f"{p['micro_batch_size']}: " + ("out of memory" if p["peak_memory_gb"] is None else
                                                       f"{p['peak_memory_gb']:.2f} GB" + " (over the limit)" * (not p["fits"]))
                      for p in search["probes"])
    print(f"{search['variant']}: largest micro batch that fits without activation checkpointing: "
          f"{search['largest_micro_batch']} x {search['seq_len']} tokens  (tried {tried})")


if __name__ == "__main__":
    from lit_tiny.cli import run

    run(main)
