import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_tiny.data.loader import BlockReader, MixedLoader, SourceDraws, shuffled_index, validation_loader
from lit_tiny.data.readers import DataError
from lit_tiny.data.sources import Source
from lit_tiny.tokenizer import Tokenizer
from tests.conftest import REPO_ROOT


def take(loader, n):
    return [b.clone() for b in itertools.islice(iter(loader), n)]


def block_source(block: torch.Tensor, tokenizer: Tokenizer) -> str:
    text = tokenizer.decode(block.tolist())
    has_letters, has_digits = any(c.isalpha() for c in text), any(c.isdigit() for c in text)
    assert has_letters != has_digits or not text, f"block mixes sources: {text!r}"
    return "letters" if has_letters else "digits"


def test_shuffled_index_is_a_permutation():
    for n in (1, 2, 7, 64, 1000, 4097):
        perm = [shuffled_index(k, n, key=123) for k in range(n)]
        assert sorted(perm) == list(range(n))
    assert [shuffled_index(k, 1000, 1) for k in range(20)] != [shuffled_index(k, 1000, 2) for k in range(20)]


def test_mixing_ratio_within_two_percent(letters_and_digits):
    tok = Tokenizer(letters_and_digits["tokenizer"])
    sources = [Source(letters_and_digits["letters"], 0.693584), Source(letters_and_digits["digits"], 0.306416)]
    loader = MixedLoader(sources, block_size=8, batch_size=50, num_workers=0)
    blocks = torch.cat(take(loader, 100))
    share = np.mean([block_source(b, tok) == "letters" for b in blocks])
    assert len(blocks) == 5000
    assert abs(share - 0.693584) <= 0.02


def test_blocks_are_block_size_plus_one_and_deterministic(letters_and_digits):
    sources = [Source(letters_and_digits["letters"], 0.7), Source(letters_and_digits["digits"], 0.3)]
    a = take(MixedLoader(sources, block_size=16, batch_size=4, seed=1, num_workers=0), 5)
    b = take(MixedLoader(sources, block_size=16, batch_size=4, seed=1, num_workers=0), 5)
    c = take(MixedLoader(sources, block_size=16, batch_size=4, seed=2, num_workers=0), 5)
    assert a[0].shape == (4, 17) and a[0].dtype == torch.int64
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_exact_resume_with_workers(letters_and_digits):
    sources = [Source(letters_and_digits["letters"], 0.7), Source(letters_and_digits["digits"], 0.3)]
    make = lambda: MixedLoader(sources, block_size=16, batch_size=4, seed=7, num_workers=2)  # noqa: E731
    uninterrupted = take(make(), 14)

    first = make()
    head = take(first, 6)
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    tail = take(resumed, 8)
    assert all(torch.equal(x, y) for x, y in zip(head + tail, uninterrupted))
    assert state["samples_seen"] == 6 * 4


def test_batches_do_not_depend_on_worker_count(letters_and_digits):
    sources = [Source(letters_and_digits["letters"], 0.5), Source(letters_and_digits["digits"], 0.5)]
    zero = take(MixedLoader(sources, block_size=16, batch_size=3, num_workers=0), 7)
    two = take(MixedLoader(sources, block_size=16, batch_size=3, num_workers=2), 7)
    assert all(torch.equal(x, y) for x, y in zip(zero, two))


def test_ranks_receive_disjoint_data_and_resume_state_agrees(letters_and_digits):
    sources = [Source(letters_and_digits["letters"], 0.7), Source(letters_and_digits["digits"], 0.3)]
    loaders = [MixedLoader(sources, block_size=16, batch_size=4, rank=r, world_size=2, num_workers=0) for r in (0, 1)]
    seen = [{tuple(row.tolist()) for batch in take(loader, 10) for row in batch} for loader in loaders]
    assert len(seen[0]) == len(seen[1]) == 40
    assert not seen[0] & seen[1]
    assert loaders[0].state_dict() == loaders[1].state_dict()
    # Both ranks draw from one global stream: a single process with world_size 1 and twice the batch
    # reads exactly the union of their blocks.
    single = MixedLoader(sources, block_size=16, batch_size=8, num_workers=0)
    merged = {tuple(row.tolist()) for batch in take(single, 10) for row in batch}
    assert merged == seen[0] | seen[1]


