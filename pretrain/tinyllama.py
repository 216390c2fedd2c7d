"""Pretrain a TinyLlama-class model with Lightning Fabric: one CPU process up to many GPU nodes (FSDP).

    python pretrain/tinyllama.py --config configs/demo_cpu.yaml          # 2 CPU cores, a few minutes
    python pretrain/tinyllama.py --config configs/tinyllama_1b.yaml --devices 8 --num_nodes 2

Reads top to bottom: ``setup`` checks every setting and launches the processes; ``main`` builds the
data, model and optimizer and restores a saved state; ``fit`` is the loop; ``validate`` and the two
``save_*`` functions are what the loop calls. Copy this file to start an experiment.

Outputs in ``out_dir`` (the layout is ``lit_tiny.training.run_dir``): ``train_state/step-N`` (resumable,
pickle-free, any world size), ``checkpoints/step-N`` (consolidated lit_tiny checkpoints with
``progress.json``), ``logs/`` (TensorBoard), ``metrics.jsonl``, ``loss.png``, ``config.yaml`` (the first
launch's settings) and ``config_history.jsonl`` (what later launches changed), ``run.lock`` while the run
lives and, when the run is finished, ``summary.json``. SIGTERM or SIGUSR1 to any process of the job saves
the state at the next step boundary and exits 0; ``--resume auto`` continues, skipping damaged states.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import torch
import yaml

from lit_tiny.checkpoint import check_initial_weights, load_checkpoint, load_model, load_tokenizer, save_checkpoint
from lit_tiny.cli import is_first_process, run
from lit_tiny.config import Config
from lit_tiny.data.loader import MixedLoader, validation_loader
from lit_tiny.data.sources import TrainingData, training_data
from lit_tiny.devices import TrainingPrecision, resolve_device, resolve_precision
from lit_tiny.generate import generate
from lit_tiny.losses import IGNORE_INDEX
from lit_tiny.model import GPT
from lit_tiny.tokenizer import Tokenizer
from lit_tiny.training.batch_plan import BatchPlan
from lit_tiny.training.distributed import full_state_dict, make_fabric, resolve_devices, total_norm
from lit_tiny.training.metrics import MetricsLog
from lit_tiny.training.optimizer import cosine_lr, make_optimizer
from lit_tiny.training.plots import plot_run
from lit_tiny.training.run_dir import RunDir, RunInUse, RunLock, progress_text, setting_changes
from lit_tiny.training.settings import CheckpointArgs, DataArgs, EvalArgs, TrainArgs
from lit_tiny.training.signals import StopRequest
from lit_tiny.training.speed import SpeedMeter, format_duration, peak_flops
from lit_tiny.training.train_state import choose_state, clean_leftovers, load_train_state, save_train_state


def setup(
    model: str = "tiny_LLaMA_1b",
    out_dir: Path = Path("out/tinyllama_1b"),
    devices: Union[int, Literal["auto"]] = "auto",
    num_nodes: int = 1,
    precision: Optional[TrainingPrecision] = None,
    activation_checkpointing: bool = False,
    compile: bool = False,
    resume: Union[bool, Literal["auto"], Path] = False,
    initial_checkpoint_dir: Optional[Path] = None,
    seed: int = 42,
    sample_prompt: Optional[str] = None,
    train: TrainArgs = TrainArgs(),
    eval: EvalArgs = EvalArgs(),
    checkpoint: CheckpointArgs = CheckpointArgs(),
    data: DataArgs = DataArgs(),
) -> None:
    """Pretrain a Llama-2-architecture model on prepared token data.

    Args:
        model: A preset name from ``lit_tiny.config`` (tiny_LLaMA_1b, tiny_LLaMA_120M, debug, ladder_N) or
            the path of a model_config.yaml.
        out_dir: Folder for checkpoints, logs and metrics.
        devices: Processes per node (GPUs per node; on a CPU-only machine, CPU processes). ``auto``: all GPUs, or 1.
        num_nodes: Number of nodes.
        precision: ``bf16-mixed`` (fp32 weights, bf16 compute; the GPU default), ``32-true`` (the CPU default)
            or ``bf16-true``.
        activation_checkpointing: Recompute each block's activations in the backward pass to save memory.
        compile: ``torch.compile`` every transformer block.
        resume: ``auto`` continues from the newest intact state in ``out_dir/train_state`` (or starts fresh if
            there is none); a path continues from that state; ``false`` refuses a folder that has states.
        initial_checkpoint_dir: Start a new run from the weights of this lit_tiny checkpoint (continued
            pretraining, e.g. of TinyLlama after ``lit-tiny convert_from_hf``). Its shape must be the run's
            model and its tokenizer the data's; the optimizer starts fresh. Ignored when resuming.
        seed: Seed of the weight init and of the data order.
        sample_prompt: After training, print the final model's continuation of this prompt.
        train: Optimisation and run length.
        eval: Validation.
        checkpoint: Saving.
        data: Training and validation data.
    """
    # Everything that can be wrong is checked here, before any process starts or any file is touched.
    stop = StopRequest()  # SIGTERM / SIGUSR1 from now on: save at the next step boundary, exit 0
    config = Config.from_file(model) if model.endswith((".yaml", ".yml")) else Config.from_name(model)
    devices = resolve_devices(devices)
    precision = resolve_precision(precision, resolve_device("auto"), training=True)
    plan = BatchPlan.make(train.global_batch_tokens, train.micro_batch_size, config.block_size, devices * num_nodes,
                          train.max_tokens, train.max_steps, train.warmup_steps)
    dataset = training_data(data.train_dirs, data.weights, data.val_dirs, data.tokenizer_dir, config.vocab_size,
                            data.demo())
    if initial_checkpoint_dir is not None:
        check_initial_weights(initial_checkpoint_dir, config, dataset.tokenizer_sha256)
    run = RunDir(out_dir)
    check_resume_request(resume, run)
    if resume is not False and (finished := finished_step(run, plan)) is not None:
        print_once(f"{run.root} holds a finished run: step {finished} of {plan.max_steps} ({run.summary_file}). "
                   "Nothing to do; raise --train.max_steps (or max_tokens) to train on. Next: python "
                   f"eval/training_run.py --run_dir {run.root} --data_dir data/eval")
        return
    settings = json.loads(json.dumps({
        "model": asdict(config), "devices": devices, "num_nodes": num_nodes, "precision": precision,
        "activation_checkpointing": activation_checkpointing, "compile": compile, "seed": seed,
        "initial_checkpoint_dir": initial_checkpoint_dir, "train": asdict(train), "eval": asdict(eval),
        "checkpoint": asdict(checkpoint),
        "data": {**asdict(data), "identity": dataset.identity(), "resolved": {
            "sources": [(str(s.path), s.weight) for s in dataset.sources],
            "val_dirs": [str(p) for p in dataset.val_dirs], "tokenizer_dir": str(dataset.tokenizer_dir)}},
    }, default=str))
    changes = settings_since_last_launch(run, settings)
    job = Job(config, plan, dataset, run, resume, initial_checkpoint_dir, precision, seed, sample_prompt, train, eval,
              checkpoint, data.num_workers, settings, changes, stop)

    fabric = make_fabric(devices, num_nodes, precision, activation_checkpointing, compile,
                         loggers=tensorboard_logger(run))
    fabric.print(plan.describe())
    fabric.launch(main, job)


@dataclass
class Job:
    """What ``main`` and ``fit`` need, every field checked by ``setup`` before any process starts."""

    config: Config
    plan: BatchPlan
    data: TrainingData
    run: RunDir
    resume: Union[bool, str, Path]
    initial_checkpoint_dir: Optional[Path]
    precision: TrainingPrecision
    seed: int
    sample_prompt: Optional[str]
    train: TrainArgs
    eval: EvalArgs
    checkpoint: CheckpointArgs
    num_workers: int
    settings: dict
    changes: list[str]
    stop: StopRequest


def main(fabric, job: Job) -> None:
    if fabric.device.type == "cpu":  # share the cores between the processes of this node
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // fabric.strategy.num_processes))
    lock = RunLock(job.run)
    try:
        resume_from = on_rank_zero(fabric, lambda: take_the_run(fabric, job, lock))
        train_and_save(fabric, job, resume_from)
    finally:
        lock.release()


def take_the_run(fabric, job: Job, lock: RunLock) -> Optional[str]:
    """Rank 0, before anything is written: lock the folder, clear what interrupted saves left, pick the state
    to resume from (moving damaged ones aside), and record the settings. Returns that state."""
    note = lock.acquire()
    if note:
        print(f"note: {note}")
    for leftover in clean_leftovers(job.run):
        print(f"note: removed {leftover}, left by an interrupted save")
    explicit = None if job.resume in (True, False, "auto") else Path(job.resume)
    resume_from = choose_state(job.run, explicit) if job.resume is not False else None
    if job.changes:
        print(f"Settings changed since the last launch (recorded in {job.run.history_file.name}):\n  "
              + "\n  ".join(job.changes))
    job.run.record_settings(job.settings, job.changes, int(resume_from.name.split("-")[-1]) if resume_from else 0)
    fabric.logger.experiment.add_text("settings", f"```yaml\n{yaml.safe_dump(job.settings)}```")
    return str(resume_from) if resume_from else None


def train_and_save(fabric, job: Job, resume_from: Optional[str]) -> None:
    # Data: a resumable 7:3 (by default) mix for training, the same fixed sequences for every validation.
    config, plan = job.config, job.plan
    train_loader = MixedLoader(job.data.sources, config.block_size, plan.micro_batch_size, seed=job.seed,
                               rank=fabric.global_rank, world_size=fabric.world_size, num_workers=job.num_workers)
    val_loader = validation_loader(job.data.val_dirs, config.block_size, plan.micro_batch_size, fabric.global_rank,
                                   fabric.world_size, max_sequences=job.eval.max_sequences)

    # Model: every rank builds the same full model from the seed, then FSDP keeps only its shard.
    fabric.seed_everything(job.seed)
    with fabric.init_module(empty_init=False):
        model = GPT(config)
    if job.initial_checkpoint_dir is not None and resume_from is None:
        model.load_state_dict(load_checkpoint(job.initial_checkpoint_dir)[1])
        fabric.print(f"Initial weights from {job.initial_checkpoint_dir}")
    fabric.print(f"Model {config.name}: {config.num_params():,} parameters "
                 f"({config.num_params(non_embedding=True):,} non-embedding), "
                 f"{config.flops_per_token() / 1e9:.3f} GFLOP per token (PaLM convention)")
    model = fabric.setup(model)
    train = job.train
    optimizer = fabric.setup_optimizers(make_optimizer(
        model, train.lr, train.weight_decay, (train.beta1, train.beta2), train.eps))

    progress = {"step": 0, "tokens_seen": 0}
    if resume_from is not None:
        fabric.print(f"Resuming from {resume_from}")
        state = training_state(model, optimizer, progress, train_loader)
        load_train_state(fabric, resume_from, state)
        progress = state["progress"]
        train_loader.load_state_dict(state["data"])
    metrics = MetricsLog(fabric, job.run, resumed_step=progress["step"])
    if resume_from is not None:
        write_owed_outputs(fabric, model, job, progress, metrics)

    fit(fabric, job, model, optimizer, train_loader, val_loader, progress, metrics)

    if fabric.global_rank == 0:
        finished = progress["step"] == plan.max_steps
        if finished and job.sample_prompt is not None:
            sample = sample_text(job.run.checkpoint_path(progress["step"]), job.sample_prompt, fabric.device)
            print(f"\nSample from {job.run.checkpoint_path(progress['step'])}:\n{sample}\n")
            fabric.logger.experiment.add_text("sample", sample, global_step=progress["step"])
        fabric.logger.finalize("success")
        print_outputs(job.run, finished)


def training_state(model, optimizer, progress: dict, train_loader: MixedLoader) -> dict:
    """What a saved training state holds: weights, optimizer, step and tokens, the data loader's position."""
    return {"model": model, "optimizer": optimizer, "progress": progress, "data": train_loader.state_dict()}


