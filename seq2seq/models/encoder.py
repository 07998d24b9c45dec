"""Encoders: source ids -> one annotation per source token, plus a summary vector C.

- :class:`RNNEncoder`: a (bi)directional GRU or LSTM over packed sequences.
- :class:`SelfAttentionEncoder`: Transformer encoder layers. Self-attention is the lecture
  note's three steps with query, keys and values all taken from the source itself, so any two
  positions are linked in one step; it is written with the same :class:`Attention` module the
  decoders use (scaled dot score -> masked softmax -> weighted sum), once per head.

Both return :class:`Encoded`; the decoders cannot tell them apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.constants import PAD_ID
from seq2seq.errors import ConfigError
from seq2seq.models.attention import MultiHeadSelfAttention


@dataclass
class Encoded:
    values: torch.Tensor  # (B, S, V) an annotation h_j per source token
    mask: torch.Tensor  # (B, S) True on real tokens
    summary: torch.Tensor  # (B, V) the fixed-size summary C of the whole source
    self_weights: list[torch.Tensor] = field(default_factory=list)  # self-attention: (B, h, S, S) per layer


def make_rnn(
    kind: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool = False
) -> nn.RNNBase:
    """``nn.GRU`` or ``nn.LSTM``, batch first, dropout between layers."""
    cls = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
    return cls(
        input_size,
        hidden_size,
        num_layers=num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
    )


class RNNEncoder(nn.Module):
    """Embedding + (bi)directional GRU/LSTM over packed sequences, so padding never enters a state.

    C is the top layer's final states: forward at the last token, backward at the first.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        rnn: str = "gru",
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.rnn = make_rnn(rnn, embed_size, hidden_size, num_layers, dropout, bidirectional=bidirectional)
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> Encoded:
        embedded = self.dropout(self.embedding(src))  # (B, S, E)
        lengths = src_mask.sum(dim=1).cpu()  # (B,)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        packed_out, h_n = self.rnn(packed)  # h_n: (layers * dirs, B, H), or (h_n, c_n) for an LSTM
        if isinstance(h_n, tuple):
            h_n = h_n[0]
        values, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.size(1))  # (B, S, V)
        if self.rnn.bidirectional:
            summary = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # (B, 2H)
        else:
            summary = h_n[-1]  # (B, H)
        return Encoded(self.dropout(values), src_mask, summary)


