"""Encoders: source ids -> one annotation per source token, plus a summary vector C.

- :class:`RNNEncoder`: a (bi)directional GRU or LSTM over packed sequences.
- :class:`SelfAttentionEncoder`: Transformer encoder layers. Self-attention is the lecture
  note's three steps with query, keys and values all taken from the source itself, so any two
  positions are linked in one step; it is written with the same :class:`Attention` module the
  decoders use (scaled dot score -> masked softmax -> weighted sum), once per head.

Both return :class:`~seq2seq.models.state.Encoded`; the decoders cannot tell them apart. The
self-attention encoder is built from the Transformer parts in :mod:`seq2seq.models.transformer`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.constants import PAD_ID
from seq2seq.models.attention import MultiHeadSelfAttention
from seq2seq.models.state import Encoded
from seq2seq.models.transformer import TransformerSettings, TransformerStack, feed_forward, residual


def make_rnn(
    kind: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool
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
        rnn: str,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.rnn = make_rnn(rnn, embed_size, hidden_size, num_layers, dropout, bidirectional=bidirectional)
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, weights: bool = False) -> Encoded:
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

    def __init__(self, settings: TransformerSettings) -> None:
        super().__init__()
        self.self_attention = MultiHeadSelfAttention(settings.size, settings.heads)
        self.feed_forward = feed_forward(settings.size, settings.inner_size)
        self.norm1 = nn.LayerNorm(settings.size)
        self.norm2 = nn.LayerNorm(settings.size)
        self.dropout = nn.Dropout(settings.dropout)
        self.pre_norm = settings.pre_norm

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor, weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hidden (B, S, D)``, ``mask (B, 1, 1, S)`` -> hidden (B, S, D), and with ``weights`` the
        self-attention weights (B, h, S, S) (else None: the fused kernel)."""
        hidden, found = residual(
            hidden, self.norm1, self.dropout, self.pre_norm, lambda x: self.attend(x, mask, weights)
        )
        hidden, _ = residual(hidden, self.norm2, self.dropout, self.pre_norm, lambda x: (self.feed_forward(x), None))
        return hidden, found

    def attend(self, x: torch.Tensor, mask: torch.Tensor, weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        output, found, _ = self.self_attention(x, mask, weights=weights)  # (B, S, D), (B, h, S, S) or None
        return output, found


class SelfAttentionEncoder(TransformerStack):
    """Token embeddings + positions, then ``num_layers`` :class:`SelfAttentionLayer` (and a final
    LayerNorm when pre-norm): a :class:`~seq2seq.models.transformer.TransformerStack`. C is the
    mean of the annotations over real tokens. Every layer's self-attention weights come back in
    :attr:`Encoded.self_weights <seq2seq.models.state.Encoded.self_weights>`."""

    def __init__(self, settings: TransformerSettings, *, vocab_size: int, num_layers: int) -> None:
        super().__init__(
            settings,
            vocab_size=vocab_size,
            num_layers=num_layers,
            make_layer=lambda: SelfAttentionLayer(settings),
            what="source",
        )
        self.output_size = settings.size

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, weights: bool = False) -> Encoded:
        """``src (B, S)``, ``src_mask (B, S)`` -> annotations (B, S, D), summary (B, D), and with
        ``weights`` every layer's self-attention weights (B, h, S, S) (without: none are formed)."""
        hidden = self.embed(src, 0)  # (B, S, D)
        mask = src_mask[:, None, None, :]  # (B, 1, 1, S)
        found = []
        for layer in self.layers:
            hidden, layer_weights = layer(hidden, mask, weights)  # (B, S, D), (B, h, S, S) or None
            if weights:
                found.append(layer_weights)
        values = self.norm(hidden)  # (B, S, D)
        real = src_mask.unsqueeze(-1).to(values.dtype)  # (B, S, 1)
        summary = (values * real).sum(1) / real.sum(1)  # (B, D)
        return Encoded(self.dropout(values), src_mask, summary, found)
