"""Batching: every sentence once, token budgets on the longer side, little target padding; the
epoch's draw over weighted corpora."""

from __future__ import annotations

import numpy as np

from seq2seq.data.batching import batch_ends, bucket_batches, epoch_pairs, length_order


def lengths(seed: int, n: int, high: int = 30) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, high + 1, n)


def as_lists(batches: list[np.ndarray]) -> list[list[int]]:
    return [b.tolist() for b in batches]


def test_every_sentence_lands_in_exactly_one_batch() -> None:
    src, tgt = lengths(0, 500), lengths(1, 500)
    batches = bucket_batches(src, 16, 200, np.random.default_rng(1), tgt)
    assert sorted(i for b in batches for i in b.tolist()) == list(range(500))
    same = bucket_batches(src, 16, 200, np.random.default_rng(1), tgt)
    assert as_lists(batches) == as_lists(same)  # same seed, same batches
    other = bucket_batches(src, 16, 200, np.random.default_rng(2), tgt)
    assert as_lists(batches) != as_lists(other)


def test_token_budget_counts_the_longer_side() -> None:
    src = [2] * 10
    tgt = np.array([10] * 10)
    for batch in bucket_batches(src, 100, 30, np.random.default_rng(0), tgt):
        assert len(batch) * 10 <= 30  # rows x longest target, not x longest source (2)
    assert [len(b) for b in bucket_batches(src, 100, 30)] == [10]  # sources only: 10 x 2 fits


def test_batches_are_greedy_and_within_both_caps() -> None:
    sizes = [3, 3, 4, 9, 9, 10, 10, 10, 30, 31]
    # by hand: 3,3,4 (with the 9 next: 4 x 9 = 36 > 30); 9,9,10 (3 x 10 = 30 fits, a fourth 40);
    # 10,10 (with the 30: 90); then 30 and 31 each alone (2 x 31 = 62)
    assert batch_ends(sizes, 8, 30) == [3, 6, 8, 9, 10]
    assert batch_ends(sizes, 4, 0) == [4, 8, 10]  # sentences only
    assert batch_ends([], 4, 0) == []
    assert bucket_batches([], 4) == []


def test_evaluation_batches_come_sorted_by_length_ties_in_order() -> None:
    src = [5, 1, 3, 1, 5]
    assert as_lists(bucket_batches(src, 2)) == [[1, 3], [2, 0], [4]]


def test_target_lengths_sort_within_a_source_length() -> None:
    src = [5] * 200
    tgt = lengths(0, 200, 40)

    def target_padding(batches: list[np.ndarray]) -> int:
        return sum(int(tgt[b].max()) * len(b) - int(tgt[b].sum()) for b in batches)

    by_both = bucket_batches(src, 20, 0, np.random.default_rng(1), tgt)
    by_source = bucket_batches(src, 20, 0, np.random.default_rng(1))
    assert target_padding(by_both) < target_padding(by_source) / 5


def test_weighted_corpora_get_their_share_of_an_epoch() -> None:
    sizes, weights = [9_000, 1_000], [1.0, 1.0]  # the small corpus is drawn as often as the large one
    pairs = epoch_pairs(sizes, weights, np.random.default_rng(0))
    assert len(pairs) == 10_000
    small = pairs[pairs >= 9_000]
    assert len(small) == 5_000  # half the epoch: each of its pairs five times
    assert np.bincount(small - 9_000).tolist() == [5] * 1_000
    large = pairs[pairs < 9_000]
    assert len(large) == 5_000 and len(np.unique(large)) == 5_000  # sampled without replacement
    uneven = epoch_pairs([600, 300, 100], [3, 1, 1], np.random.default_rng(0))
    shares = np.bincount(np.searchsorted([600, 900], uneven, side="right"), minlength=3)
    assert shares.tolist() == [600, 200, 200]
    assert epoch_pairs([500], [2.0], np.random.default_rng(0)) is None  # one corpus: every pair once
    assert epoch_pairs([500, 20], [], np.random.default_rng(0)) is None  # no weights: by size


def test_a_length_order_made_before_gives_the_same_batches() -> None:
    """The corpus store sorts by length once (by_length.idx); the batches are the ones
    bucket_batches would make sorting itself, epoch after epoch."""
    src, tgt = lengths(3, 2_000).astype(np.uint16), lengths(4, 2_000).astype(np.uint16)
    order = length_order(src, tgt)
    assert order.dtype == np.int32
    keys = list(zip(src[order].tolist(), tgt[order].tolist(), strict=True))
    assert keys == sorted(keys)  # by source, then target length
    for seed in (1, 2):
        made = bucket_batches(src, 32, 400, np.random.default_rng(seed), tgt)
        given = bucket_batches(src, 32, 400, np.random.default_rng(seed), tgt, by_length=order)
        assert as_lists(made) == as_lists(given)
    assert order.tolist() == length_order(src, tgt).tolist()  # the order given is not shuffled in place


def test_a_weight_too_small_for_one_pair_draws_none_of_that_corpus() -> None:
    pairs = epoch_pairs([500, 500], [1000, 1], np.random.default_rng(0))
    assert len(pairs) == 1_000 and (pairs < 500).sum() == 1_000  # 999.0 + the rounding's one: all the first
