"""An ensemble of trained models that decodes as one: at every step each model reads the same
previous token with its own state, and the next-token distribution is the mean of the models'
log-probabilities (OpenNMT-py's rule; the search's ``log_softmax`` renormalises it, so the
ensemble's distribution is the models' renormalised geometric mean).

The search sees an :class:`Ensemble` as it sees a :class:`~seq2seq.models.seq2seq.Seq2Seq`:
``encode()`` -> a memory with ``select()``, ``decoder.init_state()``, ``decoder.step()`` -> logits
(here the mean log-probabilities), a state with ``select()``, and the step's attention weights.
Those weights are the mean of the models that attend (a fixed-context model's uniform weights
say nothing and are left out; with none attending, the first model's); every layer's maps
(:meth:`Ensemble.attention_maps`) are the first model's, since the models' layers need not match.
The models must share their tokenizers (the loader checks); their architectures may differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seq2seq.models.rnn_decoder import ChoDecoder, SutskeverDecoder
from seq2seq.models.seq2seq import AttentionMaps, Seq2Seq
from seq2seq.models.state import DecoderState, Memory, TransformerState


@dataclass
class EnsembleMemory:
    """Each model's memory of the same source batch."""

    parts: list[Memory]

    def select(self, index: torch.Tensor) -> EnsembleMemory:
        return EnsembleMemory([m.select(index) for m in self.parts])


@dataclass
class EnsembleState:
    """Each model's decoder state."""

    parts: list[DecoderState | TransformerState]

    def select(self, index: torch.Tensor) -> EnsembleState:
        return EnsembleState([s.select(index) for s in self.parts])


class EnsembleDecoder:
    """The models' decoders stepping together (what the search calls ``model.decoder``)."""

    def __init__(self, models: list[Seq2Seq]) -> None:
        self.decoders = [m.decoder for m in models]
        attends = [not isinstance(d, (ChoDecoder, SutskeverDecoder)) for d in self.decoders]
        self.shown = [i for i, a in enumerate(attends) if a] or [0]  # whose weights are averaged

    def init_state(self, memory: EnsembleMemory) -> EnsembleState:
        return EnsembleState([d.init_state(m) for d, m in zip(self.decoders, memory.parts, strict=True)])

    def step(
        self, prev: torch.Tensor, state: EnsembleState, memory: EnsembleMemory
    ) -> tuple[torch.Tensor, EnsembleState, torch.Tensor]:
        """``prev (N,)`` -> the mean log-probabilities (N, V), the new states, the mean weights (N, S).

        1. every model steps from its own state over its own memory -> logits (N, V), weights (N, S);
        2. each model's logits become log-probabilities (float32), and those are averaged;
        3. the weights of the attending models are averaged."""
        steps = [d.step(prev, s, m) for d, s, m in zip(self.decoders, state.parts, memory.parts, strict=True)]
        mean, shown = self.combine([logits for logits, _, _ in steps], [w for _, _, w in steps])
        return mean, EnsembleState([new for _, new, _ in steps]), shown

    def combine(self, logits: list[torch.Tensor], weights: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each model's ``logits (..., V)`` and ``weights (..., S)`` -> the mean log-probabilities
        (float32) and the mean weights of the attending models."""
        mean = torch.stack([torch.log_softmax(x.float(), dim=-1) for x in logits]).mean(dim=0)
        return mean, torch.stack([weights[i].float() for i in self.shown]).mean(dim=0)


class Ensemble(nn.Module):
    """Several :class:`Seq2Seq` models with one source and one target vocabulary, decoded as one."""

    def __init__(self, models: list[Seq2Seq]) -> None:
        super().__init__()
        assert len(models) >= 2, "an ensemble has at least two models"
        self.models = nn.ModuleList(models)
        self.decoder = EnsembleDecoder(models)

    @property
    def members(self) -> list[Seq2Seq]:
        return list(self.models)  # type: ignore[arg-type]

    @property
    def encoder(self) -> nn.Module:
        """The first model's encoder (what a report of the encoder's self-attention draws)."""
        return self.members[0].encoder

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> EnsembleMemory:
        """``src (B, S)`` -> every model's memory of it."""
        return EnsembleMemory([m.encode(src, src_mask) for m in self.members])

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing, as :meth:`Seq2Seq.forward`: the mean log-probabilities (B, T, vocab)
        and the attending models' mean weights (B, T, S)."""
        outputs = [m(src, src_mask, tgt_in) for m in self.members]
        return self.decoder.combine([logits for logits, _ in outputs], [w for _, w in outputs])

    def attention_maps(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> AttentionMaps:
        """The first model's maps, every layer (the models' layers need not match)."""
        return self.members[0].attention_maps(src, src_mask, tgt_in)

    @property
    def num_parameters(self) -> int:
        return sum(m.num_parameters for m in self.members)