def fit(fabric, job: Job, model, optimizer, train_loader: MixedLoader, val_loader, progress: dict,
        metrics: MetricsLog) -> None:
    plan, train = job.plan, job.train
    stop_at = min(plan.max_steps, train.stop_at_step or plan.max_steps)
    peak = peak_flops(fabric.device, torch.float32 if job.precision == "32-true" else torch.bfloat16)
    flops_per_step = job.config.flops_per_token() * plan.global_batch_tokens
    meter = SpeedMeter()
    meter.update(progress["tokens_seen"])
    batches = iter(train_loader)
    fabric.print(f"Training from step {progress['step']} to {stop_at} of {plan.max_steps}")

    while progress["step"] < stop_at:
        step = progress["step"]
        lr = cosine_lr(step, plan.max_steps, train.lr, train.min_lr, plan.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr

        # Forward/backward over the micro batches; gradients are reduced across ranks only on the last.
        loss_sum = torch.zeros((), device=fabric.device)
        for micro in range(plan.accumulation):
            batch = next(batches).to(fabric.device, non_blocking=True).long()
            with fabric.no_backward_sync(model, enabled=micro < plan.accumulation - 1):
                loss = model(batch[:, :-1], targets=batch[:, 1:])
                fabric.backward(loss / plan.accumulation)
            loss_sum += loss.detach()

        # The one host synchronisation of the step: the loss averaged over ranks, and the stop flag.
        shared = torch.stack([loss_sum / plan.accumulation, torch.tensor(float(job.stop.is_set), device=fabric.device)])
        loss_total, stop_votes = fabric.all_reduce(shared, reduce_op="sum").tolist()
        loss_value = loss_total / fabric.world_size
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"Non-finite training loss ({loss_value}) at step {step + 1}; the optimizer step was not applied. "
                f"Newest saved state: {job.run.latest_state() or 'none'}. Lower train.lr or check the data, "
                "then resume with --resume auto.")

        grad_norm = total_norm(torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip or float("inf")))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        progress["step"] += 1
        progress["tokens_seen"] += plan.global_batch_tokens
        step = progress["step"]
        meter.update(progress["tokens_seen"])

        if step % train.log_interval == 0 or step == stop_at:
            tokens_per_s = meter.tokens_per_second()
            step_time = meter.seconds_per_step()
            logged = {"tokens": progress["tokens_seen"], "loss": loss_value, "lr": lr, "grad_norm": grad_norm.item()}
            if tokens_per_s is not None:
                logged["tokens_per_s"] = tokens_per_s
                logged["tokens_per_s_per_device"] = tokens_per_s / fabric.world_size
                if peak is not None:
                    logged["mfu"] = flops_per_step / step_time / (peak * fabric.world_size)
            metrics.log(step, logged)
            mfu = f"MFU {logged['mfu']:.1%} | " if "mfu" in logged else ""
            speed = f"{tokens_per_s:,.0f} tok/s | " if tokens_per_s else ""
            fabric.print(f"step {step:>{len(str(plan.max_steps))}}/{plan.max_steps} | loss {loss_value:.4f} | "
                         f"lr {lr:.2e} | grad {logged['grad_norm']:.3f} | {speed}{mfu}"
                         f"ETA {format_duration(meter.eta_seconds(plan.max_steps - step))}")

        if step % job.eval.interval == 0 or step == plan.max_steps:
            val_loss = validate(fabric, model, val_loader)
            metrics.log(step, {"tokens": progress["tokens_seen"], "val_loss": val_loss, "val_ppl": math.exp(val_loss)})
            fabric.print(f"step {step}: validation loss {val_loss:.4f}, perplexity {math.exp(val_loss):.2f}")
            if fabric.global_rank == 0:
                plot_run(job.run, title=job.config.name)

        stopping = stop_votes > 0 or step == stop_at
        if step % job.checkpoint.interval == 0 or stopping:
            state = training_state(model, optimizer, progress, train_loader)
            path = save_train_state(fabric, job.run, step, state, job.checkpoint.keep_last)
            fabric.print(f"Saved training state to {path}")
        if step % job.checkpoint.consolidated_interval == 0 or step == plan.max_steps:
            save_consolidated(fabric, model, job, progress)
        if stop_votes > 0:
            by = job.stop.name if job.stop.is_set else "a stop signal to another process of the job"
            fabric.print(f"Stopped by {by} after step {step}. Continue with --resume auto.")
            return

    if progress["step"] == plan.max_steps and fabric.global_rank == 0:
        write_summary(job, progress, metrics)


