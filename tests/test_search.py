"""Search: beam 1 is greedy, a wide beam is exhaustive search, batching changes nothing, scores
are the model's log-probabilities."""

from __future__ import annotations

import itertools

import pytest
import torch

from seq2seq.config import ModelConfig, SearchConfig
from seq2seq.data.batching import collate
from seq2seq.models.seq2seq import Seq2Seq, build_model
from seq2seq.search import beam_search, greedy_search, length_penalty, search
from seq2seq.tokenizer import BOS_ID, EOS_ID, UNK_ID

SRC = [[4, 5, 6, 7, 5], [8, 9], [10, 11, 4, 6]]


# Decoders with each kind of search state: GRU hidden (bahdanau, cho), LSTM hidden + cell,
# Luong's input feed (and Luong without it); the Transformer decoder's key/value cache; and the
# self-attention encoder.
DECODERS = [
    "bahdanau", "cho", "luong-lstm", "sutskever-lstm", "luong-self_attention", "luong-nofeed",
    "transformer", "transformer-self_attention",
]  # fmt: skip


def model_of(spec: str, vocab: int = 12, seed: int = 0) -> Seq2Seq:
    """``decoder[-lstm][-self_attention][-nofeed]``: a tiny untrained model."""
    decoder, *options = spec.split("-")
    cfg = ModelConfig(
        decoder=decoder,
        embed_size=8,
        hidden_size=16,
        dropout=0.0,
        rnn="lstm" if "lstm" in options else "gru",
        encoder="self_attention" if "self_attention" in options else "rnn",
        input_feeding="nofeed" not in options,
        decoder_layers=2 if decoder == "transformer" else 1,  # a cache per layer
    )
    torch.manual_seed(seed)
    return build_model(cfg, vocab, vocab).eval()


def sequence_log_prob(model: Seq2Seq, src: list[int], tokens: list[int]) -> float:
    """log p(tokens + EOS | src) by teacher forcing."""
    batch = collate([src], [tokens])
    with torch.no_grad():
        logits, _ = model(batch.src, batch.src_mask, batch.tgt_in)
    log_probs = torch.log_softmax(logits.float(), dim=-1)[0]  # (T, V)
    return float(log_probs.gather(1, batch.tgt_out[0].unsqueeze(1)).sum())


def test_length_penalty_by_hand() -> None:
    assert length_penalty(7, 1.0, "gnmt") == pytest.approx(2.0)  # (5 + 7) / 6
    assert length_penalty(7, 0.5, "gnmt") == pytest.approx(2.0**0.5)
    assert length_penalty(4, 1.0, "length") == 4.0
    assert length_penalty(4, 1.0, "none") == 1.0
    with pytest.raises(AssertionError):  # the config checks search.length_norm
        length_penalty(4, 1.0, "average")


@pytest.mark.parametrize("decoder", DECODERS)
def test_beam_of_one_equals_greedy_token_for_token(decoder: str) -> None:
    model = model_of(decoder)
    batch = collate(SRC)
    greedy = greedy_search(model, batch.src, batch.src_mask, SearchConfig())
    beam = beam_search(model, batch.src, batch.src_mask, SearchConfig(beam=1))
    for g, (b,) in zip(greedy, beam, strict=True):
        assert g.tokens == b.tokens
        assert g.score == pytest.approx(b.score, abs=1e-5)
        assert torch.allclose(g.weights, b.weights, atol=1e-6)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(("alpha", "norm"), [(0.0, "none"), (1.0, "gnmt"), (1.0, "length")])
def test_wide_beam_finds_the_exhaustive_best(decoder: str, alpha: float, norm: str) -> None:
    vocab, max_len = 6, 3  # outputs: UNK, 4, 5 (PAD and BOS are never produced), then EOS
    for seed in range(3):
        model = model_of(decoder, vocab, seed)
        src = [4, 5, 4]
        candidates = [list(seq) for n in range(max_len + 1) for seq in itertools.product([UNK_ID, 4, 5], repeat=n)]
        scored = [(sequence_log_prob(model, src, c) / length_penalty(len(c) + 1, alpha, norm), c) for c in candidates]
        best_score, best = max(scored)
        batch = collate([src])
        cfg = SearchConfig(beam=64, length_penalty=alpha, length_norm=norm, max_len_a=0, max_len_b=max_len, nbest=5)
        (hyps,) = beam_search(model, batch.src, batch.src_mask, cfg)
        assert hyps[0].tokens == best
        assert hyps[0].norm_score == pytest.approx(best_score, abs=1e-5)
        expected_top5 = [c for _, c in sorted(scored, reverse=True)[:5]]
        assert [h.tokens for h in hyps] == expected_top5


