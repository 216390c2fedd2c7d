"""Run by tests/data/test_loader.py under torchrun: what each rank's loaders read, gathered on rank 0.

    torchrun --standalone --nproc_per_node W tests/data/loader_ranks.py --sources A B --out result.json ...

With torch.distributed initialised (gloo), as in training, every rank builds the readers and loaders of
``lit_tiny.data.loader`` and records (1) how many blocks it sees per source, (2) one epoch of each
source alone, in global sample order, (3) the samples of each optimizer step of the mixed loader,
optionally continued from a saved loader state, and (4) the loader state after ``--save_after`` steps.
Rank 0 writes everything as JSON. Blocks are recorded as lists of token ids.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch.distributed as dist

from lit_tiny.data.loader import BlockReader, MixedLoader
from lit_tiny.data.sources import Source


def global_order(per_rank: list[list[list[list[int]]]], batch_size: int) -> list[list[int]]:
    """Samples of all ranks' micro-batches, sorted by global index g = (t * W + r) * B + i."""
    world = len(per_rank)
    placed = {}
    for r, batches in enumerate(per_rank):
        for t, batch in enumerate(batches):
            for i, row in enumerate(batch):
                placed[(t * world + r) * batch_size + i] = row
    return [placed[g] for g in sorted(placed)]


def micro_batches(loader: MixedLoader, count: int) -> list[list[list[int]]]:
    out = []
    for batch in loader:
        out.append(batch.tolist())
        if len(out) == count:
            return out
    raise AssertionError("the loader ended")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", nargs="+", required=True)
    parser.add_argument("--weights", nargs="+", type=float, required=True)
    parser.add_argument("--block_size", type=int, required=True)
    parser.add_argument("--global_batch", type=int, required=True, help="sequences per optimizer step")
    parser.add_argument("--micro_batch", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--load_state", type=Path)
    parser.add_argument("--save_after", type=int)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    accumulation = args.global_batch // (args.micro_batch * world)
    assert accumulation * args.micro_batch * world == args.global_batch
    result: dict = {"world_size": world, "workers": args.num_workers, "env_world_size": os.environ.get("WORLD_SIZE")}

    # (1) and (2): every block of every source, and one epoch of each source on its own.
    result["num_blocks"], result["epochs"] = [], []
    for path in args.sources:
        reader = BlockReader(Path(path), args.block_size + 1)
        result["num_blocks"].append(reader.num_blocks)
        loader = MixedLoader([Source(Path(path))], args.block_size, args.micro_batch, seed=args.seed, rank=rank,
                             world_size=world, num_workers=args.num_workers)
        per_pass = args.micro_batch * world
        mine = micro_batches(loader, -(-reader.num_blocks // per_pass))
        gathered: list = [None] * world
        dist.all_gather_object(gathered, mine)
        result["epochs"].append(global_order(gathered, args.micro_batch)[: reader.num_blocks])

    # (3) and (4): the mixed loader, step by step.
    sources = [Source(Path(p), w) for p, w in zip(args.sources, args.weights)]
    loader = MixedLoader(sources, args.block_size, args.micro_batch, seed=args.seed, rank=rank, world_size=world,
                         num_workers=args.num_workers)
    if args.load_state is not None:
        loader.load_state_dict(json.loads(args.load_state.read_text()))
    steps, batches = [], iter(loader)
    for step in range(args.steps):
        mine = [next(batches).tolist() for _ in range(accumulation)]
        gathered = [None] * world
        dist.all_gather_object(gathered, mine)
        steps.append(sorted(row for batches_of_rank in gathered for batch in batches_of_rank for row in batch))
        if args.save_after is not None and step + 1 == args.save_after:
            result["state"] = loader.state_dict()
    result["steps"] = steps
    if rank == 0:
        args.out.write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
