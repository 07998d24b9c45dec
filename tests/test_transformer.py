"""The Transformer decoder: multi-head attention against PyTorch's own, the causal mask, the key/value
cache, the attention maps the translator draws, and the warm-up learning-rate schedules by hand.
(Shapes, padding, batch-mates, cached stepping, overfitting and search: the shared model and search
tests, which run every decoder.)"""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch.nn import functional as F

from seq2seq.config import ModelConfig, SelfAttentionConfig, TrainerConfig, check_model, check_trainer
from seq2seq.data.batching import collate
from seq2seq.errors import ConfigError
from seq2seq.models.attention import MultiHeadCrossAttention, MultiHeadSelfAttention
from seq2seq.models.seq2seq import Seq2Seq, build_model
from seq2seq.schedules import warmup_lr

VOCAB = 12
SRC = [[4, 5, 6, 7], [8, 9], [10, 11, 4]]
TGT = [[5, 6, 7, 8], [7, 8, 9], [10]]


def transformer(seed: int = 0, **other: object) -> Seq2Seq:
    settings: dict = {"encoder": "self_attention", "hidden_size": 16, "decoder_layers": 3, "encoder_layers": 2}
    cfg = ModelConfig(decoder="transformer", dropout=0.0, **{**settings, **other})  # type: ignore[arg-type]
    check_model(cfg)
    torch.manual_seed(seed)
    return build_model(cfg, VOCAB, VOCAB).eval()


def test_masked_self_attention_equals_torch_with_a_causal_mask() -> None:
    torch.manual_seed(0)
    layer = MultiHeadSelfAttention(size=16, heads=4)
    x = torch.randn(2, 5, 16)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()[None, None]  # (1, 1, T, T)
    out, weights, (keys, values) = layer(x, causal)
    q, k, v = (t.view(2, 5, 4, 4).transpose(1, 2) for t in layer.qkv(x).chunk(3, dim=-1))  # (B, h, T, d)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, d)
    assert torch.allclose(out, layer.out(expected.transpose(1, 2).reshape(2, 5, 16)), atol=1e-6)
    assert torch.allclose(keys, k) and torch.allclose(values, v)  # what the decoder caches
    assert torch.all(weights.triu(diagonal=1) == 0)  # the future gets exactly 0
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 5))


def test_cross_attention_equals_torch_with_a_padding_mask() -> None:
    torch.manual_seed(0)
    layer = MultiHeadCrossAttention(size=8, heads=2, memory_size=6, normalizer="softmax")
    x, memory = torch.randn(2, 3, 8), torch.randn(2, 4, 6)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])[:, None, None, :]  # (B, 1, 1, S)
    keys, values = layer.project_keys(memory)  # (B, h, S, d) each: once per batch
    out, weights = layer(x, keys, values, mask)
    q = layer.query(x).view(2, 3, 2, 4).transpose(1, 2)
    k, v = (t.view(2, 4, 2, 4).transpose(1, 2) for t in layer.key_value(memory).chunk(2, dim=-1))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(out, layer.out(expected.transpose(1, 2).reshape(2, 3, 8)), atol=1e-6)
    assert torch.all(weights[1, :, :, 2:] == 0)


