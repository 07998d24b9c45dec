"""Five decoders, one interface.

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

And self-attention in the target too:

- :class:`TransformerDecoder` (Vaswani et al. 2017): each layer attends over the target prefix
  (masked self-attention), then over the source (cross-attention), then a feed-forward network;
  a step computes only the new position, reading the prefix from a key/value cache.

All have ``step()`` (one token, used by search) and ``forward()`` (teacher forcing over a whole
target), and all return attention weights ``(B, T, S)``. The four RNN decoders take the same
keyword-only arguments (the attention decoders also ``attention``, Luong also ``input_feeding``);
each builds its own RNN input and readout and says what one step does in :meth:`RNNDecoder.advance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from seq2seq.constants import PAD_ID
from seq2seq.errors import ConfigError
from seq2seq.models.attention import Attention, MultiHeadCrossAttention, MultiHeadSelfAttention
from seq2seq.models.encoder import Encoded, Positions, feed_forward, make_rnn, residual, transformer_embedding


@dataclass
class Memory:
    """What the decoder reads from the source, computed once per batch."""

    values: torch.Tensor  # (B, S, V) encoder annotations
    keys: torch.Tensor  # (B, S, K) attention keys (values projected once); values if unused;
    # the Transformer decoder: every layer's cross-attention keys and values, (B, 2 x layers x h, S, d)
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


@dataclass
class TransformerState:
    """The Transformer decoder's state: every layer's self-attention keys and values of the target
    prefix so far, ``(B, h, t, d)`` each, so a step projects only its new position."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def length(self) -> int:
        """How many target positions the cache holds (the next position's index)."""
        return self.keys[0].size(2)

    def select(self, index: torch.Tensor) -> TransformerState:
        return TransformerState(
            [k.index_select(0, index) for k in self.keys], [v.index_select(0, index) for v in self.values]
        )