@torch.no_grad()
def validate(fabric, model, val_loader) -> float:
    """Mean token loss over the validation set, whatever the world size: each rank sums its tokens'
    losses (padding slots, which keep the ranks in lockstep, count for nothing), then the sums are reduced."""
    model.eval()
    totals = torch.zeros(2, device=fabric.device)
    for blocks, valid in val_loader:
        blocks, valid = blocks.to(fabric.device).long(), valid.to(fabric.device)
        targets = blocks[:, 1:].masked_fill(~valid[:, None], IGNORE_INDEX)
        n_tokens = (targets != IGNORE_INDEX).sum()
        loss = model(blocks[:, :-1], targets=targets)
        totals[0] += torch.where(n_tokens > 0, loss * n_tokens, 0.0)
        totals[1] += n_tokens
    totals = fabric.all_reduce(totals, reduce_op="sum")
    model.train()
    return (totals[0] / totals[1]).item()


def save_consolidated(fabric, model, job: Job, progress: dict) -> None:
    """Gather the full weights on rank 0 and write a lit_tiny checkpoint (the README's format)."""
    weights = full_state_dict(model)
    if fabric.global_rank == 0:
        path = job.run.checkpoint_path(progress["step"])
        tokenizer = Tokenizer(job.data.tokenizer_dir)
        if tokenizer.digest() != job.data.tokenizer_sha256:
            raise ValueError(f"{tokenizer.path} changed during the run: it is no longer the tokenizer the data was "
                             "prepared with, and the checkpoint must carry that one. Restore it and resume.")
        save_checkpoint(path, weights, job.config, tokenizer.files(),
                        extra_files={"progress.json": progress_text(progress["step"], progress["tokens_seen"])})
        print(f"Saved checkpoint to {path}")
    fabric.barrier()


