"""The Transformer decoder (Vaswani et al. 2017), and the parts of a Transformer stack it shares
with the self-attention encoder (:class:`~seq2seq.models.encoder.SelfAttentionEncoder`).

Shared parts: :class:`TransformerSettings` (the ``model.self_attention.*`` options, said once
for both sides), token embeddings at the positions' scale (:func:`transformer_embedding`),
sinusoidal or learned :class:`Positions`, the :func:`residual` connection (pre- or post-norm),
the position-wise :func:`feed_forward` network, and :class:`TransformerStack`: embeddings +
positions -> ``num_layers`` layers -> a final LayerNorm when pre-norm.

The decoder: each layer attends over the target prefix (masked self-attention), then over the
source (cross-attention), then a feed-forward network; a step computes only the new position,
reading the prefix from a key/value cache (:class:`~seq2seq.models.state.TransformerState`).
The cross-attention keys and values of every layer are projected once per batch
(:attr:`Memory.cross <seq2seq.models.state.Memory.cross>`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seq2seq.constants import PAD_ID
from seq2seq.errors import ConfigError
from seq2seq.models.attention import MultiHeadCrossAttention, MultiHeadSelfAttention
from seq2seq.models.state import Encoded, Memory, OutputRows, TransformerState


@dataclass(frozen=True)
class TransformerSettings:
    """The layer settings a Transformer encoder and decoder share: ``model.hidden_size`` and the
    ``model.self_attention.*`` options, checked by the config (``heads`` divides ``size``)."""

    size: int  # D, the model width
    heads: int  # h: each head attends over d = D / h dimensions
    ff_size: int  # the feed-forward network's inner width; 0: 4 * size
    positions: str  # sinusoidal | learned
    max_positions: int  # the longest sequence the positions cover
    dropout: float
    norm: str  # pre | post: the LayerNorm before each sublayer, or after the residual sum
    normalizer: str  # the cross-attention's step 2 (model.attention.normalizer); self-attention: softmax

    @property
    def inner_size(self) -> int:
        """The feed-forward network's inner width (``ff_size``, or 4 x ``size`` when 0)."""
        return self.ff_size or 4 * self.size

    @property
    def pre_norm(self) -> bool:
        return self.norm == "pre"


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


class TransformerStack(nn.Module):
    """What a Transformer encoder and decoder have in common: token embeddings (scaled by
    sqrt(size)) + :class:`Positions`, with dropout, read by ``num_layers`` layers that
    ``make_layer`` builds, and a final LayerNorm when pre-norm (the identity when post-norm)."""

    def __init__(
        self,
        settings: TransformerSettings,
        *,
        vocab_size: int,
        num_layers: int,
        make_layer: Callable[[], nn.Module],
        what: str,  # "source" or "target", for the positions' error
    ) -> None:
        super().__init__()
        self.embedding = transformer_embedding(vocab_size, settings.size)
        self.scale = math.sqrt(settings.size)
        self.positions = Positions(settings.size, settings.positions, settings.max_positions, what)
        self.dropout = nn.Dropout(settings.dropout)
        self.layers = nn.ModuleList(make_layer() for _ in range(num_layers))
        self.norm = nn.LayerNorm(settings.size) if settings.pre_norm else nn.Identity()

    def embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """``tokens (B, T)`` at positions ``start ... start + T - 1`` -> the first layer's input (B, T, D)."""
        return self.dropout(self.embedding(tokens) * self.scale + self.positions(start, tokens.size(1)))


