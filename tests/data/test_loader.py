import itertools

import numpy as np
import pytest
import torch

from lit_tiny.data.loader import MixedLoader, Source, SourceDraws, ValidationBlocks, shuffled_index, validation_loader
from lit_tiny.data.readers import DataError
from lit_tiny.tokenizer import Tokenizer


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


def test_validation_gives_every_rank_the_same_batches(letters_and_digits):
    paths = [letters_and_digits["letters"], letters_and_digits["digits"]]
    per_rank = [list(validation_loader(paths, block_size=16, batch_size=3, rank=r, world_size=3)) for r in range(3)]
    assert len({len(batches) for batches in per_rank}) == 1 and len(per_rank[0]) > 0
    rows = [tuple(row.tolist()) for batches in per_rank for b in batches for row in b]
    assert len(rows) == len(set(rows))
    capped = validation_loader(paths, block_size=16, batch_size=3, rank=0, world_size=3, max_batches=2)
    assert len(list(capped)) == 2


def test_validation_too_small_for_world_is_a_clear_error(letters_and_digits):
    with pytest.raises(DataError, match="fewer than one batch for each of 1000 ranks"):
        ValidationBlocks([letters_and_digits["digits"]], block_size=16, batch_size=8, rank=0, world_size=1000)


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere does not exist"):
        MixedLoader([Source(tmp_path / "nowhere")], block_size=16, batch_size=2)
