"""Batching: every sentence once, token budgets on the longer side, little target padding."""

from __future__ import annotations

import random

from seq2seq.data.batching import bucket_batches


def test_every_sentence_lands_in_exactly_one_batch() -> None:
    rng = random.Random(0)
    src = [rng.randint(1, 30) for _ in range(500)]
    tgt = [rng.randint(1, 30) for _ in range(500)]
    batches = bucket_batches(src, 16, 200, random.Random(1), tgt)
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert batches == bucket_batches(src, 16, 200, random.Random(1), tgt)  # same seed, same batches


def test_token_budget_counts_the_longer_side() -> None:
    src = [2] * 10
    tgt = [10] * 10
    for batch in bucket_batches(src, 100, 30, random.Random(0), tgt):
        assert len(batch) * 10 <= 30  # rows x longest target, not x longest source (2)
    assert [len(b) for b in bucket_batches(src, 100, 30)] == [10]  # sources only: 10 x 2 fits


def test_target_lengths_sort_within_a_source_length() -> None:
    rng = random.Random(0)
    src = [5] * 200
    tgt = [rng.randint(1, 40) for _ in range(200)]

    def target_padding(batches: list[list[int]]) -> int:
        return sum(max(tgt[i] for i in b) * len(b) - sum(tgt[i] for i in b) for b in batches)

    by_both = bucket_batches(src, 20, 0, random.Random(1), tgt)
    by_source = bucket_batches(src, 20, 0, random.Random(1))
    assert target_padding(by_both) < target_padding(by_source) / 5
