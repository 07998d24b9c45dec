"""Two decoders, one interface.

- :class:`FixedContextDecoder` (Cho et al. 2014): the whole source squeezed into one vector C,
  the same C fed at every step. The lecture note's "distracted" model: for every target word
  all source words count the same, so its weights are uniform over the source.
- :class:`AttentionDecoder` (Bahdanau et al. 2015): a fresh context c_i for every target word,
  by score -> masked softmax -> weighted sum over the encoder annotations.

Both have ``step()`` (one token, used by search) and ``forward()`` (teacher forcing over a whole
target) and both return attention weights ``(B, T, S)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seq2seq.models.attention import Attention
from seq2seq.models.encoder import Encoded
from seq2seq.tokenizer import PAD_ID


@dataclass
class Memory:
    """What the decoder reads from the source, computed once per batch."""

    values: torch.Tensor  # (B, S, V) encoder annotations
    keys: torch.Tensor  # (B, S, K) attention keys (values projected once); values if unused
    mask: torch.Tensor  # (B, 1, S) True on real source tokens
    context: torch.Tensor  # (B, V) the fixed summary C

    def select(self, index: torch.Tensor) -> Memory:
        """Rows ``index`` (e.g. to repeat each sentence once per beam)."""
        return Memory(*(t.index_select(0, index) for t in (self.values, self.keys, self.mask, self.context)))


@dataclass
class DecoderState:
    hidden: torch.Tensor  # (layers, B, H), the only layer-first tensor

    def select(self, index: torch.Tensor) -> DecoderState:
        return DecoderState(self.hidden.index_select(1, index))


class RNNDecoder(nn.Module):
    """Shared parts: target embedding, the bridge from C to the first state, the readout.

    The readout ``tanh(W [s_i; c_i; y_{i-1}])`` feeds the output projection (deep output).
    Subclasses define :meth:`advance`, one RNN step from an embedded previous token.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        context_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.bridge = nn.Linear(context_size, hidden_size * num_layers)
        self.rnn = nn.GRU(
            embed_size + context_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.readout = nn.Linear(hidden_size + context_size + embed_size, embed_size)
        self.generator = nn.Linear(embed_size, vocab_size)

    def memory(self, encoded: Encoded) -> Memory:
        mask = encoded.mask.unsqueeze(1)  # (B, 1, S)
        return Memory(encoded.values, encoded.values, mask, encoded.summary)

    def init_state(self, memory: Memory) -> DecoderState:
        hidden = torch.tanh(self.bridge(memory.context))  # (B, L * H)
        hidden = hidden.view(hidden.size(0), self.num_layers, -1).transpose(0, 1).contiguous()  # (L, B, H)
        return DecoderState(hidden)

    def logits(self, rnn_out: torch.Tensor, context: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        features = torch.tanh(self.readout(torch.cat([rnn_out, context, embedded], dim=-1)))  # (B, T, E)
        return self.generator(self.dropout(features))  # (B, T, vocab)

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState, torch.Tensor]:
        """One step: ``embedded (B, 1, E)`` -> rnn_out (B, 1, H), context (B, 1, V), state, weights (B, 1, S)."""
        raise NotImplementedError

    def step(
        self, prev: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """Decode one token. ``prev (B,)`` -> logits (B, vocab), new state, weights (B, S)."""
        embedded = self.dropout(self.embedding(prev.unsqueeze(1)))  # (B, 1, E)
        rnn_out, context, state, weights = self.advance(embedded, state, memory)
        logits = self.logits(rnn_out, context, embedded)  # (B, 1, vocab)
        return logits.squeeze(1), state, weights.squeeze(1)

    def forward(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``tgt_in (B, T)`` -> logits (B, T, vocab), weights (B, T, S)."""
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, E)
        state = self.init_state(memory)
        outs, contexts, weights = [], [], []
        for t in range(tgt_in.size(1)):
            rnn_out, context, state, w = self.advance(embedded[:, t : t + 1], state, memory)
            outs.append(rnn_out)
            contexts.append(context)
            weights.append(w)
        rnn_out = torch.cat(outs, dim=1)  # (B, T, H)
        context = torch.cat(contexts, dim=1)  # (B, T, V)
        return self.logits(rnn_out, context, embedded), torch.cat(weights, dim=1)  # (B, T, vocab), (B, T, S)


class FixedContextDecoder(RNNDecoder):
    """Cho et al. 2014: ``s_i = GRU([y_{i-1}; C], s_{i-1})``, ``s_0 = tanh(W C)``, output from
    ``[s_i; C; y_{i-1}]``. C never changes, so the weights it reports are uniform: every source
    word counts the same for every target word."""

    @staticmethod
    def uniform_weights(memory: Memory, steps: int) -> torch.Tensor:
        mask = memory.mask.float()  # (B, 1, S)
        return (mask / mask.sum(dim=-1, keepdim=True)).expand(-1, steps, -1)  # (B, T, S)

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState, torch.Tensor]:
        context = memory.context.unsqueeze(1)  # (B, 1, V)
        rnn_out, hidden = self.rnn(torch.cat([embedded, context], dim=-1), state.hidden)  # (B, 1, H)
        return rnn_out, context, DecoderState(hidden), self.uniform_weights(memory, 1)

    def forward(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        # C does not depend on the step, so the whole target runs through the GRU in one call.
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, E)
        context = memory.context.unsqueeze(1).expand(-1, tgt_in.size(1), -1)  # (B, T, V)
        rnn_out, _ = self.rnn(torch.cat([embedded, context], dim=-1), self.init_state(memory).hidden)  # (B, T, H)
        return self.logits(rnn_out, context, embedded), self.uniform_weights(memory, tgt_in.size(1))


class AttentionDecoder(RNNDecoder):
    """Bahdanau et al. 2015: attend with the previous state, then step the GRU:

    ``c_i = Σ_j α_ij h_j`` with ``α_i = softmax_j(score(s_{i-1}, h_j))``,
    ``s_i = GRU([y_{i-1}; c_i], s_{i-1})``, output from ``[s_i; c_i; y_{i-1}]``.
    """

    def __init__(
        self,
        attention: Attention,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        context_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(vocab_size, embed_size, hidden_size, context_size, num_layers, dropout)
        self.attention = attention

    def memory(self, encoded: Encoded) -> Memory:
        memory = super().memory(encoded)
        memory.keys = self.attention.project_keys(encoded.values)  # (B, S, K), once per batch
        return memory

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState, torch.Tensor]:
        query = state.hidden[-1].unsqueeze(1)  # (B, 1, H): s_{i-1}, top layer
        context, weights = self.attention(query, memory.keys, memory.values, memory.mask)  # (B, 1, V), (B, 1, S)
        rnn_out, hidden = self.rnn(torch.cat([embedded, context], dim=-1), state.hidden)  # (B, 1, H)
        return rnn_out, context, DecoderState(hidden), weights