class TransformerDecoderLayer(nn.Module):
    """Masked self-attention over the target prefix, cross-attention over the source, then the
    feed-forward network; each in a residual connection, pre-norm or post-norm."""

    def __init__(self, settings: TransformerSettings, memory_size: int) -> None:
        super().__init__()
        size = settings.size
        self.self_attention = MultiHeadSelfAttention(size, settings.heads)
        self.cross_attention = MultiHeadCrossAttention(size, settings.heads, memory_size, settings.normalizer)
        self.feed_forward = feed_forward(size, settings.inner_size)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(size), nn.LayerNorm(size), nn.LayerNorm(size)
        self.dropout = nn.Dropout(settings.dropout)
        self.pre_norm = settings.pre_norm

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D)
        causal: torch.Tensor | None,  # (1, 1, T, T) for a whole target; None for one step over the cache
        cross: tuple[torch.Tensor, torch.Tensor],  # (B, h, S, d) this layer's cross-attention keys and values
        mask: torch.Tensor,  # (B, 1, 1, S)
        past: tuple[torch.Tensor, torch.Tensor] | None,  # (B, h, t, d) cached keys and values
        self_weights: bool = True,  # form the self-attention weights (else the fused kernel, None)
        cross_weights: bool = True,  # form the cross-attention weights
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, tuple[torch.Tensor, torch.Tensor]]:
        """-> x (B, T, D), self weights (B, h, T, t + T), cross weights (B, h, T, S) (each None
        where not asked for), the keys and values seen (B, h, t + T, d)."""
        cache: list[tuple[torch.Tensor, torch.Tensor]] = []

        def attend_self(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            output, weights, kv = self.self_attention(h, causal, past, self_weights)
            cache.append(kv)
            return output, weights

        x, found_self = residual(x, self.norm1, self.dropout, self.pre_norm, attend_self)
        x, found_cross = residual(
            x, self.norm2, self.dropout, self.pre_norm, lambda h: self.cross_attention(h, *cross, mask, cross_weights)
        )
        x, _ = residual(x, self.norm3, self.dropout, self.pre_norm, lambda h: (self.feed_forward(h), None))
        return x, found_self, found_cross, cache[0]


def alignment_layer(chosen: int, layers: int) -> int:
    """``model.alignment_layer`` as a 0-based layer index: the config counts from 1, and 0 means
    the last but one (as is usual: the last layer's heads tend to spread), or the only layer. The
    one place that reads the option; the config checks that ``chosen <= layers``."""
    return chosen - 1 if chosen > 0 else max(layers - 2, 0)


class TransformerDecoder(TransformerStack):
    """Vaswani et al. 2017: target embeddings (scaled by sqrt(size)) + positions, then
    ``num_layers`` :class:`TransformerDecoderLayer` (and a final LayerNorm when pre-norm), then
    the output layer, tied to the target embeddings when ``tie_embeddings``.

    "Where it looked", for heatmaps, alignment accuracy and the translator, is the cross-attention
    of layer ``alignment_layer`` (0-based, from :func:`alignment_layer`), averaged over its heads.
    """

    def __init__(
        self,
        settings: TransformerSettings,
        *,
        vocab_size: int,
        context_size: int,
        num_layers: int,
        tie_embeddings: bool,
        alignment_layer: int,
    ) -> None:
        super().__init__(
            settings,
            vocab_size=vocab_size,
            num_layers=num_layers,
            make_layer=lambda: TransformerDecoderLayer(settings, context_size),
            what="target",
        )
        assert 0 <= alignment_layer < num_layers, (alignment_layer, num_layers)  # checked by the config
        self.heads = settings.heads
        self.alignment_layer = alignment_layer
        self.generator = nn.Linear(settings.size, vocab_size)
        if tie_embeddings:  # the embeddings are N(0, 1/size): the usual scale for output weights too
            self.generator.weight = self.embedding.weight

    def memory(self, encoded: Encoded) -> Memory:
        """The encoder output, and every layer's cross-attention keys and values, projected once."""
        cross = [layer.cross_attention.project_keys(encoded.values) for layer in self.layers]  # (B, h, S, d) x 2
        return Memory(encoded.values, encoded.values, encoded.mask.unsqueeze(1), encoded.summary, cross)

    def init_state(self, memory: Memory) -> TransformerState:
        """An empty cache: no target position yet (it grows by concatenation: see
        :class:`~seq2seq.models.attention.MultiHeadSelfAttention`)."""
        keys = memory.cross[0][0]  # (B, h, S, d)
        empty = keys.new_zeros(keys.size(0), self.heads, 0, keys.size(-1))  # (B, h, 0, d)
        return TransformerState([empty] * len(self.layers), [empty] * len(self.layers))

    def run(
        self, tokens: torch.Tensor, memory: Memory, past: TransformerState | None, weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor | None], list[torch.Tensor | None], TransformerState]:
        """Read ``tokens (B, T)`` after the ``past`` prefix of ``t`` positions (None: from the start).

        1. embed the tokens at positions ``t ... t + T - 1``: ``x (B, T, D)``;
        2. from the start, a causal mask ``(1, 1, T, T)`` lets position i see 0..i only (a step
           over the cache needs none: its one position may see the whole prefix);
        3. each layer: masked self-attention over the prefix and ``x`` (its keys and values
           appended to the cache, ``(B, h, t + T, d)``), cross-attention over the source with
           the layer's keys and values from ``memory.cross``, the feed-forward network;
        4. the final LayerNorm (pre-norm).

        -> features (B, T, D), every layer's self weights (B, h, T, t + T) and cross weights
        (B, h, T, S), and the new cache (``t + T`` positions). Without
        ``weights`` only layer ``alignment_layer``'s cross weights are formed (what the search,
        the heatmaps and guided alignment read); every other attention runs as one fused kernel
        and its weights are None.
        """
        start = 0 if past is None else past.length
        x = self.embed(tokens, start)  # (B, T, D)
        causal = None
        if past is None:  # position i sees positions 0..i only
            length = tokens.size(1)
            causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()  # (T, T)
            causal = causal[None, None]  # (1, 1, T, T)
        mask = memory.mask.unsqueeze(1)  # (B, 1, 1, S)
        self_weights: list[torch.Tensor | None] = []
        cross_weights: list[torch.Tensor | None] = []
        keys, values = [], []
        for i, layer in enumerate(self.layers):
            layer_past = None if past is None else (past.keys[i], past.values[i])
            x, w_self, w_cross, (k, v) = layer(
                x, causal, memory.cross[i], mask, layer_past, weights, weights or i == self.alignment_layer
            )
            self_weights.append(w_self)  # (B, h, T, t + T) or None
            cross_weights.append(w_cross)  # (B, h, T, S) or None
            keys.append(k)  # (B, h, t + T, d)
            values.append(v)
        return self.norm(x), self_weights, cross_weights, TransformerState(keys, values)

    def logits(self, features: torch.Tensor, vocab: OutputRows | None = None) -> torch.Tensor:
        """The output layer: ``features (B, T, D)`` -> logits (B, T, vocab), or over ``vocab``'s
        pieces only (a shortlist: (B, T, C))."""
        return (self.generator if vocab is None else vocab)(features)  # (B, T, vocab)

    def step(
        self, prev: torch.Tensor, state: TransformerState, memory: Memory
    ) -> tuple[torch.Tensor, TransformerState, torch.Tensor]:
        """Decode one token after the ``t`` cached positions.

        1. :meth:`run` reads ``prev (B,)`` as one new position ``(B, 1)``, every layer attending
           over its cache and the new position: features (B, 1, D), the cache one longer;
        2. the weights: layer ``alignment_layer``'s cross-attention, heads averaged (B, 1, S);
        3. the output layer: logits (B, 1, vocab) (the memory's shortlist: C).

        -> logits (B, vocab), the new state (``t + 1`` positions), weights (B, S).
        """
        features, _, cross, new = self.run(prev.unsqueeze(1), memory, state)  # (B, 1, D)
        weights = cross[self.alignment_layer].mean(dim=1)  # type: ignore[union-attr]  # (B, 1, S): heads averaged
        return self.logits(features, memory.vocab).squeeze(1), new, weights.squeeze(1)  # type: ignore[return-value]

    def features(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing, every position at once: ``tgt_in (B, T)`` -> features (B, T, D), weights (B, T, S)."""
        features, _, cross, _ = self.run(tgt_in, memory, None)
        return features, cross[self.alignment_layer].mean(dim=1)  # type: ignore[union-attr]  # (B, T, D), (B, T, S)

    def forward(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``tgt_in (B, T)`` -> logits (B, T, vocab), weights (B, T, S)."""
        features, weights = self.features(tgt_in, memory)
        return self.logits(features), weights

    def attention_maps(self, tgt_in: torch.Tensor, memory: Memory) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every layer's self-attention (B, h, T, T) and cross-attention (B, h, T, S) weights while
        reading ``tgt_in``: those of the steps that wrote it (the cache gives the same numbers)."""
        _, self_weights, cross_weights, _ = self.run(tgt_in, memory, None, weights=True)
        return self_weights, cross_weights  # type: ignore[return-value]
