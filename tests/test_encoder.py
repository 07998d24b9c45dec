"""The encoders: self-attention against PyTorch's own scaled dot-product attention, positions
by hand, and the RNN encoder's packed sequences."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from seq2seq.models.attention import MultiHeadSelfAttention
from seq2seq.models.encoder import RNNEncoder, SelfAttentionEncoder
from seq2seq.models.transformer import TransformerSettings, sinusoidal_positions

LENGTHS = [5, 3, 1]


def self_attention_encoder(positions: str = "sinusoidal") -> SelfAttentionEncoder:
    """A tiny 2-layer, 2-head encoder, 8 wide."""
    settings = TransformerSettings(
        size=8, heads=2, ff_size=0, positions=positions, max_positions=16, dropout=0.0, norm="pre", normalizer="softmax"
    )
    return SelfAttentionEncoder(settings, vocab_size=10, num_layers=2).eval()


def length_mask(lengths: list[int], size: int) -> torch.Tensor:
    return torch.arange(size).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # (B, S)


def test_self_attention_equals_torch_scaled_dot_product_attention() -> None:
    torch.manual_seed(0)
    layer = MultiHeadSelfAttention(size=16, heads=4)
    x = torch.randn(3, 5, 16)
    mask = length_mask(LENGTHS, 5)
    out, weights, _ = layer(x, mask[:, None, None, :])

    q, k, v = (t.view(3, 5, 4, 4).transpose(1, 2) for t in layer.qkv(x).chunk(3, dim=-1))  # (B, h, S, d)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, h, S, d)
    expected = layer.out(expected.transpose(1, 2).reshape(3, 5, 16))
    assert torch.allclose(out, expected, atol=1e-6)
    assert weights.shape == (3, 4, 5, 5)
    assert torch.all(weights[1, :, :, 3:] == 0) and torch.all(weights[2, :, :, 1:] == 0)  # padding: exactly 0
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 5))


def test_self_attention_gradcheck() -> None:
    torch.manual_seed(0)
    layer = MultiHeadSelfAttention(size=4, heads=2).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    mask = length_mask([3, 2], 3)
    assert torch.autograd.gradcheck(lambda t: layer(t, mask[:, None, None, :])[0], (x,))


def test_sinusoidal_positions_by_hand() -> None:
    table = sinusoidal_positions(3, 4)  # frequencies 1 and 1/100 for the dimension pairs
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    expected = torch.tensor([math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)])
    assert torch.allclose(table[2], expected, atol=1e-6)


def test_self_attention_encoder_ignores_padding_and_averages_real_tokens() -> None:
    torch.manual_seed(0)
    encoder = self_attention_encoder()
    src = torch.tensor([[4, 5, 6], [7, 8, 0]])
    mask = src != 0
    encoded = encoder(src, mask)
    alone = encoder(src[1:, :2], mask[1:, :2])
    assert torch.allclose(encoded.values[1, :2], alone.values[0], atol=1e-5)
    assert torch.allclose(encoded.summary[1], encoded.values[1, :2].mean(0), atol=1e-6)


def test_rnn_encoder_summary_is_forward_last_and_backward_first() -> None:
    torch.manual_seed(0)
    for rnn in ("gru", "lstm"):
        encoder = RNNEncoder(
            vocab_size=10, embed_size=4, hidden_size=3, rnn=rnn, num_layers=1, bidirectional=True, dropout=0.0
        ).eval()
        src = torch.tensor([[4, 5, 6], [7, 8, 0]])
        encoded = encoder(src, src != 0)
        assert torch.equal(encoded.values[1, 2], torch.zeros(6))  # packed: padding never enters a state
        assert torch.allclose(encoded.summary[1, :3], encoded.values[1, 1, :3])  # forward at the last real token
        assert torch.allclose(encoded.summary[1, 3:], encoded.values[1, 0, 3:])  # backward at the first


def test_self_attention_encoder_returns_every_layers_weights_when_asked_and_keeps_its_parameter_names() -> None:
    encoder = self_attention_encoder(positions="learned")
    src = torch.tensor([[4, 5, 6], [7, 8, 0]])
    encoded = encoder(src, src != 0, weights=True)  # (without: none are formed, the fused kernel runs)
    assert [w.shape for w in encoded.self_weights] == [(2, 2, 3, 3)] * 2
    assert torch.all(encoded.self_weights[1][1, :, :, 2] == 0)  # nobody looks at padding
    fused = encoder(src, src != 0)
    assert fused.self_weights == []
    torch.testing.assert_close(fused.values, encoded.values, atol=1e-5, rtol=1e-5)  # the same annotations
    names = set(encoder.state_dict())  # checkpoints written before the Transformer decoder still load
    assert {"embedding.weight", "positions.weight", "layers.0.self_attention.qkv.weight", "norm.weight"} <= names
