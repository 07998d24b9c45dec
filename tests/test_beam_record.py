"""The search written down on request (the page's beam tree) and the alternatives at each output
position (the page's "what if"): the record is a tree whose finished leaves are the returned
hypotheses, it changes nothing about the search, and the alternatives are the numbers the search
saw."""

from __future__ import annotations

import pytest
import torch
from test_search import SRC, model_of, sequence_log_prob

from seq2seq.config import SearchConfig
from seq2seq.data.batching import collate
from seq2seq.search import FINISHED, KEPT, PRUNED, Candidate, alternatives, beam_search, greedy_search
from seq2seq.tokenizer import EOS_ID

DECODERS = ["bahdanau", "luong-lstm", "transformer"]


def paths(steps: list[list[Candidate]]) -> list[tuple[list[int], float]]:
    """Every finished hypothesis of a recorded search, as (tokens without EOS, score), by following
    each slot's parent back: slot s at step t extends slot ``parent`` at step t - 1."""
    slots: dict[int, list[int]] = {}  # the tokens of each slot after the previous step
    found = []
    for t, step in enumerate(steps):
        now: dict[int, list[int]] = {}
        for c in step:
            before = [] if t == 0 else slots[c.parent]
            if c.state == FINISHED:
                found.append((before, c.score))
            elif c.state == KEPT:
                now[c.slot] = before + [c.token]
        slots = now
    return found


@pytest.mark.parametrize("decoder", DECODERS)
def test_the_recorded_beam_is_a_tree_whose_finished_leaves_are_the_hypotheses(decoder: str) -> None:
    model = model_of(decoder)
    batch = collate(SRC)
    cfg = SearchConfig(beam=3, nbest=3)
    record: list[list[list[Candidate]]] = [[] for _ in SRC]
    hyps = beam_search(model, batch.src, batch.src_mask, cfg, record=record)
    plain = beam_search(model, batch.src, batch.src_mask, cfg)
    for recorded, without in zip(hyps, plain, strict=True):  # recording changes nothing
        assert [h.tokens for h in recorded] == [h.tokens for h in without]
        assert [h.score for h in recorded] == [h.score for h in without]
    for steps, found in zip(record, hyps, strict=True):
        assert steps, "every sentence searched at least one step"
        assert all(c.parent is None for c in steps[0])
        for t, step in enumerate(steps):
            assert len(step) <= 2 * cfg.beam
            assert [c.score for c in step] == sorted((c.score for c in step), reverse=True)
            kept = [c for c in step if c.state == KEPT]
            assert sorted(c.slot for c in kept) == list(range(len(kept)))
            assert all(c.token != EOS_ID for c in kept) and all(c.token == EOS_ID for c in step if c.state == FINISHED)
            if kept:  # a pruned candidate that is not EOS scored no better than the last one kept
                assert all(
                    c.score <= min(k.score for k in kept) for c in step if c.state == PRUNED and c.token != EOS_ID
                )
            if t > 0:
                alive_before = {c.slot for c in steps[t - 1] if c.state == KEPT}
                assert {c.parent for c in step} <= alive_before
        assert not [c for c in steps[-1] if c.state == KEPT], "the last step keeps nothing: the sentence is done"
        leaves = paths(steps)
        assert len(leaves) >= cfg.beam
        for h in found:  # each returned hypothesis is a leaf of the tree, with its score
            assert any(tokens == h.tokens and score == pytest.approx(h.score, abs=1e-5) for tokens, score in leaves)


@pytest.mark.parametrize("decoder", DECODERS)
def test_greedy_records_one_path_and_its_runner_up(decoder: str) -> None:
    model = model_of(decoder)
    batch = collate(SRC)
    record: list[list[list[Candidate]]] = [[] for _ in SRC]
    hyps = greedy_search(model, batch.src, batch.src_mask, SearchConfig(), record=record)
    for steps, h in zip(record, hyps, strict=True):
        assert len(steps) == len(h.tokens) + 1  # one step per token, and the one that wrote EOS
        for step in steps:
            chosen, *rest = step
            assert chosen.state in (KEPT, FINISHED) and [c.state for c in rest] in ([], [PRUNED])
            assert all(c.score <= chosen.score for c in rest)
        assert paths(steps) == [(h.tokens, pytest.approx(h.score, abs=1e-5))]


@pytest.mark.parametrize("decoder", DECODERS)
def test_alternatives_are_the_numbers_the_search_saw(decoder: str) -> None:
    model = model_of(decoder)
    batch = collate(SRC)
    cfg = SearchConfig()
    greedy = greedy_search(model, batch.src, batch.src_mask, cfg)
    outputs = [h.tokens for h in greedy]
    found = alternatives(model, batch.src, batch.src_mask, outputs, 3, cfg)
    for src, h, per_position in zip(SRC, greedy, found, strict=True):
        assert len(per_position) == len(h.tokens)
        for t, top in enumerate(per_position):
            assert len(top) == 3
            assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
            assert top[0][0] == h.tokens[t]  # greedy wrote the most probable token
        chosen = sum(top[0][1] for top in per_position)  # the score, less EOS's log-probability
        assert chosen + eos_log_prob(model, src, h.tokens) == pytest.approx(h.score, abs=1e-4)
    # the beam's best: its own token is among every position's alternatives when all are asked for
    (best, *_), *_ = beam_search(model, batch.src, batch.src_mask, SearchConfig(beam=4))
    (everything,) = alternatives(model, batch.src[:1], batch.src_mask[:1], [best.tokens], 100, cfg)
    total = sum(dict(top)[token] for top, token in zip(everything, best.tokens, strict=True))
    expected = sequence_log_prob(model, SRC[0], best.tokens) - eos_log_prob(model, SRC[0], best.tokens)
    assert total == pytest.approx(expected, abs=1e-4)


def eos_log_prob(model: torch.nn.Module, src: list[int], tokens: list[int]) -> float:
    """log p(EOS | src, tokens) by teacher forcing."""
    batch = collate([src], [tokens])
    with torch.no_grad():
        logits, _ = model(batch.src, batch.src_mask, batch.tgt_in)
    return float(torch.log_softmax(logits.float(), dim=-1)[0, -1, EOS_ID])


def test_an_alternative_starts_a_new_search_from_it() -> None:
    model = model_of("bahdanau")
    batch = collate(SRC[:1])
    cfg = SearchConfig()
    (h,) = greedy_search(model, batch.src, batch.src_mask, cfg)
    (positions,) = alternatives(model, batch.src, batch.src_mask, [h.tokens], 3, cfg)
    other = positions[0][1][0]  # the runner-up at position 0
    (steered,) = greedy_search(model, batch.src, batch.src_mask, cfg, prefixes=[[other]])
    assert steered.tokens[0] == other != h.tokens[0]
