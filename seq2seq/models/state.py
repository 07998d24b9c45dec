"""What flows between the parts of a model: the encoder's output, the decoder's memory of the
source, and the decoder's state between steps.

- :class:`Encoded`: what an encoder returns (annotations, mask, summary C).
- :class:`Memory`: what a decoder reads from the source, computed once per batch by its
  ``memory()`` (keys projected once; the Transformer's cross-attention keys and values, per layer).
- :class:`DecoderState`: an RNN decoder's state between steps (hidden, an LSTM's cell, Luong's feed).
- :class:`TransformerState`: the Transformer decoder's self-attention cache between steps.
- :class:`OutputRows`: the output layer cut to a batch's shortlist of target pieces
  (:mod:`seq2seq.shortlist`), carried by the memory.

Each has ``select(index)``: the same rows picked or repeated, which is all beam search needs to
reorder them (memory once per batch, the state at every step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Encoded:
    """What an encoder returns; the decoders cannot tell the encoders apart."""

    values: torch.Tensor  # (B, S, V) an annotation h_j per source token
    mask: torch.Tensor  # (B, S) True on real tokens
    summary: torch.Tensor  # (B, V) the fixed-size summary C of the whole source
    self_weights: list[torch.Tensor] = field(default_factory=list)  # self-attention: (B, h, S, S) per layer


@dataclass
class Memory:
    """What the decoder reads from the source, computed once per batch."""

    values: torch.Tensor  # (B, S, V) encoder annotations
    keys: torch.Tensor  # (B, S, K) an RNN attention's keys (values projected once); the values where unused
    mask: torch.Tensor  # (B, 1, S) True on real source tokens
    context: torch.Tensor  # (B, V) the fixed summary C
    cross: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    # the Transformer decoder: each layer's cross-attention keys and values, (B, h, S, d) each,
    # projected once; empty for the RNN decoders
    vocab: OutputRows | None = None  # the output layer cut to the batch's shortlist; None: every piece

    def select(self, index: torch.Tensor) -> Memory:
        """Rows ``index`` (e.g. to repeat each sentence once per beam)."""

        def rows(t: torch.Tensor) -> torch.Tensor:
            return t.index_select(0, index)

        cross = [(rows(keys), rows(values)) for keys, values in self.cross]
        values = rows(self.values)
        keys = values if self.keys is self.values else rows(self.keys)  # the Transformer's are one tensor: once
        return Memory(values, keys, rows(self.mask), rows(self.context), cross, self.vocab)


@dataclass
class OutputRows:
    """The output layer cut to a batch's candidate target pieces ``ids (C,)`` (a shortlist:
    :mod:`seq2seq.shortlist`): called on features it gives logits over those ``C`` pieces only,
    position ``i`` standing for piece ``ids[i]``. ``ids`` is sorted, so the special ids 0-3 are
    positions 0-3."""

    ids: torch.Tensor  # (C,)
    weight: torch.Tensor | None  # (C, D); None for an int8 layer's rows (packed)
    bias: torch.Tensor | None  # (C,)
    packed: Any = None  # an int8 layer's rows, packed for torch.ops.quantized.linear_dynamic

    @classmethod
    def of(cls, generator: torch.nn.Module, ids: torch.Tensor) -> OutputRows:
        """The rows ``ids`` of ``generator``: an ``nn.Linear``, or its dynamically quantized int8
        form (``quantize=int8``), whose int8 rows are packed anew, so the cut layer runs in int8
        as the whole one does."""
        packed_params = getattr(generator, "_packed_params", None)
        if packed_params is not None:
            if packed_params.dtype != torch.qint8:
                raise ValueError(f"a shortlist cannot cut a {packed_params.dtype} output layer")
            weight, bias = packed_params._weight_bias()  # int8 (V, D), fp32 (V,)
            rows = None if bias is None else bias.index_select(0, ids)
            return cls(ids, None, rows, torch.ops.quantized.linear_prepack(weight.index_select(0, ids), rows))
        weight, bias = generator.weight, generator.bias
        return cls(ids, weight.index_select(0, ids), None if bias is None else bias.index_select(0, ids))

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:  # as torch.ao's dynamic int8 Linear computes
            return torch.ops.quantized.linear_dynamic(features, self.packed, reduce_range=True).to(features.dtype)
        return torch.nn.functional.linear(features, self.weight, self.bias)  # (..., C)


@dataclass
class DecoderState:
    """An RNN decoder's state between steps."""

    hidden: torch.Tensor  # (layers, B, H), layer-first like nn.GRU/nn.LSTM's own state
    cell: torch.Tensor | None = None  # (layers, B, H): an LSTM's memory cell
    feed: torch.Tensor | None = None  # (B, 1, H): Luong's previous attentional state ĥ_{i-1}

    def select(self, index: torch.Tensor) -> DecoderState:
        """Rows ``index`` of the batch (dimension 1 of the layer-first tensors)."""
        cell = None if self.cell is None else self.cell.index_select(1, index)
        feed = None if self.feed is None else self.feed.index_select(0, index)
        return DecoderState(self.hidden.index_select(1, index), cell, feed)


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
        """Rows ``index`` of every layer's cache."""
        return TransformerState(
            [k.index_select(0, index) for k in self.keys], [v.index_select(0, index) for v in self.values]
        )
