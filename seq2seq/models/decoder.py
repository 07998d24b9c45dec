"""Four decoders, one interface.

The "distracted" models, whose whole source is one fixed vector C (their weights are uniform:
every source word counts the same for every target word):

- :class:`SutskeverDecoder` (Sutskever et al. 2014): C only starts the decoder, ``s_0 = bridge(C)``.
- :class:`ChoDecoder` (Cho et al. 2014): C also enters every step and the output.

The attention models, with a fresh context c_i for every target word (score -> masked softmax
-> weighted sum over the encoder annotations):

- :class:`BahdanauDecoder` (Bahdanau et al. 2015): attend with the previous state, then step the RNN.
- :class:`LuongDecoder` (Luong et al. 2015): step the RNN, then attend with the new state; the
  attentional state ``ĥ_i = tanh(W [c_i; s_i])`` predicts the word and is fed to the next step
  (input feeding).

All have ``step()`` (one token, used by search) and ``forward()`` (teacher forcing over a whole
target), and all return attention weights ``(B, T, S)``. A subclass says what goes into the RNN
and what comes out of it in :meth:`RNNDecoder.advance`; the rest is shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seq2seq.models.attention import Attention
from seq2seq.models.encoder import Encoded, make_rnn
from seq2seq.tokenizer import PAD_ID

BRIDGES = ("linear", "copy", "zero")


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
    hidden: torch.Tensor  # (layers, B, H), layer-first like nn.GRU/nn.LSTM's own state
    cell: torch.Tensor | None = None  # (layers, B, H): an LSTM's memory cell
    feed: torch.Tensor | None = None  # (B, 1, H): Luong's previous attentional state ĥ_{i-1}

    def select(self, index: torch.Tensor) -> DecoderState:
        cell = None if self.cell is None else self.cell.index_select(1, index)
        feed = None if self.feed is None else self.feed.index_select(0, index)
        return DecoderState(self.hidden.index_select(1, index), cell, feed)


class RNNDecoder(nn.Module):
    """Shared parts: target embedding, the bridge from C to the first state, the RNN, the output.

    Subclasses say what the RNN reads (:meth:`rnn_input_size`), what one step does
    (:meth:`advance`, which returns the features the output layer reads) and how features become
    a word (:meth:`make_readout`; default: the deep output ``tanh(W [s_i; c_i; y_{i-1}])``).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        context_size: int,
        rnn: str = "gru",
        num_layers: int = 1,
        dropout: float = 0.0,
        bridge: str = "linear",
        tie_embeddings: bool = False,
    ) -> None:
        super().__init__()
        if bridge not in BRIDGES:
            raise ValueError(f"model.bridge={bridge!r} is not valid: choose one of {', '.join(BRIDGES)}")
        if bridge == "copy" and context_size != hidden_size:
            raise ValueError(
                f"model.bridge=copy needs the summary C ({context_size}) as wide as the decoder ({hidden_size})"
            )
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.bridge_kind = bridge
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.bridge = nn.Linear(context_size, hidden_size * num_layers) if bridge == "linear" else None
        self.rnn = make_rnn(
            rnn, self.rnn_input_size(embed_size, hidden_size, context_size), hidden_size, num_layers, dropout
        )
        self.readout, readout_size = self.make_readout(embed_size, hidden_size, context_size, dropout)
        self.generator = nn.Linear(readout_size, vocab_size)
        if tie_embeddings:  # Press & Wolf 2017: one matrix embeds the previous word and scores the next
            if readout_size != embed_size:
                raise ValueError(
                    f"model.tie_embeddings needs the output layer's input ({readout_size}) as wide as the "
                    f"embeddings ({embed_size})"
                )
            self.generator.weight = self.embedding.weight
            # nn.Embedding starts at N(0, 1): as output weights that makes logits of std ~sqrt(E)
            # and a start worse than uniform; N(0, 1/E) is the usual scale for a shared matrix.
            nn.init.normal_(self.embedding.weight, std=embed_size**-0.5)
            with torch.no_grad():
                self.embedding.weight[PAD_ID].zero_()

    def rnn_input_size(self, embed_size: int, hidden_size: int, context_size: int) -> int:
        return embed_size + context_size  # [y_{i-1}; c_i]

    def make_readout(
        self, embed_size: int, hidden_size: int, context_size: int, dropout: float
    ) -> tuple[nn.Module, int]:
        layer = nn.Sequential(
            nn.Linear(hidden_size + context_size + embed_size, embed_size), nn.Tanh(), nn.Dropout(dropout)
        )
        return layer, embed_size

    def memory(self, encoded: Encoded) -> Memory:
        mask = encoded.mask.unsqueeze(1)  # (B, 1, S)
        return Memory(encoded.values, encoded.values, mask, encoded.summary)

    def init_state(self, memory: Memory) -> DecoderState:
        """``s_0`` from C by the bridge: ``tanh(W C)`` (linear), C itself (copy) or zeros."""
        context = memory.context  # (B, V)
        if self.bridge is not None:
            hidden = torch.tanh(self.bridge(context))  # (B, L * H)
            hidden = hidden.view(hidden.size(0), self.num_layers, -1).transpose(0, 1).contiguous()  # (L, B, H)
        elif self.bridge_kind == "copy":
            hidden = context.unsqueeze(0).repeat(self.num_layers, 1, 1)  # (L, B, H)
        else:
            hidden = context.new_zeros(self.num_layers, context.size(0), self.hidden_size)  # (L, B, H)
        cell = hidden.clone() if isinstance(self.rnn, nn.LSTM) else None  # as JoeyNMT: c_0 = h_0
        return DecoderState(hidden, cell)

    def run_rnn(self, inputs: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """``inputs (B, T, I)`` through the RNN -> outputs (B, T, H) and the new state."""
        if state.cell is not None:
            out, (hidden, cell) = self.rnn(inputs, (state.hidden, state.cell))  # (B, T, H), (L, B, H) x 2
            return out, DecoderState(hidden, cell, state.feed)
        out, hidden = self.rnn(inputs, state.hidden)  # (B, T, H), (L, B, H)
        return out, DecoderState(hidden, None, state.feed)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.generator(self.readout(features))  # (B, T, vocab)

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step: ``embedded (B, 1, E)`` -> features (B, 1, F), state, weights (B, 1, S)."""
        raise NotImplementedError

    def step(
        self, prev: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """Decode one token. ``prev (B,)`` -> logits (B, vocab), new state, weights (B, S)."""
        embedded = self.dropout(self.embedding(prev.unsqueeze(1)))  # (B, 1, E)
        features, state, weights = self.advance(embedded, state, memory)
        return self.logits(features).squeeze(1), state, weights.squeeze(1)

    def features(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing up to the output layer: ``tgt_in (B, T)`` -> features (B, T, F), weights (B, T, S).
        Training applies :meth:`logits` to the real (non-padding) positions only."""
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, E)
        state = self.init_state(memory)
        features, weights = [], []
        for t in range(tgt_in.size(1)):
            step_features, state, step_weights = self.advance(embedded[:, t : t + 1], state, memory)  # (B, 1, F)
            features.append(step_features)
            weights.append(step_weights)  # (B, 1, S)
        return torch.cat(features, dim=1), torch.cat(weights, dim=1)  # (B, T, F), (B, T, S)

    def forward(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``tgt_in (B, T)`` -> logits (B, T, vocab), weights (B, T, S)."""
        features, weights = self.features(tgt_in, memory)
        return self.logits(features), weights


class FixedContextDecoder(RNNDecoder):
    """The distracted decoders' shared part: C never changes, so the weights they report are
    uniform, and no step depends on the previous step's output, so :meth:`advance` also runs a
    whole target (B, T, E) at once: teacher forcing makes one RNN call instead of T."""

    @staticmethod
    def uniform_weights(memory: Memory, steps: int) -> torch.Tensor:
        mask = memory.mask.float()  # (B, 1, S)
        return (mask / mask.sum(dim=-1, keepdim=True)).expand(-1, steps, -1)  # (B, T, S)

    def features(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, E)
        features, _, weights = self.advance(embedded, self.init_state(memory), memory)  # (B, T, F), (B, T, S)
        return features, weights


class ChoDecoder(FixedContextDecoder):
    """Cho et al. 2014: ``s_i = RNN([y_{i-1}; C], s_{i-1})``, ``s_0 = bridge(C)``, output from
    ``[s_i; C; y_{i-1}]``."""

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        steps = embedded.size(1)  # 1, or the whole target
        context = memory.context.unsqueeze(1).expand(-1, steps, -1)  # (B, T, V)
        rnn_out, state = self.run_rnn(torch.cat([embedded, context], dim=-1), state)  # (B, T, H)
        features = torch.cat([rnn_out, context, embedded], dim=-1)  # (B, T, H + V + E)
        return features, state, self.uniform_weights(memory, steps)


class SutskeverDecoder(FixedContextDecoder):
    """Sutskever et al. 2014: C only initialises the decoder (``s_0 = bridge(C)``); after that
    the RNN reads just the previous word, and the word is predicted from ``s_i`` alone."""

    def rnn_input_size(self, embed_size: int, hidden_size: int, context_size: int) -> int:
        return embed_size  # y_{i-1}

    def make_readout(
        self, embed_size: int, hidden_size: int, context_size: int, dropout: float
    ) -> tuple[nn.Module, int]:
        return nn.Dropout(dropout), hidden_size  # softmax straight on s_i

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        rnn_out, state = self.run_rnn(embedded, state)  # (B, T, H), T = 1 or the whole target
        return rnn_out, state, self.uniform_weights(memory, embedded.size(1))


class AttentionDecoder(RNNDecoder):
    """The attention decoders' shared part: the :class:`Attention` module and keys projected once."""

    def __init__(
        self,
        attention: Attention,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        context_size: int,
        rnn: str = "gru",
        num_layers: int = 1,
        dropout: float = 0.0,
        bridge: str = "linear",
        tie_embeddings: bool = False,
    ) -> None:
        super().__init__(
            vocab_size, embed_size, hidden_size, context_size, rnn, num_layers, dropout, bridge, tie_embeddings
        )
        self.attention = attention

    def memory(self, encoded: Encoded) -> Memory:
        memory = super().memory(encoded)
        memory.keys = self.attention.project_keys(encoded.values)  # (B, S, K), once per batch
        return memory


class BahdanauDecoder(AttentionDecoder):
    """Bahdanau et al. 2015: attend with the previous state, then step the RNN:

    ``c_i = Σ_j α_ij h_j`` with ``α_i = softmax_j(score(s_{i-1}, h_j))``,
    ``s_i = RNN([y_{i-1}; c_i], s_{i-1})``, output from ``[s_i; c_i; y_{i-1}]``.
    """

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        query = state.hidden[-1].unsqueeze(1)  # (B, 1, H): s_{i-1}, top layer
        context, weights = self.attention(query, memory.keys, memory.values, memory.mask)  # (B, 1, V), (B, 1, S)
        rnn_out, state = self.run_rnn(torch.cat([embedded, context], dim=-1), state)  # (B, 1, H)
        return torch.cat([rnn_out, context, embedded], dim=-1), state, weights  # (B, 1, H + V + E)


class LuongDecoder(AttentionDecoder):
    """Luong et al. 2015: step the RNN, then attend with the new state:

    ``s_i = RNN([y_{i-1}; ĥ_{i-1}], s_{i-1})`` (input feeding, ``ĥ_0 = 0``),
    ``c_i = Σ_j α_ij h_j`` with ``α_i = softmax_j(score(s_i, h_j))``,
    ``ĥ_i = tanh(W_c [c_i; s_i])``, and the word is predicted from ``ĥ_i``.

    Without input feeding (``input_feeding=False``) the RNN reads ``y_{i-1}`` alone, so no step
    waits for the previous step's attention: teacher forcing runs the RNN over the whole target
    in one call and attends for all target positions in one matrix product.
    """

    def __init__(
        self,
        attention: Attention,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        context_size: int,
        rnn: str = "gru",
        num_layers: int = 1,
        dropout: float = 0.0,
        bridge: str = "linear",
        tie_embeddings: bool = False,
        input_feeding: bool = True,
    ) -> None:
        self.input_feeding = input_feeding  # read by rnn_input_size during the base __init__
        self.tied = tie_embeddings  # read by make_readout
        super().__init__(
            attention,
            vocab_size,
            embed_size,
            hidden_size,
            context_size,
            rnn,
            num_layers,
            dropout,
            bridge,
            tie_embeddings,
        )
        self.combine = nn.Linear(context_size + hidden_size, hidden_size, bias=False)  # W_c

    def rnn_input_size(self, embed_size: int, hidden_size: int, context_size: int) -> int:
        return embed_size + hidden_size if self.input_feeding else embed_size  # [y_{i-1}; ĥ_{i-1}] or y_{i-1}

    def make_readout(
        self, embed_size: int, hidden_size: int, context_size: int, dropout: float
    ) -> tuple[nn.Module, int]:
        if self.tied and embed_size != hidden_size:
            # a tied output layer is as wide as the embeddings: project ĥ_i down to them first
            # (as fairseq's decoder_out_embed_dim), which also shrinks the biggest matrix product
            return nn.Linear(hidden_size, embed_size, bias=False), embed_size
        return nn.Identity(), hidden_size  # ĥ_i is already the output layer's input

    def init_state(self, memory: Memory) -> DecoderState:
        state = super().init_state(memory)
        if self.input_feeding:
            state.feed = memory.context.new_zeros(memory.context.size(0), 1, self.hidden_size)  # (B, 1, H): ĥ_0
        return state

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step, or (without input feeding) a whole target: ``embedded (B, T, E)``."""
        inputs = embedded if state.feed is None else torch.cat([embedded, state.feed], dim=-1)  # (B, T, I)
        rnn_out, state = self.run_rnn(inputs, state)  # (B, T, H)
        context, weights = self.attention(rnn_out, memory.keys, memory.values, memory.mask)  # (B, T, V), (B, T, S)
        attentional = self.dropout(torch.tanh(self.combine(torch.cat([context, rnn_out], dim=-1))))  # (B, T, H): ĥ_i
        if self.input_feeding:
            state.feed = attentional
        return attentional, state, weights

    def features(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        if self.input_feeding:
            return super().features(tgt_in, memory)
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, E)
        features, _, weights = self.advance(embedded, self.init_state(memory), memory)  # (B, T, H), (B, T, S)
        return features, weights