class TransformerDecoderLayer(nn.Module):
    """Masked self-attention over the target prefix, cross-attention over the source, then the
    feed-forward network; each in a residual connection, pre-norm or post-norm."""

    def __init__(self, size: int, heads: int, ff_size: int, memory_size: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.self_attention = MultiHeadSelfAttention(size, heads)
        self.cross_attention = MultiHeadCrossAttention(size, heads, memory_size)
        self.feed_forward = feed_forward(size, ff_size)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(size), nn.LayerNorm(size), nn.LayerNorm(size)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D)
        causal: torch.Tensor | None,  # (1, 1, T, T) for a whole target; None for one step over the cache
        keys: torch.Tensor,  # (B, 2h, S, d) this layer's cross-attention keys and values
        mask: torch.Tensor,  # (B, 1, 1, S)
        past: tuple[torch.Tensor, torch.Tensor] | None,  # (B, h, t, d) cached keys and values
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """-> x (B, T, D), self weights (B, h, T, t + T), cross weights (B, h, T, S), keys and values to cache."""
        cache: list[tuple[torch.Tensor, torch.Tensor]] = []

        def attend_self(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            output, weights, kv = self.self_attention(h, causal, past)
            cache.append(kv)
            return output, weights

        x, self_weights = residual(x, self.norm1, self.dropout, self.pre_norm, attend_self)
        x, cross_weights = residual(
            x, self.norm2, self.dropout, self.pre_norm, lambda h: self.cross_attention(h, keys, mask)
        )
        x, _ = residual(x, self.norm3, self.dropout, self.pre_norm, lambda h: (self.feed_forward(h), None))
        return x, self_weights, cross_weights, cache[0]


class TransformerDecoder(nn.Module):
    """Vaswani et al. 2017: target embeddings (scaled by sqrt(size)) + positions, then
    ``num_layers`` :class:`TransformerDecoderLayer` (and a final LayerNorm when pre-norm), then
    the output layer, tied to the target embeddings when ``tie_embeddings``.

    "Where it looked", for heatmaps, alignment accuracy and the translator, is the cross-attention
    of layer ``alignment_layer`` (0-based), averaged over its heads.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        size: int,
        context_size: int,
        num_layers: int = 1,
        heads: int = 4,
        ff_size: int = 0,
        positions: str = "sinusoidal",
        max_positions: int = 1024,
        dropout: float = 0.0,
        norm: str = "pre",
        tie_embeddings: bool = False,
        alignment_layer: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= alignment_layer < num_layers:
            raise ConfigError(
                f"model.alignment_layer={alignment_layer + 1} is not one of the {num_layers} decoder layers"
            )
        self.heads = heads
        self.alignment_layer = alignment_layer
        self.embedding = transformer_embedding(vocab_size, size)
        self.scale = math.sqrt(size)
        self.positions = Positions(size, positions, max_positions, "target")
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(size, heads, ff_size or 4 * size, context_size, dropout, norm == "pre")
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(size) if norm == "pre" else nn.Identity()
        self.generator = nn.Linear(size, vocab_size)
        if tie_embeddings:  # the embeddings are N(0, 1/size): the usual scale for output weights too
            self.generator.weight = self.embedding.weight

    def memory(self, encoded: Encoded) -> Memory:
        """The encoder output, and every layer's cross-attention keys and values, projected once."""
        keys = torch.cat([layer.cross_attention.project_keys(encoded.values) for layer in self.layers], dim=1)
        return Memory(encoded.values, keys, encoded.mask.unsqueeze(1), encoded.summary)  # keys (B, 2Lh, S, d)

    def init_state(self, memory: Memory) -> TransformerState:
        """An empty cache: no target position yet."""
        empty = memory.keys.new_zeros(memory.keys.size(0), self.heads, 0, memory.keys.size(-1))  # (B, h, 0, d)
        return TransformerState([empty] * len(self.layers), [empty] * len(self.layers))

    def run(
        self, tokens: torch.Tensor, memory: Memory, past: TransformerState | None
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], TransformerState]:
        """``tokens (B, T)`` after the ``past`` prefix (None: from the start, with a causal mask)
        -> features (B, T, D), self weights and cross weights of every layer, the new cache."""
        start, length = (0 if past is None else past.length), tokens.size(1)
        x = self.dropout(self.embedding(tokens) * self.scale + self.positions(start, length))  # (B, T, D)
        causal = None
        if past is None:  # position i sees positions 0..i only
            causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()  # (T, T)
            causal = causal[None, None]  # (1, 1, T, T)
        mask = memory.mask.unsqueeze(1)  # (B, 1, 1, S)
        width = 2 * self.heads
        self_weights, cross_weights, keys, values = [], [], [], []
        for i, layer in enumerate(self.layers):
            layer_past = None if past is None else (past.keys[i], past.values[i])
            x, w_self, w_cross, (k, v) = layer(x, causal, memory.keys[:, i * width : (i + 1) * width], mask, layer_past)
            self_weights.append(w_self)  # (B, h, T, t + T)
            cross_weights.append(w_cross)  # (B, h, T, S)
            keys.append(k)
            values.append(v)
        return self.norm(x), self_weights, cross_weights, TransformerState(keys, values)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.generator(features)  # (B, T, vocab)

    def step(
        self, prev: torch.Tensor, state: TransformerState, memory: Memory
    ) -> tuple[torch.Tensor, TransformerState, torch.Tensor]:
        """Decode one token. ``prev (B,)`` -> logits (B, vocab), the cache one longer, weights (B, S)."""
        features, _, cross, state = self.run(prev.unsqueeze(1), memory, state)  # (B, 1, D)
        weights = cross[self.alignment_layer].mean(dim=1)  # (B, 1, S): heads averaged
        return self.logits(features).squeeze(1), state, weights.squeeze(1)

    def features(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing, every position at once: ``tgt_in (B, T)`` -> features (B, T, D), weights (B, T, S)."""
        features, _, cross, _ = self.run(tgt_in, memory, None)
        return features, cross[self.alignment_layer].mean(dim=1)  # (B, T, D), (B, T, S)

    def forward(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``tgt_in (B, T)`` -> logits (B, T, vocab), weights (B, T, S)."""
        features, weights = self.features(tgt_in, memory)
        return self.logits(features), weights

    def attention_maps(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every layer's self-attention (B, h, T, T) and cross-attention (B, h, T, S) weights while
        reading ``tgt_in``: those of the steps that wrote it (the cache gives the same numbers)."""
        _, self_weights, cross_weights, _ = self.run(tgt_in, memory, None)
        return self_weights, cross_weights
