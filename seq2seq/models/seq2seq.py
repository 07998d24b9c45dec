"""Seq2Seq = encoder + decoder, and ``build_model`` from a :class:`ModelConfig`."""

from __future__ import annotations

import torch
from torch import nn

from seq2seq.config import ModelConfig, check_model
from seq2seq.models.attention import Attention, build_score
from seq2seq.models.decoder import BahdanauDecoder, ChoDecoder, LuongDecoder, Memory, RNNDecoder, SutskeverDecoder
from seq2seq.models.encoder import RNNEncoder, SelfAttentionEncoder


class Seq2Seq(nn.Module):
    def __init__(self, encoder: RNNEncoder | SelfAttentionEncoder, decoder: RNNDecoder) -> None:
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
    bidirectional, ``hidden_size`` for self-attention) has the decoder's size, so every score
    function applies."""
    check_model(cfg)
    encoder: RNNEncoder | SelfAttentionEncoder
    if cfg.encoder == "self_attention":
        encoder = SelfAttentionEncoder(
            vocab_size=src_vocab_size,
            size=cfg.hidden_size,
            num_layers=cfg.encoder_layers,
            heads=cfg.self_attention.heads,
            ff_size=cfg.self_attention.ff_size,
            positions=cfg.self_attention.positions,
            max_positions=cfg.self_attention.max_positions,
            dropout=cfg.dropout,
        )
    else:
        encoder = RNNEncoder(
            vocab_size=src_vocab_size,
            embed_size=cfg.embed_size,
            hidden_size=cfg.hidden_size // 2 if cfg.bidirectional else cfg.hidden_size,
            rnn=cfg.rnn,
            num_layers=cfg.encoder_layers,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout,
        )
    shared = dict(
        vocab_size=tgt_vocab_size,
        embed_size=cfg.embed_size,
        hidden_size=cfg.hidden_size,
        context_size=encoder.output_size,
        rnn=cfg.rnn,
        num_layers=cfg.decoder_layers,
        dropout=cfg.dropout,
        bridge=cfg.bridge,
        tie_embeddings=cfg.tie_embeddings,
    )
    if cfg.decoder == "cho":
        return Seq2Seq(encoder, ChoDecoder(**shared))
    if cfg.decoder == "sutskever":
        return Seq2Seq(encoder, SutskeverDecoder(**shared))
    score = build_score(
        cfg.attention.score,
        query_size=cfg.hidden_size,
        key_size=encoder.output_size,
        attention_size=cfg.attention.size or cfg.hidden_size,
        temperature=cfg.attention.temperature,
        learn_temperature=cfg.attention.learn_temperature,
    )
    decoder_class = LuongDecoder if cfg.decoder == "luong" else BahdanauDecoder
    return Seq2Seq(encoder, decoder_class(Attention(score), **shared))
