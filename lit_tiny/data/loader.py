"""Training and validation loaders over prepared token chunks: weighted mixing, sharding, exact resume.

How a training batch is chosen, in one paragraph. Every sample of the whole run has a global index
``g``. Sample ``g`` draws its source from a seeded random stream (one uniform draw per ``g``, made in
chunks so that any position can be regenerated), and takes the next unread block of that source:
if source ``s`` was drawn ``k`` times before, the block is ``shuffle_s(k mod n_s)``, a seeded
pseudo-random permutation of the source's ``n_s`` blocks that is reshuffled every epoch. Micro-batch
``t`` of rank ``r`` holds samples ``g0 + (t * world_size + r) * batch_size + i``. Dataloader worker
``w`` builds the micro-batches ``t = w, w + num_workers, ...`` and PyTorch's in-order loader hands them
out in order, so the batches do not depend on the number of workers. An optimizer step of ``G`` samples
(``G = accumulation * world_size * batch_size``) therefore holds samples ``[s * G, (s + 1) * G)`` for
every world size, micro batch and worker count: the data order is a function of the seed and ``g`` only.
Every process reads every block (:class:`BlockReader`), so this holds under ``torch.distributed`` too.

The loader's state is therefore just ``(g, draws per source at g)``: identical on every rank, saved
with the checkpoint, and enough to continue exactly where an uninterrupted run would be, whatever the
number of workers (litdata's ``CombinedStreamingDataset`` resumes exactly only with 0 workers), and
on any number of ranks. The validation set (:class:`ValidationBlocks`) does not depend on the world size either.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from lit_tiny.data.prepare import load_summary
from lit_tiny.data.readers import DataError
from lit_tiny.data.sources import Source
from lit_tiny.training.signals import WorkerGuard, held_back

DRAW_CHUNK = 8192  # source draws are generated (and regenerated on resume) this many at a time


class BlockReader:
    """Random access to all ``block_size``-token blocks of one prepared folder (opened lazily, per process).

    Every process sees every block, whatever the distributed state: the loaders below assign samples
    to ranks themselves. litdata would otherwise shard the dataset it detects ranks for (from
    ``torch.distributed`` or from ``WORLD_SIZE`` in the environment, which torchrun sets): its
    ``__len__`` then counts only ``1/world_size`` of the blocks while ``__getitem__`` still indexes the
    whole folder, so every rank would read the same first fraction of the data.
    """

    def __init__(self, path: Path, block_size: int) -> None:
        self.path = Path(path)
        self.block_size = block_size
        load_summary(self.path)
        self._dataset = None
        self.num_blocks = len(self._open())
        if self.num_blocks == 0:
            raise DataError(f"{self.path} holds fewer than {block_size} tokens per chunk: no block of {block_size} tokens fits")

    def _open(self):
        if self._dataset is None:
            from litdata import StreamingDataset, TokensLoader
            from litdata.utilities.env import _DistributedEnv

            dataset = StreamingDataset(str(self.path), item_loader=TokensLoader(block_size=self.block_size))
            dataset.distributed_env = _DistributedEnv(world_size=1, global_rank=0, num_nodes=1)
            dataset.drop_last = False  # litdata forces drop_last when it detects several ranks
            self._dataset = dataset
        return self._dataset

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._open()[index].to(torch.int64)

    def __getstate__(self):
        return {**self.__dict__, "_dataset": None}


# ------------------------------------------------------------------ seeded draws


def _mix(*values: int) -> int:
    digest = hashlib.blake2b(b",".join(str(v).encode() for v in values), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def shuffled_index(k: int, n: int, key: int) -> int:
    """Position ``k`` of a pseudo-random permutation of ``range(n)`` keyed by ``key``, in O(1) memory.

    A 4-round Feistel network permutes the smallest even-bit domain >= n; values that land outside
    ``range(n)`` are fed through again ("cycle walking"), which stays a bijection on ``range(n)``.
    """
    if n == 1:
        return 0
    half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = (1 << half_bits) - 1
    x = k
    while True:
        left, right = x >> half_bits, x & mask
        for round_ in range(4):
            left, right = right, left ^ (_mix(key, round_, right) & mask)
        x = (left << half_bits) | right
        if x < n:
            return x


class SourceDraws:
    """Which source each global sample index draws from, and that source's draw count before it."""

    def __init__(self, weights: Sequence[float], seed: int) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if len(w) == 0 or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"Source weights must be non-negative with a positive sum, got {list(weights)}")
        self.p = w / w.sum()
        self.seed = seed

    def chunk(self, c: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0x5EED, c])
        return rng.choice(len(self.p), size=DRAW_CHUNK, p=self.p).astype(np.int64)

    def walk(self, g: int, counts: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """From global index ``g`` with ``counts`` draws so far, yield (first index, sources, draw numbers) per chunk."""
        counts = counts.copy()
        while True:
            c, offset = divmod(g, DRAW_CHUNK)
            sources = self.chunk(c)[offset:]
            draw = np.empty_like(sources)
            for s in range(len(self.p)):
                hit = sources == s
                draw[hit] = counts[s] + np.arange(hit.sum())
                counts[s] += hit.sum()
            yield g, sources, draw
            g += len(sources)

    def counts_at(self, g_from: int, counts: np.ndarray, g_to: int) -> np.ndarray:
        counts = counts.copy()
        g = g_from
        while g < g_to:
            c, offset = divmod(g, DRAW_CHUNK)
            n = min(DRAW_CHUNK - offset, g_to - g)
            counts += np.bincount(self.chunk(c)[offset : offset + n], minlength=len(self.p))
            g += n
        return counts


class MixedBlocks(IterableDataset):
    """Endless stream of blocks for one rank; see the module docstring for the layout."""

    def __init__(self, readers: list[BlockReader], draws: SourceDraws, batch_size: int, rank: int,
                 world_size: int, start: int, start_counts: np.ndarray) -> None:
        self.readers, self.draws = readers, draws
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.start, self.start_counts = start, start_counts

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        B, W = self.batch_size, self.world_size
        for g_first, sources, draw in self.draws.walk(self.start, self.start_counts):
            offset = np.arange(g_first, g_first + len(sources)) - self.start
            t, r = offset // (W * B), (offset // B) % W
            mine = np.nonzero((r == self.rank) & (t % num_workers == worker))[0]
            for j in mine:
                s, k = int(sources[j]), int(draw[j])
                reader = self.readers[s]
                epoch, position = divmod(k, reader.num_blocks)
                index = shuffled_index(position, reader.num_blocks, _mix(self.draws.seed, s, epoch))
                yield reader[index]


class MixedLoader:
    """Micro-batches of shape (batch_size, block_size + 1) from weighted sources, forever, resumable.

    ``state_dict()`` after consuming some batches, then ``load_state_dict()`` on a fresh loader, continues
    with the very batches the first loader would have produced next.
    """

    def __init__(self, sources: Sequence[Source], block_size: int, batch_size: int, seed: int = 42,
                 rank: int = 0, world_size: int = 1, num_workers: int = 2) -> None:
        if not sources:
            raise DataError("No training data sources were given")
        self.sources = list(sources)
        self.readers = [BlockReader(s.path, block_size + 1) for s in self.sources]
        self.draws = SourceDraws([s.weight for s in self.sources], seed)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.num_workers = num_workers
        self.block_size = block_size
        self._start, self._start_counts = 0, np.zeros(len(self.sources), dtype=np.int64)
        self._consumed = 0
        self._anchor = (0, self._start_counts)

    def __iter__(self) -> Iterator[torch.Tensor]:
        dataset = MixedBlocks(self.readers, self.draws, self.batch_size, self.rank, self.world_size,
                              self._start, self._start_counts)
        guard = WorkerGuard() if self.num_workers else None
        # Pinned batches let the training loop's host-to-device copy run asynchronously (non_blocking).
        loader = DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                            persistent_workers=False, prefetch_factor=4 if self.num_workers else None,
                            pin_memory=torch.cuda.is_available(), worker_init_fn=guard)
        with held_back():  # the workers start here; a scheduler's SIGTERM must not kill one before the save
            batches = iter(loader)
        try:
            for batch in batches:
                self._consumed += 1
                yield batch
        finally:
            if guard is not None:
                guard.release()

    @property
    def samples_seen(self) -> int:
        """Global samples consumed by all ranks together."""
        return self._start + self._consumed * self.batch_size * self.world_size

    def state_dict(self) -> dict:
        g = self.samples_seen
        anchor_g, anchor_counts = self._anchor
        counts = self.draws.counts_at(anchor_g, anchor_counts, g)
        self._anchor = (g, counts)
        return {
            "samples_seen": g,
            "draws_per_source": counts.tolist(),
            "seed": self.draws.seed,
            "weights": self.draws.p.tolist(),
            "sources": [str(s.path) for s in self.sources],
            "blocks_per_source": [r.num_blocks for r in self.readers],
            "block_size": self.block_size,
        }

    def load_state_dict(self, state: dict) -> None:
        mine = self.state_dict()
        for key in ("seed", "weights", "blocks_per_source", "block_size"):
            if not np.allclose(np.asarray(state[key], dtype=float), np.asarray(mine[key], dtype=float)):
                raise DataError(
                    f"The checkpoint's data loader had {key}={state[key]} but this run has {mine[key]}: "
                    "resuming would not continue the same data order. Restore the original data and settings."
                )
        self._start = int(state["samples_seen"])
        self._start_counts = np.asarray(state["draws_per_source"], dtype=np.int64)
        self._consumed = 0
        self._anchor = (self._start, self._start_counts)