class SelfAttentionLayer(nn.Module):
    """A Transformer encoder layer: self-attention, then a position-wise feed-forward network,
    each inside a residual connection with a LayerNorm before it (pre-norm, the default) or after
    the sum (post-norm, Vaswani et al.'s original)."""

    def __init__(self, size: int, heads: int, ff_size: int, dropout: float, pre_norm: bool = True) -> None:
        super().__init__()
        self.self_attention = MultiHeadSelfAttention(size, heads)
        self.feed_forward = feed_forward(size, ff_size)
        self.norm1 = nn.LayerNorm(size)
        self.norm2 = nn.LayerNorm(size)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``hidden (B, S, D)``, ``mask (B, 1, 1, S)`` -> hidden (B, S, D), weights (B, h, S, S)."""
        hidden, weights = residual(hidden, self.norm1, self.dropout, self.pre_norm, lambda x: self.attend(x, mask))
        hidden, _ = residual(hidden, self.norm2, self.dropout, self.pre_norm, lambda x: (self.feed_forward(x), None))
        return hidden, weights

    def attend(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output, weights, _ = self.self_attention(x, mask)  # (B, S, D), (B, h, S, S)
        return output, weights


def residual(
    x: torch.Tensor,
    norm: nn.Module,
    dropout: nn.Module,
    pre_norm: bool,
    sublayer: Callable[[torch.Tensor], tuple[torch.Tensor, Any]],
) -> tuple[torch.Tensor, Any]:
    """A sublayer in its residual connection: ``x + sublayer(norm(x))`` (pre-norm) or
    ``norm(x + sublayer(x))`` (post-norm). ``sublayer`` returns its output and something to pass on
    (attention weights)."""
    out, extra = sublayer(norm(x) if pre_norm else x)
    x = x + dropout(out)
    return (x if pre_norm else norm(x)), extra


def feed_forward(size: int, ff_size: int) -> nn.Module:
    """The position-wise feed-forward network ``W2 ReLU(W1 x)``. Dropout acts on its output (in
    :func:`residual`), not on the ``ff_size``-wide inside, as in Vaswani et al. and fairseq's
    default: on a CPU, drawing the random mask of that inside took a fifth of a training step."""
    return nn.Sequential(nn.Linear(size, ff_size), nn.ReLU(), nn.Identity(), nn.Linear(ff_size, size))  # [3]: as saved


def sinusoidal_positions(length: int, size: int) -> torch.Tensor:
    """Vaswani et al.'s fixed positions: sin on even, cos on odd dimensions -> (length, size)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # (L, 1)
    frequency = torch.exp(torch.arange(0, size, 2, dtype=torch.float32) * (-math.log(10000.0) / size))  # (size/2,)
    table = torch.zeros(length, size)
    table[:, 0::2] = torch.sin(position * frequency)  # (L, ceil(size/2))
    table[:, 1::2] = torch.cos(position * frequency[: size // 2])  # (L, floor(size/2))
    return table


class Positions(nn.Module):
    """The position vectors of a Transformer's input, sinusoidal (fixed) or learned; refuses
    sequences longer than ``max_positions``."""

    def __init__(self, size: int, kind: str, max_positions: int, what: str) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.what = what  # "source" or "target", for the error
        if kind == "learned":
            self.weight: nn.Parameter | None = nn.Parameter(torch.randn(max_positions, size))  # as nn.Embedding
        else:
            self.weight = None
            self.register_buffer("table", sinusoidal_positions(max_positions, size), persistent=False)

    def forward(self, start: int, length: int) -> torch.Tensor:
        """Positions ``start ... start + length - 1`` -> (length, D)."""
        end = start + length
        if end > self.max_positions:
            raise ConfigError(
                f"{self.what} of {end} tokens is longer than model.self_attention.max_positions={self.max_positions}"
            )
        return (self.weight if self.weight is not None else self.table)[start:end]  # (T, D)


def transformer_embedding(vocab_size: int, size: int) -> nn.Embedding:
    """Token embeddings at N(0, 1/size): scaled by sqrt(size) when read, they are of unit size,
    like the positions they are added to."""
    embedding = nn.Embedding(vocab_size, size, padding_idx=PAD_ID)
    nn.init.normal_(embedding.weight, std=size**-0.5)
    with torch.no_grad():
        embedding.weight[PAD_ID].zero_()
    return embedding


class SelfAttentionEncoder(nn.Module):
    """Token embeddings + positions (:class:`Positions`), then ``num_layers`` self-attention
    layers (and a final LayerNorm when pre-norm). C is the mean of the annotations over real
    tokens. Every layer's self-attention weights come back in :attr:`Encoded.self_weights`."""

    def __init__(
        self,
        *,
        vocab_size: int,
        size: int,
        num_layers: int = 1,
        heads: int = 4,
        ff_size: int = 0,
        positions: str = "sinusoidal",
        max_positions: int = 1024,
        dropout: float = 0.0,
        norm: str = "pre",
    ) -> None:
        super().__init__()
        self.embedding = transformer_embedding(vocab_size, size)
        self.scale = math.sqrt(size)
        self.positions = Positions(size, positions, max_positions, "source")
        self.layers = nn.ModuleList(
            SelfAttentionLayer(size, heads, ff_size or 4 * size, dropout, norm == "pre") for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(size) if norm == "pre" else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.output_size = size

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> Encoded:
        positions = self.positions(0, src.size(1))  # (S, D)
        hidden = self.dropout(self.embedding(src) * self.scale + positions)  # (B, S, D)
        mask = src_mask[:, None, None, :]  # (B, 1, 1, S)
        weights = []
        for layer in self.layers:
            hidden, layer_weights = layer(hidden, mask)  # (B, S, D), (B, h, S, S)
            weights.append(layer_weights)
        values = self.norm(hidden)  # (B, S, D)
        real = src_mask.unsqueeze(-1).to(values.dtype)  # (B, S, 1)
        summary = (values * real).sum(1) / real.sum(1)  # (B, D)
        return Encoded(self.dropout(values), src_mask, summary, weights)
