"""Four RNN decoders, one interface.

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

Like the Transformer decoder (:mod:`seq2seq.models.transformer`), all have ``step()`` (one
token, used by search) and ``forward()`` (teacher forcing over a whole target), and all return
attention weights ``(B, T, S)``. All four are built from one :class:`RNNDecoderSettings` (the
attention decoders also take their ``attention``, Luong also ``input_feeding``); each builds its
own RNN input and readout and says what one step does in :meth:`RNNDecoder.advance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seq2seq.constants import PAD_ID
from seq2seq.models.attention import Attention
from seq2seq.models.encoder import make_rnn
from seq2seq.models.state import DecoderState, Encoded, Memory, OutputRows


@dataclass(frozen=True)
class RNNDecoderSettings:
    """What every RNN decoder is built from: the ``model.*`` options, checked by the config
    (``seq2seq.config.check_model``), which the constructors trust."""

    vocab_size: int  # the target vocabulary
    embed_size: int  # E: the target embeddings
    hidden_size: int  # H: the RNN state
    context_size: int  # V: the encoder's annotations and summary C
    rnn: str  # gru | lstm
    num_layers: int
    dropout: float
    bridge: str  # linear | copy | zero: how C starts the decoder (copy: V == H)
    tie_embeddings: bool  # the output layer shares the target embeddings (its input is E wide)


class RNNDecoder(nn.Module):
    """Shared parts: target embedding, the bridge from C to the first state, the RNN, the output.

    A subclass builds its own parts in its ``__init__``: the base makes the embedding, the bridge
    and an RNN reading ``rnn_input_size`` features, then the subclass hands its readout (how
    features become the output layer's input) to :meth:`set_output`, and says what one step does
    in :meth:`advance` (which returns the features the readout reads).
    """

    def __init__(self, settings: RNNDecoderSettings, *, rnn_input_size: int) -> None:
        super().__init__()
        s = settings
        assert s.bridge != "copy" or s.context_size == s.hidden_size, "checked by the config"
        self.num_layers = s.num_layers
        self.hidden_size = s.hidden_size
        self.bridge_kind = s.bridge
        self.embedding = nn.Embedding(s.vocab_size, s.embed_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(s.dropout)
        self.bridge = nn.Linear(s.context_size, s.hidden_size * s.num_layers) if s.bridge == "linear" else None
        self.rnn = make_rnn(s.rnn, rnn_input_size, s.hidden_size, s.num_layers, s.dropout, bidirectional=False)
        self.lstm = s.rnn == "lstm"  # (an int8 copy's RNN is no longer an nn.LSTM)

    def set_output(self, readout: nn.Module, readout_size: int, tie_embeddings: bool) -> None:
        """The readout and the output layer over the vocabulary (sharing the target embeddings
        when ``tie_embeddings``); called once by each subclass's ``__init__``."""
        self.readout = readout
        embedding = self.embedding.weight  # (vocab, E)
        self.generator = nn.Linear(readout_size, embedding.size(0))
        if tie_embeddings:  # Press & Wolf 2017: one matrix embeds the previous word and scores the next
            assert readout_size == embedding.size(1), "checked by the config"
            self.generator.weight = embedding
            # nn.Embedding starts at N(0, 1): as output weights that makes logits of std ~sqrt(E)
            # and a start worse than uniform; N(0, 1/E) is the usual scale for a shared matrix.
            nn.init.normal_(embedding, std=embedding.size(1) ** -0.5)
            with torch.no_grad():
                embedding[PAD_ID].zero_()

    def memory(self, encoded: Encoded) -> Memory:
        """The annotations, the mask (B, 1, S) and C; the keys are the annotations themselves."""
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
        cell = hidden.clone() if self.lstm else None  # as JoeyNMT: c_0 = h_0
        return DecoderState(hidden, cell)

    def run_rnn(self, inputs: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """``inputs (B, T, I)`` through the RNN -> outputs (B, T, H) and the new state."""
        if state.cell is not None:
            out, (hidden, cell) = self.rnn(inputs, (state.hidden, state.cell))  # (B, T, H), (L, B, H) x 2
            return out, DecoderState(hidden, cell, state.feed)
        out, hidden = self.rnn(inputs, state.hidden)  # (B, T, H), (L, B, H)
        return out, DecoderState(hidden, None, state.feed)

    def logits(self, features: torch.Tensor, vocab: OutputRows | None = None) -> torch.Tensor:
        """The readout, then the output layer: ``features (B, T, F)`` -> logits (B, T, vocab), or
        over ``vocab``'s pieces only (a shortlist: (B, T, C))."""
        return (self.generator if vocab is None else vocab)(self.readout(features))  # (B, T, vocab)

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step: ``embedded (B, 1, E)`` -> features (B, 1, F), state, weights (B, 1, S)."""
        raise NotImplementedError

    def step(
        self, prev: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """Decode one token.

        1. embed the previous token ``prev (B,)``, with dropout: ``y_{i-1} (B, 1, E)``;
        2. :meth:`advance`: the subclass's step (RNN and, for the attention decoders, attention)
           -> features (B, 1, F), the new state, weights (B, 1, S);
        3. :meth:`logits`: readout and output layer -> (B, 1, vocab) (the memory's shortlist: C).

        -> logits (B, vocab), the new state, weights (B, S).
        """
        embedded = self.dropout(self.embedding(prev.unsqueeze(1)))  # (B, 1, E)
        features, state, weights = self.advance(embedded, state, memory)
        return self.logits(features, memory.vocab).squeeze(1), state, weights.squeeze(1)

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

    def features_at_once(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`features` in one :meth:`advance` over the whole target, for a decoder none of
        whose steps waits for the previous step's output."""
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, E)
        features, _, weights = self.advance(embedded, self.init_state(memory), memory)  # (B, T, F), (B, T, S)
        return features, weights

    def forward(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``tgt_in (B, T)`` -> logits (B, T, vocab), weights (B, T, S)."""
        features, weights = self.features(tgt_in, memory)
        return self.logits(features), weights


def deep_output(settings: RNNDecoderSettings) -> nn.Module:
    """Cho's and Bahdanau's readout: ``tanh(W [s_i; c_i; y_{i-1}])``, as wide as the embeddings."""
    s = settings
    return nn.Sequential(
        nn.Linear(s.hidden_size + s.context_size + s.embed_size, s.embed_size), nn.Tanh(), nn.Dropout(s.dropout)
    )


class FixedContextDecoder(RNNDecoder):
    """The distracted decoders' shared part: C never changes, so the weights they report are
    uniform, and no step depends on the previous step's output, so :meth:`advance` also runs a
    whole target (B, T, E) at once: teacher forcing makes one RNN call instead of T."""

    @staticmethod
    def uniform_weights(memory: Memory, steps: int) -> torch.Tensor:
        """Every real source token weighs the same: (B, T, S), each row summing to 1."""
        mask = memory.mask.float()  # (B, 1, S)
        return (mask / mask.sum(dim=-1, keepdim=True)).expand(-1, steps, -1)  # (B, T, S)

    def features(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features_at_once(tgt_in, memory)


class ChoDecoder(FixedContextDecoder):
    """Cho et al. 2014: ``s_i = RNN([y_{i-1}; C], s_{i-1})``, ``s_0 = bridge(C)``, output from
    ``[s_i; C; y_{i-1}]``."""

    def __init__(self, settings: RNNDecoderSettings) -> None:
        super().__init__(settings, rnn_input_size=settings.embed_size + settings.context_size)  # [y_{i-1}; C]
        self.set_output(deep_output(settings), settings.embed_size, settings.tie_embeddings)

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step, or a whole target at once (``T`` steps; nothing waits for an output).

        1. C next to every input word: ``[y_{i-1}; C]`` (B, T, E + V);
        2. the RNN: ``s_i`` (B, T, H) and the new state;
        3. the features the deep output reads: ``[s_i; C; y_{i-1}]`` (B, T, H + V + E).

        ``embedded (B, T, E)`` -> features (B, T, H + V + E), state, uniform weights (B, T, S).
        """
        steps = embedded.size(1)  # 1, or the whole target
        context = memory.context.unsqueeze(1).expand(-1, steps, -1)  # (B, T, V)
        rnn_out, state = self.run_rnn(torch.cat([embedded, context], dim=-1), state)  # (B, T, H)
        features = torch.cat([rnn_out, context, embedded], dim=-1)  # (B, T, H + V + E)
        return features, state, self.uniform_weights(memory, steps)


class SutskeverDecoder(FixedContextDecoder):
    """Sutskever et al. 2014: C only initialises the decoder (``s_0 = bridge(C)``); after that
    the RNN reads just the previous word, and the word is predicted from ``s_i`` alone."""

    def __init__(self, settings: RNNDecoderSettings) -> None:
        super().__init__(settings, rnn_input_size=settings.embed_size)  # y_{i-1}
        self.set_output(nn.Dropout(settings.dropout), settings.hidden_size, settings.tie_embeddings)  # softmax on s_i

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step, or a whole target at once: the RNN reads ``y_{i-1}`` alone.

        ``embedded (B, T, E)`` -> ``s_i`` (B, T, H) as the features, state, uniform weights (B, T, S).
        """
        rnn_out, state = self.run_rnn(embedded, state)  # (B, T, H), T = 1 or the whole target
        return rnn_out, state, self.uniform_weights(memory, embedded.size(1))


class AttentionDecoder(RNNDecoder):
    """The attention decoders' shared part: the :class:`Attention` module (``self.attention``,
    set by each subclass) and keys projected once per batch."""

    attention: Attention

    def memory(self, encoded: Encoded) -> Memory:
        """As :meth:`RNNDecoder.memory`, with the keys projected once per batch (B, S, K)."""
        memory = super().memory(encoded)
        memory.keys = self.attention.project_keys(encoded.values)  # (B, S, K), once per batch
        return memory


class BahdanauDecoder(AttentionDecoder):
    """Bahdanau et al. 2015: attend with the previous state, then step the RNN:

    ``c_i = Σ_j α_ij h_j`` with ``α_i = softmax_j(score(s_{i-1}, h_j))``,
    ``s_i = RNN([y_{i-1}; c_i], s_{i-1})``, output from ``[s_i; c_i; y_{i-1}]``.
    """

    def __init__(self, settings: RNNDecoderSettings, attention: Attention) -> None:
        super().__init__(settings, rnn_input_size=settings.embed_size + settings.context_size)  # [y_{i-1}; c_i]
        self.set_output(deep_output(settings), settings.embed_size, settings.tie_embeddings)
        self.attention = attention

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step (each waits for the state the previous one wrote).

        1. the query: the previous state's top layer ``s_{i-1}`` (B, 1, H);
        2. attention over the source: ``c_i`` (B, 1, V) and ``α_i`` (B, 1, S);
        3. the RNN reads ``[y_{i-1}; c_i]`` (B, 1, E + V): ``s_i`` (B, 1, H) and the new state;
        4. the features the deep output reads: ``[s_i; c_i; y_{i-1}]`` (B, 1, H + V + E).

        ``embedded (B, 1, E)`` -> features (B, 1, H + V + E), state, weights (B, 1, S).
        """
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

    def __init__(self, settings: RNNDecoderSettings, attention: Attention, *, input_feeding: bool) -> None:
        s = settings
        super().__init__(s, rnn_input_size=s.embed_size + s.hidden_size if input_feeding else s.embed_size)
        self.input_feeding = input_feeding  # the RNN reads [y_{i-1}; ĥ_{i-1}], else y_{i-1}
        if s.tie_embeddings and s.embed_size != s.hidden_size:
            # a tied output layer is as wide as the embeddings: project ĥ_i down to them first
            # (as fairseq's decoder_out_embed_dim), which also shrinks the biggest matrix product
            self.set_output(nn.Linear(s.hidden_size, s.embed_size, bias=False), s.embed_size, s.tie_embeddings)
        else:
            self.set_output(nn.Identity(), s.hidden_size, s.tie_embeddings)  # ĥ_i is already the output layer's input
        self.attention = attention
        self.combine = nn.Linear(s.context_size + s.hidden_size, s.hidden_size, bias=False)  # W_c

    def init_state(self, memory: Memory) -> DecoderState:
        """As :meth:`RNNDecoder.init_state`, with ``ĥ_0 = 0`` (B, 1, H) when input feeding."""
        state = super().init_state(memory)
        if self.input_feeding:
            state.feed = memory.context.new_zeros(memory.context.size(0), 1, self.hidden_size)  # (B, 1, H): ĥ_0
        return state

    def advance(
        self, embedded: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step, or (without input feeding) a whole target: ``embedded (B, T, E)``.

        1. the RNN input: ``[y_{i-1}; ĥ_{i-1}]`` (B, T, E + H) with input feeding, else ``y_{i-1}``;
        2. the RNN: ``s_i`` (B, T, H) and the new state;
        3. attention with ``s_i`` as the query: ``c_i`` (B, T, V) and ``α_i`` (B, T, S);
        4. the attentional state ``ĥ_i = tanh(W_c [c_i; s_i])`` (B, T, H), with dropout: the
           features, and the next step's feed.

        -> features ``ĥ_i`` (B, T, H), state, weights (B, T, S).
        """
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
        return self.features_at_once(tgt_in, memory)