def test_no_block_repeats_within_an_epoch(letters_and_digits):
    loader = MixedLoader([Source(letters_and_digits["digits"])], block_size=16, batch_size=1, num_workers=0)
    n = loader.readers[0].num_blocks
    blocks = [tuple(b[0].tolist()) for b in take(loader, n)]
    reference = {tuple(loader.readers[0][i].tolist()) for i in range(n)}
    assert set(blocks) == reference


def test_resume_with_changed_weights_is_refused(letters_and_digits):
    sources = [Source(letters_and_digits["letters"], 0.7), Source(letters_and_digits["digits"], 0.3)]
    loader = MixedLoader(sources, block_size=16, batch_size=2, num_workers=0)
    take(loader, 2)
    state = loader.state_dict()
    other = MixedLoader([Source(s.path, 0.5) for s in sources], block_size=16, batch_size=2, num_workers=0)
    with pytest.raises(DataError, match="weights"):
        other.load_state_dict(state)


def test_draw_counts_match_the_stream():
    draws = SourceDraws([0.2, 0.8], seed=3)
    counts = draws.counts_at(0, np.zeros(2, dtype=np.int64), 20000)
    first_chunks = np.concatenate([draws.chunk(c) for c in range(3)])[:20000]
    assert counts.tolist() == np.bincount(first_chunks, minlength=2).tolist()
    with pytest.raises(ValueError, match="weights"):
        SourceDraws([0.0, 0.0], seed=0)


def test_reader_sees_every_block_when_the_environment_names_a_world(letters_and_digits, monkeypatch):
    """torchrun sets WORLD_SIZE, which litdata reads even before torch.distributed starts."""
    alone = BlockReader(letters_and_digits["letters"], 17)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("GLOBAL_RANK", "3")
    in_world = BlockReader(letters_and_digits["letters"], 17)
    assert in_world.num_blocks == alone.num_blocks
    assert torch.equal(in_world[alone.num_blocks - 1], alone[alone.num_blocks - 1])


def validation_rows(paths, batch_size, rank, world_size, max_sequences=None):
    """(number of batches, the valid rows of this rank with their global index)."""
    loader = validation_loader(paths, block_size=16, batch_size=batch_size, rank=rank, world_size=world_size,
                               max_sequences=max_sequences)
    rows, count = {}, 0
    for t, (blocks, valid) in enumerate(loader):
        count += 1
        for i, (row, ok) in enumerate(zip(blocks, valid)):
            if ok:
                rows[(t * world_size + rank) * batch_size + i] = tuple(row.tolist())
    return count, rows


@pytest.mark.parametrize("max_sequences", [None, 50])
def test_validation_set_is_the_same_for_every_world_size(letters_and_digits, max_sequences):
    paths = [letters_and_digits["letters"], letters_and_digits["digits"]]
    _, single = validation_rows(paths, 4, 0, 1, max_sequences)
    expected = sum(BlockReader(p, 17).num_blocks for p in paths) if max_sequences is None else max_sequences
    assert sorted(single) == list(range(expected))
    for world_size, batch_size in ((2, 4), (3, 5), (7, 2)):
        counts, union = set(), {}
        for rank in range(world_size):
            count, rows = validation_rows(paths, batch_size, rank, world_size, max_sequences)
            counts.add(count)
            assert not set(rows) & set(union)
            union.update(rows)
        assert len(counts) == 1 and counts.pop() > 0, "every rank must run the same number of batches"
        assert union == single


