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
target), and all return attention weights ``(B, T, S)``. All four take the same keyword-only
arguments (the attention decoders also ``attention``, Luong also ``input_feeding``); each builds
its own RNN input and readout and says what one step does in :meth:`RNNDecoder.advance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seq2seq.constants import PAD_ID
from seq2seq.errors import ConfigError
from seq2seq.models.attention import Attention
from seq2seq.models.encoder import Encoded, make_rnn


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

    A subclass builds its own parts in its ``__init__``: the base makes the embedding, the bridge
    and an RNN reading ``rnn_input_size`` features, then the subclass hands its readout (how
    features become the output layer's input) to :meth:`set_output`, and says what one step does
    in :meth:`advance` (which returns the features the readout reads).
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        context_size: int,
        rnn: str,
        num_layers: int,
        dropout: float,
        bridge: str,
        rnn_input_size: int,
    ) -> None:
        super().__init__()
        if bridge == "copy" and context_size != hidden_size:
            raise ConfigError(
                f"model.bridge=copy needs the summary C ({context_size}) as wide as the decoder ({hidden_size})"
            )
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.bridge_kind = bridge
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.bridge = nn.Linear(context_size, hidden_size * num_layers) if bridge == "linear" else None
        self.rnn = make_rnn(rnn, rnn_input_size, hidden_size, num_layers, dropout)

    def set_output(self, readout: nn.Module, readout_size: int, tie_embeddings: bool) -> None:
        """The readout and the output layer over the vocabulary (sharing the target embeddings
        when ``tie_embeddings``); called once by each subclass's ``__init__``."""
        self.readout = readout
        embedding = self.embedding.weight  # (vocab, E)
        self.generator = nn.Linear(readout_size, embedding.size(0))
        if tie_embeddings:  # Press & Wolf 2017: one matrix embeds the previous word and scores the next
            if readout_size != embedding.size(1):
                raise ConfigError(
                    f"model.tie_embeddings needs the output layer's input ({readout_size}) as wide as the "
                    f"embeddings ({embedding.size(1)})"
                )
            self.generator.weight = embedding
            # nn.Embedding starts at N(0, 1): as output weights that makes logits of std ~sqrt(E)
            # and a start worse than uniform; N(0, 1/E) is the usual scale for a shared matrix.
            nn.init.normal_(embedding, std=embedding.size(1) ** -0.5)
            with torch.no_grad():
                embedding[PAD_ID].zero_()

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

    def __init__(
        self,
        *,
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
            vocab_size=vocab_size,
            embed_size=embed_size,
            hidden_size=hidden_size,
            context_size=context_size,
            rnn=rnn,
            num_layers=num_layers,
            dropout=dropout,
            bridge=bridge,
            rnn_input_size=embed_size + context_size,  # [y_{i-1}; C]
        )
        self.set_output(
            deep_output(hidden_size + context_size + embed_size, embed_size, dropout), embed_size, tie_embeddings
        )

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

    def __init__(
        self,
        *,
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
            vocab_size=vocab_size,
            embed_size=embed_size,
            hidden_size=hidden_size,
            context_size=context_size,
            rnn=rnn,
            num_layers=num_layers,
            dropout=dropout,
            bridge=bridge,
            rnn_input_size=embed_size,  # y_{i-1}
        )
        self.set_output(nn.Dropout(dropout), hidden_size, tie_embeddings)  # softmax straight on s_i

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        rnn_out, state = self.run_rnn(embedded, state)  # (B, T, H), T = 1 or the whole target
        return rnn_out, state, self.uniform_weights(memory, embedded.size(1))


class AttentionDecoder(RNNDecoder):
    """The attention decoders' shared part: the :class:`Attention` module (``self.attention``,
    set by each subclass) and keys projected once per batch."""

    attention: Attention

    def memory(self, encoded: Encoded) -> Memory:
        memory = super().memory(encoded)
        memory.keys = self.attention.project_keys(encoded.values)  # (B, S, K), once per batch
        return memory


class BahdanauDecoder(AttentionDecoder):
    """Bahdanau et al. 2015: attend with the previous state, then step the RNN:

    ``c_i = Σ_j α_ij h_j`` with ``α_i = softmax_j(score(s_{i-1}, h_j))``,
    ``s_i = RNN([y_{i-1}; c_i], s_{i-1})``, output from ``[s_i; c_i; y_{i-1}]``.
    """

    def __init__(
        self,
        *,
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
            vocab_size=vocab_size,
            embed_size=embed_size,
            hidden_size=hidden_size,
            context_size=context_size,
            rnn=rnn,
            num_layers=num_layers,
            dropout=dropout,
            bridge=bridge,
            rnn_input_size=embed_size + context_size,  # [y_{i-1}; c_i]
        )
        self.set_output(
            deep_output(hidden_size + context_size + embed_size, embed_size, dropout), embed_size, tie_embeddings
        )
        self.attention = attention

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
        *,
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
        super().__init__(
            vocab_size=vocab_size,
            embed_size=embed_size,
            hidden_size=hidden_size,
            context_size=context_size,
            rnn=rnn,
            num_layers=num_layers,
            dropout=dropout,
            bridge=bridge,
            rnn_input_size=embed_size + hidden_size if input_feeding else embed_size,  # [y_{i-1}; ĥ_{i-1}] or y_{i-1}
        )
        self.input_feeding = input_feeding
        if tie_embeddings and embed_size != hidden_size:
            # a tied output layer is as wide as the embeddings: project ĥ_i down to them first
            # (as fairseq's decoder_out_embed_dim), which also shrinks the biggest matrix product
            self.set_output(nn.Linear(hidden_size, embed_size, bias=False), embed_size, tie_embeddings)
        else:
            self.set_output(nn.Identity(), hidden_size, tie_embeddings)  # ĥ_i is already the output layer's input
        self.attention = attention
        self.combine = nn.Linear(context_size + hidden_size, hidden_size, bias=False)  # W_c

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


def deep_output(input_size: int, embed_size: int, dropout: float) -> nn.Module:
    """Cho's and Bahdanau's readout: ``tanh(W [s_i; c_i; y_{i-1}])``, as wide as the embeddings."""
    return nn.Sequential(nn.Linear(input_size, embed_size), nn.Tanh(), nn.Dropout(dropout))