def test_without_weights_the_fused_kernel_gives_the_same_outputs() -> None:
    torch.manual_seed(0)
    self_layer = MultiHeadSelfAttention(size=16, heads=4)
    cross_layer = MultiHeadCrossAttention(size=16, heads=4, memory_size=16, normalizer="softmax")
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()[None, None]
    mask = torch.tensor([[True] * 4, [True, True, False, False]])[:, None, None, :]
    formed, weights, _ = self_layer(x, causal)
    fused, none, _ = self_layer(x, causal, weights=False)
    assert weights is not None and none is None
    torch.testing.assert_close(fused, formed, atol=1e-6, rtol=1e-5)
    keys, values = cross_layer.project_keys(memory)
    formed, weights = cross_layer(x, keys, values, mask)
    fused, none = cross_layer(x, keys, values, mask, weights=False)
    assert none is None
    torch.testing.assert_close(fused, formed, atol=1e-6, rtol=1e-5)
    # a whole model: training and decoding form only the alignment layer's cross weights, and its
    # outputs are those of the model that forms every map
    model = transformer()
    batch = collate(SRC, TGT)
    with torch.no_grad():
        memory_ = model.encode(batch.src, batch.src_mask)
        features, self_w, cross_w, _ = model.decoder.run(batch.tgt_in, memory_, None)
        every, self_all, cross_all, _ = model.decoder.run(batch.tgt_in, memory_, None, weights=True)
    assert self_w == [None] * 3 and [w is None for w in cross_w] == [True, False, True]  # layer 2 of 3 aligns
    assert all(w is not None for w in [*self_all, *cross_all])
    torch.testing.assert_close(features, every, atol=1e-5, rtol=1e-5)
    assert model.encoder(batch.src, batch.src_mask).self_weights == []  # the encoder forms none unless asked
    assert len(model.encoder(batch.src, batch.src_mask, weights=True).self_weights) == 2


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_a_position_never_sees_the_future(norm: str) -> None:
    model = transformer(self_attention=SelfAttentionConfig(norm=norm, positions="learned"))
    batch = collate(SRC, TGT)
    changed = batch.tgt_in.clone()
    changed[:, 3:] = torch.randint(4, VOCAB, changed[:, 3:].shape)  # other words from position 3 on
    with torch.no_grad():
        logits, weights = model(batch.src, batch.src_mask, batch.tgt_in)
        logits2, weights2 = model(batch.src, batch.src_mask, changed)
    assert torch.allclose(logits[:, :3], logits2[:, :3], atol=1e-6)  # earlier outputs unchanged
    assert torch.allclose(weights[:, :3], weights2[:, :3], atol=1e-6)
    assert not torch.allclose(logits[:, 3:], logits2[:, 3:])  # and the later ones did read their inputs


def test_the_cache_grows_one_position_per_step_and_the_step_sees_only_the_prefix() -> None:
    model = transformer()
    batch = collate(SRC, TGT)
    with torch.no_grad():
        memory = model.encode(batch.src, batch.src_mask)
        state = model.decoder.init_state(memory)
        assert state.length == 0
        for t in range(3):
            _, state, _ = model.decoder.step(batch.tgt_in[:, t], state, memory)
        assert state.length == 3 and len(state.keys) == 3  # one cache per layer
        assert state.keys[0].shape == (3, 4, 3, 4)  # (B, h, t, d)
        assert len(memory.cross) == 3  # every layer's cross-attention keys and values, projected once
        assert all(k.shape == v.shape == (3, 4, 5, 4) for k, v in memory.cross)  # (B, h, S, d)
        rows = torch.tensor([2, 2, 0])  # beam search repeats and reorders the memory's rows
        assert all(torch.equal(k, memory.cross[i][0][rows]) for i, (k, _) in enumerate(memory.select(rows).cross))


def test_attention_maps_are_the_weights_search_reports() -> None:
    model = transformer()
    batch = collate(SRC, TGT)
    maps = model.attention_maps(batch.src, batch.src_mask, batch.tgt_in)
    assert [m.shape for m in maps.encoder] == [(3, 4, 5, 5)] * 2
    assert [m.shape for m in maps.decoder] == [(3, 4, 5, 5)] * 3
    assert [m.shape for m in maps.cross] == [(3, 4, 5, 5)] * 3
    assert all(torch.all(m.triu(diagonal=1) == 0) for m in maps.decoder)
    _, weights = model(batch.src, batch.src_mask, batch.tgt_in)
    assert model.decoder.alignment_layer == 1  # the last but one of 3
    assert torch.allclose(weights, maps.cross[1].mean(dim=1))  # heads averaged


