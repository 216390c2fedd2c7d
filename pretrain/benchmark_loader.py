"""Throughput of the training data loader alone: how far ahead of the GPU it stays.

Builds the pretraining script's ``MixedLoader`` (the same sources, mixing, sharding and workers) for one
rank and times how fast it hands out micro-batches, after the first ones (worker start-up) are skipped.
Prints tokens/s per rank and writes the figures to a JSON file.

    python pretrain/benchmark_loader.py --data.demo_dir data/demo --block_size 2048 --data.num_workers 2
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch

from lit_tiny.config import Config
from lit_tiny.data.loader import MixedLoader
from lit_tiny.data.sources import training_data
from lit_tiny.training.settings import DataArgs


def main(
    model: str = "tiny_LLaMA_1b",
    block_size: Optional[int] = None,
    micro_batch_size: int = 8,
    batches: int = 1000,
    skip: int = 10,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 42,
    data: DataArgs = DataArgs(),
    out: Optional[Path] = None,
) -> dict:
    """Time the training data loader of one rank on prepared data (as ``pretrain/tinyllama.py`` reads it).

    Args:
        model: Config preset whose vocabulary the data must fit (and whose block size is the default).
        block_size: Tokens per training sequence (each block read is one token longer, for the targets).
        micro_batch_size: Sequences per batch.
        batches: Batches timed.
        skip: Batches read before the clock starts (worker start-up, first file opens).
        rank: The rank whose share of the data is read.
        world_size: Ranks the data is dealt over.
        seed: Seed of the data order.
        data: The training data, as for the pretraining script (``--data.demo_dir``, ``--data.train_dirs``, ...,
            ``--data.num_workers``).
        out: JSON file to write (default: ``out/benchmark/loader-<timestamp>.json``).
    """
    if batches < 1 or skip < 0:
        raise ValueError(f"batches must be positive and skip non-negative, got batches={batches}, skip={skip}")
    config = Config.from_name(model)
    block_size = block_size or config.block_size
    dataset = training_data(data.train_dirs, data.weights, data.val_dirs, data.tokenizer_dir, config.vocab_size,
                            data.demo())
    loader = MixedLoader(dataset.sources, block_size, micro_batch_size, seed=seed, rank=rank, world_size=world_size,
                         num_workers=data.num_workers)
    started = datetime.datetime.now()
    seconds, shape = time_batches(loader, skip, batches)
    tokens = batches * micro_batch_size * block_size
    report = {
        "settings": {"model": model, "block_size": block_size, "micro_batch_size": micro_batch_size,
                     "batches": batches, "skip": skip, "rank": rank, "world_size": world_size, "seed": seed,
                     "data": {**asdict(data), "sources": [(str(s.path), s.weight) for s in dataset.sources]}},
        "environment": {"cpu_count": os.cpu_count(), "load_average_1_5_15min": os.getloadavg(),
                        "torch": torch.__version__, "python": platform.python_version(),
                        "platform": platform.platform()},
        "date": started.isoformat(timespec="seconds"),
        "batch_shape": shape,
        "pinned": torch.cuda.is_available(),
        "seconds": seconds,
        "tokens_per_s_per_rank": tokens / seconds,
        "batches_per_s": batches / seconds,
    }
    print(f"data loader: {report['tokens_per_s_per_rank']:,.0f} tokens/s per rank ({report['batches_per_s']:,.1f} "
          f"batches/s of {micro_batch_size} x {block_size} tokens, {data.num_workers} workers, rank {rank} of "
          f"{world_size}) over {batches} batches")
    out = Path(out) if out else Path("out/benchmark") / f"loader-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"Wrote {out}")
    return report


def time_batches(loader: MixedLoader, skip: int, batches: int) -> tuple[float, list[int]]:
    """Seconds to draw ``batches`` batches after the first ``skip``, and the shape of a batch."""
    stream = iter(loader)
    for _ in range(skip):
        next(stream)
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = next(stream)
    seconds = time.perf_counter() - t0
    stream.close()  # stops the workers
    return seconds, list(batch.shape)


if __name__ == "__main__":
    from lit_tiny.cli import run

    run(main)
