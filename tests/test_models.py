"""Model behaviour: shapes, independence from batch-mates and padding, overfitting a tiny batch."""

from __future__ import annotations

import pytest
import torch

from seq2seq.config import AttentionConfig, ModelConfig
from seq2seq.data.batching import collate
from seq2seq.models.decoder import FixedContextDecoder
from seq2seq.models.seq2seq import Seq2Seq, build_model
from seq2seq.search import greedy_search

VOCAB = 12
VARIANTS = [
    ("fixed_context", "additive"),
    ("attention", "additive"),
    ("attention", "dot"),
    ("attention", "scaled_dot"),
    ("attention", "general"),
    ("attention", "cosine"),
]


def tiny_model(decoder: str, score: str = "additive", dropout: float = 0.0) -> Seq2Seq:
    cfg = ModelConfig(
        decoder=decoder, embed_size=8, hidden_size=16, dropout=dropout, attention=AttentionConfig(score=score)
    )
    return build_model(cfg, VOCAB, VOCAB).eval()


SRC = [[4, 5, 6, 7], [8, 9], [10, 11, 4]]
TGT = [[5, 6], [7, 8, 9], [10]]


@pytest.mark.parametrize(("decoder", "score"), VARIANTS)
def test_shapes(decoder: str, score: str) -> None:
    batch = collate(SRC, TGT)
    logits, weights = tiny_model(decoder, score)(batch.src, batch.src_mask, batch.tgt_in)
    assert logits.shape == (3, 4, VOCAB)  # T = longest target + EOS
    assert weights.shape == (3, 4, 5)  # S = longest source + EOS
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4))
    assert torch.all(weights[1, :, 3:] == 0)  # sentence 1 has 2 words + EOS


@pytest.mark.parametrize(("decoder", "score"), VARIANTS)
def test_output_does_not_depend_on_batch_mates_or_padding(decoder: str, score: str) -> None:
    model = tiny_model(decoder, score)
    alone = collate(SRC[1:2], TGT[1:2])
    together = collate(SRC, TGT)
    with torch.no_grad():
        logits_alone, w_alone = model(alone.src, alone.src_mask, alone.tgt_in)
        logits_all, w_all = model(together.src, together.src_mask, together.tgt_in)
    assert torch.allclose(logits_alone[0], logits_all[1, : logits_alone.size(1)], atol=1e-5)
    assert torch.allclose(w_alone[0], w_all[1, : w_alone.size(1), : w_alone.size(2)], atol=1e-6)


@pytest.mark.parametrize(("decoder", "score"), VARIANTS)
def test_translation_does_not_depend_on_batch_mates(decoder: str, score: str) -> None:
    model = tiny_model(decoder, score)
    alone = collate(SRC[1:2])
    together = collate(SRC)
    h_alone = greedy_search(model, alone.src, alone.src_mask)[0]
    h_all = greedy_search(model, together.src, together.src_mask)[1]
    assert h_alone.tokens == h_all.tokens
    assert torch.allclose(h_alone.weights, h_all.weights, atol=1e-6)


@pytest.mark.parametrize(("decoder", "score"), VARIANTS)
def test_forward_equals_looping_step(decoder: str, score: str) -> None:
    model = tiny_model(decoder, score)
    batch = collate(SRC, TGT)
    with torch.no_grad():
        logits, weights = model(batch.src, batch.src_mask, batch.tgt_in)
        memory = model.encode(batch.src, batch.src_mask)
        state = model.decoder.init_state(memory)
        for t in range(batch.tgt_in.size(1)):
            step_logits, state, step_weights = model.decoder.step(batch.tgt_in[:, t], state, memory)
            assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
            assert torch.allclose(step_weights, weights[:, t], atol=1e-6)


def test_fixed_context_weights_are_uniform_over_the_source() -> None:
    model = tiny_model("fixed_context")
    assert isinstance(model.decoder, FixedContextDecoder)
    batch = collate(SRC, TGT)
    _, weights = model(batch.src, batch.src_mask, batch.tgt_in)
    assert torch.allclose(weights[1, :, :3], torch.full((4, 3), 1 / 3))


@pytest.mark.parametrize(("decoder", "score"), VARIANTS)
def test_every_variant_overfits_a_tiny_batch(decoder: str, score: str) -> None:
    torch.manual_seed(0)
    model = tiny_model(decoder, score).train()
    batch = collate(SRC, TGT)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        logits, _ = model(batch.src, batch.src_mask, batch.tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch.tgt_out.reshape(-1), ignore_index=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    model.eval()
    hyps = greedy_search(model, batch.src, batch.src_mask)
    assert [h.tokens for h in hyps] == TGT


def test_attention_keys_are_projected_once_per_batch() -> None:
    model = tiny_model("attention", "additive")
    calls = []
    model.decoder.attention.score.key_proj.register_forward_hook(lambda *_: calls.append(1))
    batch = collate(SRC, TGT)
    model(batch.src, batch.src_mask, batch.tgt_in)
    assert len(calls) == 1


def test_unknown_decoder_is_rejected() -> None:
    with pytest.raises(ValueError, match="fixed_context"):
        build_model(ModelConfig(decoder="transformer"), VOCAB, VOCAB)
