"""Seq2Seq = encoder + decoder, and ``build_model`` from a :class:`ModelConfig`."""

from __future__ import annotations

import torch
from torch import nn

from seq2seq.config import DECODERS, ModelConfig
from seq2seq.errors import ConfigError
from seq2seq.models.attention import Attention, build_score
from seq2seq.models.decoder import AttentionDecoder, FixedContextDecoder, Memory, RNNDecoder
from seq2seq.models.encoder import RNNEncoder


class Seq2Seq(nn.Module):
    def __init__(self, encoder: RNNEncoder, decoder: RNNDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        """``src (B, S)`` -> the decoder's memory (annotations, keys, mask, summary C)."""
        return self.decoder.memory(self.encoder(src, src_mask))

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: logits (B, T, vocab) and attention weights (B, T, S)."""
        return self.decoder(tgt_in, self.encode(src, src_mask))

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """The model ``cfg`` describes. The encoder's output (2 x ``hidden_size // 2`` when
    bidirectional) has the decoder's size, so every score function applies."""
    if cfg.decoder not in DECODERS:
        raise ConfigError(f"unknown decoder {cfg.decoder!r}: choose one of {', '.join(DECODERS)}")
    enc_hidden = cfg.hidden_size // 2 if cfg.bidirectional else cfg.hidden_size
    encoder = RNNEncoder(
        vocab_size=src_vocab_size,
        embed_size=cfg.embed_size,
        hidden_size=enc_hidden,
        num_layers=cfg.encoder_layers,
        bidirectional=cfg.bidirectional,
        dropout=cfg.dropout,
    )
    shared = dict(
        vocab_size=tgt_vocab_size,
        embed_size=cfg.embed_size,
        hidden_size=cfg.hidden_size,
        context_size=encoder.output_size,
        num_layers=cfg.decoder_layers,
        dropout=cfg.dropout,
    )
    if cfg.decoder == "fixed_context":
        return Seq2Seq(encoder, FixedContextDecoder(**shared))
    score = build_score(
        cfg.attention.score,
        query_size=cfg.hidden_size,
        key_size=encoder.output_size,
        attention_size=cfg.attention.size or cfg.hidden_size,
        temperature=cfg.attention.temperature,
        learn_temperature=cfg.attention.learn_temperature,
    )
    return Seq2Seq(encoder, AttentionDecoder(Attention(score), **shared))
