"""The RNN encoder: source ids -> one annotation per source token, plus a summary vector."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.tokenizer import PAD_ID


@dataclass
class Encoded:
    values: torch.Tensor  # (B, S, V) an annotation h_j per source token
    mask: torch.Tensor  # (B, S) True on real tokens
    summary: torch.Tensor  # (B, V) final states: forward at the last token, backward at the first


class RNNEncoder(nn.Module):
    """Embedding + (bi)directional GRU over packed sequences, so padding never enters a state."""

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(
            embed_size,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> Encoded:
        embedded = self.dropout(self.embedding(src))  # (B, S, E)
        lengths = src_mask.sum(dim=1).cpu()  # (B,)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        packed_out, h_n = self.rnn(packed)  # h_n: (layers * dirs, B, H)
        values, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.size(1))  # (B, S, V)
        if self.rnn.bidirectional:
            summary = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # (B, 2H): forward last, backward first
        else:
            summary = h_n[-1]  # (B, H)
        return Encoded(self.dropout(values), src_mask, summary)