class ValidationBlocks(Dataset):
    """``max_sequences`` blocks spread evenly over the validation folders (every block when None), dealt
    over the ranks. Evenly spread, a subset holds each folder in proportion to its size, not only the
    first folder's first blocks.

    Which blocks form the validation set depends only on the data and ``max_sequences``, never on the
    world size: rank ``r``'s batch ``t`` holds blocks ``(t * world_size + r) * batch_size + i``. Every
    rank runs the same number of batches (a rank with fewer would hang FSDP's collectives); the slots
    past the last block repeat block 0 and are marked invalid, so they carry no weight in the loss.
    Items are ``(block, valid)``.
    """

    def __init__(self, paths: Sequence[Path], block_size: int, batch_size: int, rank: int, world_size: int,
                 max_sequences: Optional[int] = None) -> None:
        self.readers = [BlockReader(p, block_size + 1) for p in paths]
        total = sum(r.num_blocks for r in self.readers)
        self.total = total
        self.num_sequences = total if max_sequences is None else min(total, max_sequences)
        if self.num_sequences < 1:
            raise DataError(f"Validation needs at least one sequence, got max_sequences={max_sequences}")
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.num_batches = math.ceil(self.num_sequences / (batch_size * world_size))
        self.offsets = np.cumsum([0] + [r.num_blocks for r in self.readers])

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def __getitem__(self, j: int) -> tuple[torch.Tensor, bool]:
        t, i = divmod(j, self.batch_size)
        g = (t * self.world_size + self.rank) * self.batch_size + i
        valid = g < self.num_sequences
        g = g * self.total // self.num_sequences if valid else 0  # sequence g of the subset is this block
        s = int(np.searchsorted(self.offsets, g, side="right") - 1)
        return self.readers[s][g - int(self.offsets[s])], valid


def validation_loader(paths: Sequence[Path], block_size: int, batch_size: int, rank: int = 0, world_size: int = 1,
                      max_sequences: Optional[int] = None, num_workers: int = 0) -> DataLoader:
    dataset = ValidationBlocks(paths, block_size, batch_size, rank, world_size, max_sequences)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available())