def write_summary(job: Job, progress: dict, metrics: MetricsLog) -> None:
    """``summary.json`` marks a finished run and holds what scaling sweeps read."""
    val = job.run.validation_curve()
    config = job.config
    job.run.write_summary({
        "status": "finished",
        "step": progress["step"],
        "max_steps": job.plan.max_steps,
        "tokens_seen": progress["tokens_seen"],
        "final_val_loss": val[-1]["val_loss"],
        "final_val_ppl": val[-1]["val_ppl"],
        "model": asdict(config),
        "num_params": config.num_params(),
        "num_params_non_embedding": config.num_params(non_embedding=True),
        "flops_per_token": config.flops_per_token(),
        "wall_time_s": metrics.wall_time(),
        "final_checkpoint": str(job.run.checkpoint_path(progress["step"])),
    })


def sample_text(checkpoint_dir: Path, prompt: str, device: torch.device) -> str:
    """The final checkpoint's continuation of ``prompt``, as decoding the whole sequence shows it."""
    model = load_model(checkpoint_dir, device=device).eval()
    tokenizer = load_tokenizer(checkpoint_dir)
    ids = tokenizer.encode(prompt)
    new = list(generate(model, torch.tensor(ids, device=device), max_new_tokens=60, temperature=0.8, top_k=40,
                        eos_id=tokenizer.eos_id, generator=torch.Generator(device=device).manual_seed(0)))
    return tokenizer.decode(ids + new)