def test_a_validation_subset_spreads_over_every_folder(letters_and_digits):
    paths = [letters_and_digits["letters"], letters_and_digits["digits"]]
    sizes = [BlockReader(p, 17).num_blocks for p in paths]
    everything = list(validation_rows(paths, 4, 0, 1)[1].values())
    _, subset = validation_rows(paths, 4, 0, 1, max_sequences=20)
    picked = [everything.index(row) for row in subset.values()]
    assert picked == sorted(picked) and len(set(picked)) == 20
    from_first = sum(i < sizes[0] for i in picked)
    assert abs(from_first - 20 * sizes[0] / sum(sizes)) <= 1  # each folder by its size, not the first 20 blocks


def test_validation_on_more_ranks_than_sequences_pads_every_rank(letters_and_digits):
    paths = [letters_and_digits["digits"]]
    counts = [validation_rows(paths, 2, rank, 9, max_sequences=5) for rank in range(9)]
    assert {c for c, _ in counts} == {1}
    assert sorted(g for _, rows in counts for g in rows) == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ under torch.distributed (torchrun, gloo)

RANKS_SCRIPT = Path(__file__).with_name("loader_ranks.py")


def run_ranks(world_size: int, out: Path, sources, *args: str) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world_size),
               str(RANKS_SCRIPT), "--sources", *map(str, sources), "--weights", "0.7", "0.3", "--block_size", "16",
               "--global_batch", "24", "--out", str(out), *args]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(out.read_text())


def single_process_steps(sources, micro_batch: int, steps: int, state: dict | None = None, save_after=None):
    loader = MixedLoader([Source(p, w) for p, w in zip(sources, (0.7, 0.3))], block_size=16, batch_size=micro_batch,
                         seed=5, num_workers=0)
    if state is not None:
        loader.load_state_dict(state)
    batches, out, saved = iter(loader), [], None
    for step in range(steps):
        out.append(sorted(row for _ in range(24 // micro_batch) for row in next(batches).tolist()))
        if save_after == step + 1:
            saved = loader.state_dict()
    return out, saved


def test_every_rank_reads_every_block_in_a_world_size_independent_order(letters_and_digits, tmp_path):
    """Under 2 and 4 processes: each source's blocks are all read, once per epoch, in the single-process order;
    each optimizer step holds the same samples for world sizes 1, 2 and 4 (0 and 2 workers); a loader state
    saved by 2 processes continues the same order on 1 and on 4."""
    sources = [letters_and_digits["letters"], letters_and_digits["digits"]]
    readers = [BlockReader(p, 17) for p in sources]
    everything = [[readers[s][i].tolist() for i in range(r.num_blocks)] for s, r in enumerate(readers)]
    reference_epochs = []
    for path in sources:
        loader = MixedLoader([Source(path)], block_size=16, batch_size=8, seed=5, num_workers=0)
        rows = [row for batch in take(loader, -(-len(everything[len(reference_epochs)]) // 8)) for row in batch.tolist()]
        reference_epochs.append(rows[: len(everything[len(reference_epochs)])])
    reference_steps, _ = single_process_steps(sources, micro_batch=8, steps=12)

    two = run_ranks(2, tmp_path / "two.json", sources, "--micro_batch", "4", "--steps", "12", "--save_after", "5")
    (tmp_path / "state.json").write_text(json.dumps(two["state"]))
    four = run_ranks(4, tmp_path / "four.json", sources, "--micro_batch", "3", "--steps", "7", "--num_workers", "2",
                     "--load_state", str(tmp_path / "state.json"))
    for result in (two, four):
        assert result["env_world_size"] == str(result["world_size"])  # litdata's trigger is there
        assert result["num_blocks"] == [r.num_blocks for r in readers]
        for epoch, blocks, reference in zip(result["epochs"], everything, reference_epochs):
            assert sorted(epoch) == sorted(blocks) and len({tuple(b) for b in epoch}) == len(blocks)
            assert epoch == reference
    assert two["steps"] == reference_steps
    assert four["steps"] == reference_steps[5:]
    one_after_two, _ = single_process_steps(sources, micro_batch=6, steps=7, state=two["state"])
    assert one_after_two == reference_steps[5:]


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere does not exist"):
        MixedLoader([Source(tmp_path / "nowhere")], block_size=16, batch_size=2)
