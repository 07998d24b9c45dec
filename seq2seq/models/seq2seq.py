"""Seq2Seq = encoder + decoder, and ``build_model`` from a :class:`ModelConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seq2seq.models.attention import Attention, build_score
from seq2seq.models.encoder import RNNEncoder, SelfAttentionEncoder
from seq2seq.models.rnn_decoder import (
    BahdanauDecoder,
    ChoDecoder,
    LuongDecoder,
    RNNDecoder,
    RNNDecoderSettings,
    SutskeverDecoder,
)
from seq2seq.models.state import Memory
from seq2seq.models.transformer import TransformerDecoder, TransformerSettings, alignment_layer


@dataclass
class AttentionMaps:
    """Every attention of a model reading one source and writing one target (teacher forcing),
    per layer, with heads: what the translator draws. Empty lists where the model has none."""

    encoder: list[torch.Tensor]  # self-attention encoder: (B, h, S, S) per layer
    decoder: list[torch.Tensor]  # Transformer decoder: (B, h, T, T) per layer (masked: the future is 0)
    cross: list[torch.Tensor]  # target -> source: (B, h, T, S) per layer; an RNN decoder has one, with h = 1


class Seq2Seq(nn.Module):
    def __init__(self, encoder: RNNEncoder | SelfAttentionEncoder, decoder: RNNDecoder | TransformerDecoder) -> None:
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

    @torch.no_grad()
    def attention_maps(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> AttentionMaps:
        """Every attention map while reading ``src (B, S)`` and writing ``tgt_in (B, T)`` (BOS + output)."""
        encoded = self.encoder(src, src_mask, weights=True)
        memory = self.decoder.memory(encoded)
        if isinstance(self.decoder, TransformerDecoder):
            decoder, cross = self.decoder.attention_maps(tgt_in, memory)
        else:
            decoder, cross = [], [self.decoder(tgt_in, memory)[1].unsqueeze(1)]  # (B, 1, T, S)
        return AttentionMaps(encoded.self_weights, decoder, cross)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(cfg: Any, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """The model ``cfg`` describes: a checked ``ModelConfig`` (``seq2seq.config.check_model``),
    or any object with its fields; the models themselves know nothing of configs and trust the
    checked values. The encoder's output (2 x ``hidden_size // 2`` when bidirectional,
    ``hidden_size`` for self-attention) has the decoder's size, so every score function applies."""
    encoder: RNNEncoder | SelfAttentionEncoder
    if cfg.encoder == "self_attention":
        encoder = SelfAttentionEncoder(
            transformer_settings(cfg), vocab_size=src_vocab_size, num_layers=cfg.encoder_layers
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
    decoder = build_decoder(cfg, tgt_vocab_size, encoder.output_size)
    model = Seq2Seq(encoder, decoder)
    if cfg.param_init > 0:
        init_uniform(model, cfg.param_init)
    return model


def transformer_settings(cfg: Any) -> TransformerSettings:
    """The layer settings the self-attention encoder and the Transformer decoder share."""
    return TransformerSettings(
        size=cfg.hidden_size,
        heads=cfg.self_attention.heads,
        ff_size=cfg.self_attention.ff_size,
        positions=cfg.self_attention.positions,
        max_positions=cfg.self_attention.max_positions,
        dropout=cfg.dropout,
        norm=cfg.self_attention.norm,
        normalizer=cfg.attention.normalizer,
    )


def build_decoder(cfg: Any, vocab_size: int, context_size: int) -> RNNDecoder | TransformerDecoder:
    """One of the five decoders; an RNN attention decoder gets its score built first."""
    if cfg.decoder == "transformer":
        return TransformerDecoder(
            transformer_settings(cfg),
            vocab_size=vocab_size,
            context_size=context_size,
            num_layers=cfg.decoder_layers,
            tie_embeddings=cfg.tie_embeddings,
            alignment_layer=alignment_layer(cfg.alignment_layer, cfg.decoder_layers),
        )
    settings = RNNDecoderSettings(
        vocab_size=vocab_size,
        embed_size=cfg.embed_size,
        hidden_size=cfg.hidden_size,
        context_size=context_size,
        rnn=cfg.rnn,
        num_layers=cfg.decoder_layers,
        dropout=cfg.dropout,
        bridge=cfg.bridge,
        tie_embeddings=cfg.tie_embeddings,
    )
    if cfg.decoder == "cho":
        return ChoDecoder(settings)
    if cfg.decoder == "sutskever":
        return SutskeverDecoder(settings)
    score = build_score(
        cfg.attention.score,
        query_size=cfg.hidden_size,
        key_size=context_size,
        attention_size=cfg.attention.size or cfg.hidden_size,
        temperature=cfg.attention.temperature,
        learn_temperature=cfg.attention.learn_temperature,
    )
    if cfg.decoder == "bahdanau":
        return BahdanauDecoder(settings, Attention(score, cfg.attention.normalizer))
    assert cfg.decoder == "luong", cfg.decoder  # the config checks the choice
    return LuongDecoder(settings, Attention(score, cfg.attention.normalizer), input_feeding=cfg.input_feeding)


def init_uniform(model: Seq2Seq, scale: float) -> None:
    """Every weight and bias of the RNNs, linear layers and embeddings drawn from U(-scale, scale),
    as OpenNMT-py's ``param_init`` and fairseq's LSTM do; padding rows stay zero. Layer norms, the
    cosine score's temperature, learned positions and the Transformer embeddings (token
    embeddings scaled to the positions' size) keep their own starting values.

    PyTorch's default N(0, 1) embeddings are large next to Adam's step (about lr per step), so
    they move slowly; a small uniform start lets them learn from the first updates."""
    transformers = (SelfAttentionEncoder, TransformerDecoder)  # their embeddings keep N(0, 1/size)
    keep = {id(part.embedding.weight) for part in (model.encoder, model.decoder) if isinstance(part, transformers)}
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding, nn.RNNBase)):
                for param in module.parameters(recurse=False):
                    if id(param) not in keep:
                        param.uniform_(-scale, scale)
        for module in model.modules():  # after every draw: a tied output layer shares the matrix
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