def test_alignment_layer_counts_from_one_and_is_checked() -> None:
    assert transformer(alignment_layer=3).decoder.alignment_layer == 2
    assert transformer(decoder_layers=1).decoder.alignment_layer == 0
    with pytest.raises(ConfigError, match="model.alignment_layer=4: the decoder has 3 layers"):
        transformer(alignment_layer=4)
    with pytest.raises(ConfigError, match="model.self_attention.norm='middle'"):
        transformer(self_attention=SelfAttentionConfig(norm="middle"))
    with pytest.raises(ConfigError, match="not divisible"):
        transformer(hidden_size=18)


def test_rnn_maps_have_one_cross_attention_layer_and_no_self_attention() -> None:
    cfg = ModelConfig(decoder="luong", hidden_size=16, embed_size=8, dropout=0.0)
    model = build_model(cfg, VOCAB, VOCAB).eval()
    batch = collate(SRC, TGT)
    maps = model.attention_maps(batch.src, batch.src_mask, batch.tgt_in)
    assert maps.encoder == [] and maps.decoder == []
    assert torch.allclose(maps.cross[0][:, 0], model(batch.src, batch.src_mask, batch.tgt_in)[1])


def test_tied_transformer_embeddings_share_one_matrix_and_keep_their_scale_under_param_init() -> None:
    model = transformer(tie_embeddings=True, param_init=0.1)
    assert model.decoder.generator.weight is model.decoder.embedding.weight
    assert model.decoder.embedding.weight[4:].abs().max() > 0.1 * 1.5  # N(0, 1/16), not U(-0.1, 0.1)
    assert torch.all(model.decoder.embedding.weight[0] == 0)


def test_inverse_sqrt_schedule_by_hand() -> None:
    assert warmup_lr("inverse_sqrt", 1, 1e-3, 100, 512) == pytest.approx(1e-5)
    assert warmup_lr("inverse_sqrt", 50, 1e-3, 100, 512) == pytest.approx(5e-4)
    assert warmup_lr("inverse_sqrt", 100, 1e-3, 100, 512) == pytest.approx(1e-3)  # the peak
    assert warmup_lr("inverse_sqrt", 400, 1e-3, 100, 512) == pytest.approx(5e-4)  # sqrt(100 / 400) = 1/2


def test_noam_schedule_by_hand() -> None:
    # Vaswani et al.: d^-0.5 * min(step^-0.5, step * warmup^-1.5), times the factor
    assert warmup_lr("noam", 1, 2.0, 4000, 512) == pytest.approx(2.0 / math.sqrt(512) * 4000**-1.5)
    assert warmup_lr("noam", 4000, 1.0, 4000, 512) == pytest.approx(1 / math.sqrt(512 * 4000))  # the peak, 7.0e-4
    assert warmup_lr("noam", 16000, 1.0, 4000, 512) == pytest.approx(0.5 / math.sqrt(512 * 4000))
    with pytest.raises(ValueError, match="inverse_sqrt, noam"):
        warmup_lr("plateau", 1, 1.0, 1, 1)


def test_warmup_settings_are_checked() -> None:
    trainer = OmegaConf.structured(TrainerConfig)
    trainer.lr_schedule, trainer.lr = "noam", 2.0  # a factor, above 1, is fine for noam
    check_trainer(trainer)
    trainer.lr_schedule = "inverse_sqrt"
    with pytest.raises(ConfigError, match=r"trainer.lr=2.0 must lie in \(0, 1\]"):
        check_trainer(trainer)
    trainer.lr, trainer.warmup_steps = 1e-3, 0
    with pytest.raises(ConfigError, match="trainer.warmup_steps=0"):
        check_trainer(trainer)
    trainer.warmup_steps, trainer.adam_beta2 = 10, 1.0
    with pytest.raises(ConfigError, match="trainer.adam_beta2=1.0"):
        check_trainer(trainer)