@pytest.mark.parametrize("decoder", DECODERS)
def test_batched_beam_equals_one_sentence_at_a_time(decoder: str) -> None:
    model = model_of(decoder)
    batch = collate(SRC)
    cfg = SearchConfig(beam=4, nbest=3)
    together = beam_search(model, batch.src, batch.src_mask, cfg)
    for src, hyps in zip(SRC, together, strict=True):
        one = collate([src])
        (alone,) = beam_search(model, one.src, one.src_mask, cfg)
        assert [h.tokens for h in alone] == [h.tokens for h in hyps]
        for a, b in zip(alone, hyps, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-5)
            assert torch.allclose(a.weights, b.weights, atol=1e-6)


@pytest.mark.parametrize("decoder", ["luong-lstm", "transformer"])
@pytest.mark.parametrize("beam", [1, 3])
def test_finished_sentences_leave_the_batch(decoder: str, beam: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sentence that is done costs no more steps: the decoder is stepped on fewer rows once
    it finishes, and every sentence's output is the one it gets alone."""
    model = model_of(decoder)
    sources = [[4, 5, 6, 7, 5, 8, 9, 10], [8], [10, 11, 4, 6]]
    cfg = SearchConfig(beam=beam, nbest=beam, max_len_a=1.0, max_len_b=0)  # at most as long as the source
    step = model.decoder.step
    rows: list[int] = []

    def counted(prev: torch.Tensor, state: object, memory: object) -> object:
        """The model's step, on ``rows`` counted, with EOS made unlikely: every output runs to its
        sentence's length limit, so the three end at three different steps."""
        rows.append(prev.size(0))
        logits, new, weights = step(prev, state, memory)  # type: ignore[arg-type]
        logits[:, EOS_ID] -= 30.0
        return logits, new, weights

    monkeypatch.setattr(model.decoder, "step", counted)
    batch = collate(sources)
    together = search(model, batch.src, batch.src_mask, cfg=cfg)
    lengths = [len(hyps[0].tokens) for hyps in together]
    assert lengths[0] > lengths[2] > lengths[1]
    width = [rows[0]] + [r // beam for r in rows[1:]]  # sentences stepped at each step (step 0: one row each)
    assert width == [sum(n >= t for n in lengths) for t in range(len(rows))]  # a sentence ends at its EOS
    for src, hyps in zip(sources, together, strict=True):
        one = collate([src])
        (alone,) = search(model, one.src, one.src_mask, cfg=cfg)
        assert [h.tokens for h in alone] == [h.tokens for h in hyps]
        for a, b in zip(alone, hyps, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-5)
            assert torch.allclose(a.weights, b.weights, atol=1e-6)


def test_a_sentence_with_no_beam_left_leaves_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 4 tokens to write (UNK, 4, 5, EOS) and a forced prefix, a sentence's 5 beams can all
    die before it has 5 finished hypotheses: it leaves the batch then, as it ends when alone."""
    model = model_of("luong-lstm", vocab=6)
    step = model.decoder.step
    rows: list[int] = []
    monkeypatch.setattr(model.decoder, "step", lambda p, s, m: (rows.append(p.size(0)), step(p, s, m))[1])
    cfg = SearchConfig(beam=5, nbest=5, max_len_a=1.0, max_len_b=1)
    sources, prefixes = [[4, 5, 4, 5, 4, 5, 4, 5], [4]], [[], [5, 4]]
    record: list[list] = [[], []]
    batch = collate(sources)
    together = search(model, batch.src, batch.src_mask, cfg=cfg, prefixes=prefixes, record=record)
    assert len(together[1]) < 5 and all(record[1])  # fewer than K finished, and no empty recorded step
    widths = [rows[0]] + [r // 5 for r in rows[1:]]  # sentences stepped at each step
    assert widths == [sum(len(r) > t for r in record) for t in range(len(rows))]  # each while it searches
    alone_record: list[list] = [[]]
    one = collate([sources[1]])
    (alone,) = search(model, one.src, one.src_mask, cfg=cfg, prefixes=[prefixes[1]], record=alone_record)
    assert [h.tokens for h in alone] == [h.tokens for h in together[1]]
    assert alone_record == [record[1]]


@pytest.mark.parametrize("beam", [1, 3])
def test_the_length_limit_wins_over_min_len(beam: int) -> None:
    """``min_len`` larger than a sentence's length limit: the limit forces EOS (no crash, no
    output longer than the limit)."""
    model = model_of("transformer-self_attention", vocab=6, seed=2)
    cfg = SearchConfig(beam=beam, nbest=1, max_len_a=0.0, max_len_b=1, min_len=2)
    batch = collate([[5, 4, 5, 4], [4]])
    for (hyp,) in search(model, batch.src, batch.src_mask, cfg=cfg):
        assert len(hyp.tokens) == 1 and hyp.score > float("-inf")


@pytest.mark.parametrize("decoder", DECODERS)
def test_scores_are_the_models_log_probabilities(decoder: str) -> None:
    model = model_of(decoder)
    batch = collate(SRC)
    for src, hyps in zip(
        SRC, beam_search(model, batch.src, batch.src_mask, SearchConfig(beam=5, nbest=5)), strict=True
    ):
        assert len(hyps) == 5
        assert len({tuple(h.tokens) for h in hyps}) == 5
        assert [h.norm_score for h in hyps] == sorted((h.norm_score for h in hyps), reverse=True)
        for h in hyps:
            assert h.score == pytest.approx(sequence_log_prob(model, src, h.tokens), abs=1e-4)
            assert h.norm_score == pytest.approx(h.score / length_penalty(len(h.tokens) + 1, 1.0, "gnmt"))
            assert h.weights.shape == (len(h.tokens), len(src) + 1)
            assert BOS_ID not in h.tokens and EOS_ID not in h.tokens


def test_length_limits_and_min_length() -> None:
    model = model_of("bahdanau")
    batch = collate(SRC)
    for min_len, max_len in [(0, 2), (4, 4)]:
        cfg = SearchConfig(beam=3, nbest=3, max_len_a=0.0, max_len_b=max_len, min_len=min_len)
        for hyps in search(model, batch.src, batch.src_mask, cfg=cfg):
            assert all(min_len <= len(h.tokens) <= max_len for h in hyps)
        greedy = search(
            model, batch.src, batch.src_mask, cfg=SearchConfig(max_len_a=0.0, max_len_b=max_len, min_len=min_len)
        )
        assert all(min_len <= len(h.tokens) <= max_len for (h,) in greedy)


# ---------------------------------------------------------------- prefix-constrained decoding


@pytest.mark.parametrize("decoder", ["bahdanau", "luong-lstm", "transformer"])
def test_a_prefix_equal_to_greedys_own_start_changes_nothing(decoder: str) -> None:
    model = model_of(decoder)
    batch = collate(SRC)
    cfg = SearchConfig(min_len=3)  # long enough outputs to cut a prefix from
    free = greedy_search(model, batch.src, batch.src_mask, cfg)
    given = greedy_search(model, batch.src, batch.src_mask, cfg, [h.tokens[:2] for h in free])
    for f, g in zip(free, given, strict=True):
        assert g.tokens == f.tokens and g.score == pytest.approx(f.score, abs=1e-5)
        assert torch.allclose(g.weights, f.weights, atol=1e-6)


@pytest.mark.parametrize("decoder", ["bahdanau", "luong-lstm", "transformer"])
def test_every_hypothesis_starts_with_its_prefix_and_a_sentence_without_one_is_free(decoder: str) -> None:
    model = model_of(decoder)
    batch = collate(SRC)
    prefixes = [[7, 7, 9], [], [UNK_ID]]  # unlikely starts, forced
    for cfg in (SearchConfig(), SearchConfig(beam=4, nbest=3)):
        found = search(model, batch.src, batch.src_mask, cfg=cfg, prefixes=prefixes)
        free = search(model, batch.src, batch.src_mask, cfg=cfg)
        for hyps, prefix in zip(found, prefixes, strict=True):
            assert all(h.tokens[: len(prefix)] == prefix for h in hyps)
            assert all(len(h.weights) == len(h.tokens) for h in hyps)
        assert [h.tokens for h in found[1]] == [h.tokens for h in free[1]]  # batch-mates' prefixes change nothing
        for src, hyps in zip(SRC, found, strict=True):  # the score is the model's, prefix included
            assert hyps[0].score == pytest.approx(sequence_log_prob(model, src, hyps[0].tokens), abs=1e-4)


@pytest.mark.parametrize("decoder", ["bahdanau", "transformer"])
def test_beam_with_a_prefix_finds_the_exhaustive_best_continuation(decoder: str) -> None:
    vocab, max_len, prefix = 6, 4, [5, UNK_ID]
    for seed in range(3):
        model = model_of(decoder, vocab, seed)
        src = [4, 5, 4]
        rest = [
            list(seq) for n in range(max_len - len(prefix) + 1) for seq in itertools.product([UNK_ID, 4, 5], repeat=n)
        ]
        scored = sorted(((sequence_log_prob(model, src, prefix + r) / length_penalty(len(prefix + r) + 1, 1.0, "gnmt"),
                          prefix + r) for r in rest), reverse=True)  # fmt: skip
        batch = collate([src])
        cfg = SearchConfig(beam=16, length_penalty=1.0, max_len_a=0, max_len_b=max_len, nbest=3)
        (hyps,) = beam_search(model, batch.src, batch.src_mask, cfg, [prefix])
        assert [h.tokens for h in hyps] == [c for _, c in scored[:3]]
        assert hyps[0].norm_score == pytest.approx(scored[0][0], abs=1e-5)
