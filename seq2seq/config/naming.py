"""Names made from a config: of a model's architecture (in reports, logs and tables) and of a
multirun job's folder."""

from __future__ import annotations

import re
from typing import Any

from seq2seq.constants import ATTENTION_DECODERS, RNN_ATTENTION_DECODERS


def uses_attention(decoder: str) -> bool:
    """Whether ``model.decoder`` is an attention decoder (a fresh context per target word)."""
    return decoder in ATTENTION_DECODERS


def decoder_name(model: Any) -> str:
    """``luong/general``, ``transformer`` or ``cho``: the decoder, with its score where it has one to choose."""
    return f"{model.decoder}/{model.attention.score}" if model.decoder in RNN_ATTENTION_DECODERS else model.decoder


def attention_name(model: Any) -> str | None:
    """The attention a decoder scores with: ``additive``, ..., ``multi-head scaled_dot``; None without."""
    if model.decoder == "transformer":
        return "multi-head scaled_dot"
    return model.attention.score if model.decoder in RNN_ATTENTION_DECODERS else None


def describe_model(model: Any) -> str:
    """A short name of the architecture, e.g. ``luong/general decoder, 1-layer bi-lstm encoder``."""
    heads = f"{model.self_attention.heads} heads"
    if model.encoder == "self_attention":
        encoder = f"{model.encoder_layers}-layer self-attention ({heads})"
    else:
        encoder = f"{model.encoder_layers}-layer {'bi-' if model.bidirectional else ''}{model.rnn}"
    if model.decoder == "transformer":
        return f"transformer decoder ({model.decoder_layers}-layer, {heads}), {encoder} encoder"
    feeding = ", no input feeding" if model.decoder == "luong" and not model.input_feeding else ""
    return f"{decoder_name(model)} decoder ({model.decoder_layers}-layer {model.rnn}{feeding}), {encoder} encoder"


def short_name(model: Any) -> str:
    """``luong/dot``, ``cho lstm``, ``bahdanau/additive self-attention-encoder``: what sets a run
    apart in a gathered report."""
    name = decoder_name(model)
    if model.rnn != "gru" and (model.decoder != "transformer" or model.encoder == "rnn"):
        name += f" {model.rnn}"
    if model.encoder == "self_attention":
        name += " self-attention-encoder"
    return name


def folder_name(overrides: str) -> str:
    """A multirun job's folder name from its overrides (``model:luong+model.attention:dot``), with
    only characters that an override carries unquoted, so the folder's paths can be passed back
    as ``checkpoint=...``; a group override's slash becomes a dot."""
    return re.sub(r"[^A-Za-z0-9_.:+\-]", "_", str(overrides).replace("/", "."))
