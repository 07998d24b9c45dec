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
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.constants import PAD_ID
from seq2seq.errors import ConfigError
from seq2seq.models.attention import Attention, ScaledDotScore


@dataclass
class Encoded:
    values: torch.Tensor  # (B, S, V) an annotation h_j per source token
    mask: torch.Tensor  # (B, S) True on real tokens
    summary: torch.Tensor  # (B, V) the fixed-size summary C of the whole source


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


class MultiHeadSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention over one sequence.

    Each head projects the sequence to its own queries, keys and values and runs the shared
    :class:`Attention` (score -> masked softmax -> weighted sum); heads are folded into the batch.
    """

    def __init__(self, size: int, heads: int) -> None:
        super().__init__()
        if size % heads:
            raise ValueError(f"model.hidden_size={size} is not divisible by model.self_attention.heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(size, 3 * size)
        self.out = nn.Linear(size, size)
        self.attention = Attention(ScaledDotScore())

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        return x.view(b, s, self.heads, d // self.heads).transpose(1, 2).reshape(b * self.heads, s, -1)  # (B*h, S, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, S, D)``, ``mask (B, S)`` -> output (B, S, D), weights (B, h, S, S)."""
        b, s, d = x.shape
        query, keys, values = (self.split(t) for t in self.qkv(x).chunk(3, dim=-1))  # each (B*h, S, d)
        head_mask = mask.repeat_interleave(self.heads, dim=0).unsqueeze(1)  # (B*h, 1, S)
        context, weights = self.attention(query, keys, values, head_mask)  # (B*h, S, d), (B*h, S, S)
        context = context.view(b, self.heads, s, -1).transpose(1, 2).reshape(b, s, d)  # (B, S, D)
        return self.out(context), weights.view(b, self.heads, s, s)  # (B, S, D), (B, h, S, S)


class SelfAttentionLayer(nn.Module):
    """A pre-norm Transformer encoder layer: self-attention, then a position-wise feed-forward."""

    def __init__(self, size: int, heads: int, ff_size: int, dropout: float) -> None:
        super().__init__()
        self.self_attention = MultiHeadSelfAttention(size, heads)
        self.feed_forward = nn.Sequential(
            nn.Linear(size, ff_size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_size, size)
        )
        self.norm1 = nn.LayerNorm(size)
        self.norm2 = nn.LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attended, _ = self.self_attention(self.norm1(hidden), mask)  # (B, S, D)
        hidden = hidden + self.dropout(attended)
        return hidden + self.dropout(self.feed_forward(self.norm2(hidden)))  # (B, S, D)


def sinusoidal_positions(length: int, size: int) -> torch.Tensor:
    """Vaswani et al.'s fixed positions: sin on even, cos on odd dimensions -> (length, size)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # (L, 1)
    frequency = torch.exp(torch.arange(0, size, 2, dtype=torch.float32) * (-math.log(10000.0) / size))  # (size/2,)
    table = torch.zeros(length, size)
    table[:, 0::2] = torch.sin(position * frequency)  # (L, ceil(size/2))
    table[:, 1::2] = torch.cos(position * frequency[: size // 2])  # (L, floor(size/2))
    return table


class SelfAttentionEncoder(nn.Module):
    """Token embeddings (``size`` wide, scaled by sqrt(size)) + positions, then ``num_layers``
    self-attention layers and a final LayerNorm. C is the mean of the annotations over real tokens."""

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
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, size, padding_idx=PAD_ID)
        nn.init.normal_(self.embedding.weight, std=size**-0.5)  # x sqrt(size) below: unit scale, like the positions
        with torch.no_grad():
            self.embedding.weight[PAD_ID].zero_()
        self.scale = math.sqrt(size)
        self.max_positions = max_positions
        if positions == "learned":
            self.positions: nn.Module | None = nn.Embedding(max_positions, size)
        else:
            self.positions = None
            self.register_buffer("position_table", sinusoidal_positions(max_positions, size), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            SelfAttentionLayer(size, heads, ff_size or 4 * size, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(size)
        self.output_size = size

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> Encoded:
        length = src.size(1)
        if length > self.max_positions:
            raise ConfigError(
                f"source of {length} tokens is longer than model.self_attention.max_positions={self.max_positions}"
            )
        if self.positions is not None:
            positions = self.positions(torch.arange(length, device=src.device))  # (S, D)
        else:
            positions = self.position_table[:length]  # (S, D)
        hidden = self.dropout(self.embedding(src) * self.scale + positions)  # (B, S, D)
        for layer in self.layers:
            hidden = layer(hidden, src_mask)  # (B, S, D)
        values = self.norm(hidden)  # (B, S, D)
        real = src_mask.unsqueeze(-1).to(values.dtype)  # (B, S, 1)
        summary = (values * real).sum(1) / real.sum(1)  # (B, D)
        return Encoded(self.dropout(values), src_mask, summary)