def print_outputs(run: RunDir, finished: bool) -> None:
    """Where everything is, and what to run next."""
    checkpoints = sorted(p.name for p in run.checkpoints_dir.glob("step-*")) if run.checkpoints_dir.is_dir() else []
    lines = [f"\nOutputs in {run.root}:",
             f"  checkpoints  {run.checkpoints_dir}: {', '.join(checkpoints) or 'none yet'}",
             f"  states       {run.states_dir} (newest: {run.latest_state().name if run.latest_state() else 'none'})",
             f"  metrics      {run.metrics_file}",
             f"  plot         {run.loss_plot}",
             f"  TensorBoard  tensorboard --logdir {run.logs_dir}"]
    if finished:
        lines.append(f"Next: python eval/training_run.py --run_dir {run.root} --data_dir data/eval"
                     "   # score every checkpoint (tutorials/evaluation.md)")
    else:
        lines.append("Next: run the same command with --resume auto to continue")
    print("\n".join(lines), flush=True)


def write_owed_outputs(fabric, model, job: Job, progress: dict, metrics: MetricsLog) -> None:
    """A resumed state's step may owe outputs that a kill prevented: its consolidated checkpoint, and at
    the last step the summary. Write what is missing (collective)."""
    step, ckpt = progress["step"], job.checkpoint
    owes_checkpoint = step % ckpt.consolidated_interval == 0 or step == job.plan.max_steps
    if owes_checkpoint and step > 0 and not job.run.checkpoint_path(step).is_dir():
        fabric.print(f"Writing the consolidated checkpoint of step {step}, which the last launch did not finish")
        save_consolidated(fabric, model, job, progress)
    if step == job.plan.max_steps and fabric.global_rank == 0 and job.run.read_summary() is None:
        write_summary(job, progress, metrics)


def check_resume_request(resume: Union[bool, str, Path], run: RunDir) -> None:
    if resume is False and (states := run.states()):
        raise FileExistsError(f"{run.root} already holds training states ({states[-1].name} ...). Pass --resume auto "
                              "to continue that run, or choose another --out_dir.")
    if resume not in (True, False, "auto") and not Path(resume).is_dir():
        raise FileNotFoundError(f"--resume {resume}: no such training state folder")


def finished_step(run: RunDir, plan: BatchPlan) -> Optional[int]:
    """The step of a finished run (its summary, final checkpoint and newest state all there), else None."""
    summary, latest = run.read_summary(), run.latest_state()
    if summary is None or summary.get("status") != "finished" or summary.get("step") != plan.max_steps:
        return None
    if latest != run.state_path(plan.max_steps) or not run.checkpoint_path(plan.max_steps).is_dir():
        return None
    return plan.max_steps


def settings_since_last_launch(run: RunDir, settings: dict) -> list[str]:
    """The settings changed since the run's last launch; refused when one of them defines the run."""
    previous = run.last_settings()
    if previous is None:
        return []
    refused, allowed = setting_changes(previous, settings)
    if refused:
        raise ValueError(f"{run.root} was launched with other settings ({run.config_file}, "
                         f"{run.history_file.name}); these define the run and may not change on resume: "
                         f"{'; '.join(refused)}. Restore them, or start a new run with another --out_dir.")
    return allowed


def on_rank_zero(fabric, work):
    """Run ``work()`` on rank 0 and give every rank its result, or raise its error on every rank (an error on
    rank 0 alone would leave the others waiting in the next collective)."""
    outcome = None
    if fabric.global_rank == 0:
        try:
            outcome = ("ok", work())
        except (ValueError, OSError) as err:
            outcome = ("error", isinstance(err, OSError), str(err))
    outcome = fabric.broadcast(outcome, src=0)
    if outcome[0] == "error":
        raise (RunInUse if outcome[1] else ValueError)(outcome[2])
    return outcome[1]


def print_once(message: str) -> None:
    """Print from the first process of the job only (before Fabric starts, every process runs ``setup``)."""
    if is_first_process():
        print(message, flush=True)


def tensorboard_logger(run: RunDir):
    from lightning.fabric.loggers import TensorBoardLogger

    return TensorBoardLogger(root_dir=run.root, name=run.logs_dir.name, version="")


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    run(setup)
