"""A Transformer checkpoint as a CTranslate2 model (``seq2seq-export`` runs :func:`run_export`).

CTranslate2 is the inference engine that OpenNMT-py and fairseq models are deployed with (C++
kernels, int8 and int16 weights, batched greedy and beam search). :class:`CheckpointConverter`
fills CTranslate2's Transformer spec from a loaded model, module by module, as CTranslate2's own
OpenNMT-py and fairseq converters do from theirs; :func:`export_ctranslate2` writes the model
folder, with the checkpoint's SentencePiece models beside it as ``source.model`` and
``target.model`` and ``export.json`` (what was exported, from which file).

How the two Transformers meet:

- **layer norms**: a layer's ``norm1``, ``norm2`` (and a decoder layer's ``norm3``) belong to its
  sublayers in order (self-attention, cross-attention, feed-forward); both apply them before the
  sublayer (pre-norm) or after the residual sum (post-norm), and close each stack with one more
  LayerNorm when pre-norm. The epsilon is PyTorch's 1e-5 (CTranslate2's own default is 1e-6).
- **attention**: the fused ``qkv`` (queries, keys, values, each ``D`` wide, heads in ``d``-wide
  slices) is CTranslate2's fused ``self_attention.linear[0]`` as it is; cross-attention's
  ``query`` is ``attention.linear[0]``, its fused ``key_value`` (keys, then values)
  ``linear[1]``; ``out`` the last. Both scale the scores by ``1 / sqrt(d)``.
- **positions**: seq2seq's sinusoidal table interleaves sines (even dimensions) and cosines (odd);
  CTranslate2's own puts the sines in the first half, so the table is written into the model, as
  learned positions are. Both count from 0 at the first source token and at ``<s>``.
- **embeddings** are scaled by ``sqrt(D)`` on both sides (CTranslate2's ``scale_embeddings``); a
  tied output layer is stored once (CTranslate2 aliases equal weights).
- **vocabulary**: SentencePiece's pieces in id order, so the ids agree (pad=0 unk=1 ``<s>``=2
  ``</s>``=3), with ``<pad>`` named ``<blank>`` as CTranslate2 names it; seq2seq reads a source
  with ``</s>`` at its end (``add_source_eos``) and starts the target at ``<s>``.
- **the search**: seq2seq's never writes PAD or BOS; CTranslate2's would, so their output bias is
  :data:`NEVER_WRITTEN` (probability 0). CTranslate2's log-probabilities are then normalised
  without them (seq2seq's scores are not), which moves no argmax.
- **where it looked**: the cross-attention of ``model.alignment_layer``, every head averaged
  (``return_attention=True`` in CTranslate2 gives seq2seq's heatmap weights).

Refused, in one line: an RNN decoder or encoder (CTranslate2 runs Transformers only) and a
sparse cross-attention (``sparsemax``, ``entmax15``: CTranslate2's attention is softmax).

CTranslate2 is the optional extra ``seq2seq-attention[export]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

try:
    import ctranslate2
    from ctranslate2.converters import Converter
    from ctranslate2.specs import common_spec, transformer_spec
except ImportError as e:  # the optional extra
    raise ImportError("seq2seq-export needs CTranslate2: pip install 'seq2seq-attention[export]'") from e

from seq2seq.checkpoint import Loaded, model_from, read_checkpoint
from seq2seq.config import ExportConfig, check_export, describe_model, saved_model_config
from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seq2seq.data.store import sync
from seq2seq.errors import CheckpointError, ConfigError
from seq2seq.models.encoder import SelfAttentionEncoder, SelfAttentionLayer
from seq2seq.models.transformer import TransformerDecoder, TransformerDecoderLayer, TransformerStack
from seq2seq.shortlist import read_shortlist
from seq2seq.tokenizer import Tokenizer

NEVER_WRITTEN = -1e4  # PAD's and BOS's output bias: exp(-1e4) is 0 in float32, and -1e4 is finite in float16
RECORD = "export.json"  # what was exported, from which checkpoint: the mark of a folder this module wrote


def refusal(model: Any) -> str | None:
    """Why a model (a checked ``ModelConfig``) cannot run in CTranslate2, in a few words; None if
    it can."""
    only = "CTranslate2 runs Transformers only (model=transformer)"
    if model.decoder != "transformer":
        return f"{only}; this model has a {model.decoder} decoder"
    if model.encoder != "self_attention":
        return f"{only}; this model's Transformer decoder reads an RNN encoder (model.encoder=rnn)"
    if model.attention.normalizer != "softmax":
        return (
            "CTranslate2's attention is softmax; this model's cross-attention is "
            f"model.attention.normalizer={model.attention.normalizer}"
        )
    return None


def load_transformer(path: str | Path) -> Loaded:
    """The checkpoint at ``path``, if CTranslate2 can run its model: else a one-line
    :class:`CheckpointError` saying why (:func:`refusal`), before the model is built."""
    ckpt = read_checkpoint(path)
    why = refusal(saved_model_config(ckpt["config"]["model"]))
    if why is not None:
        raise CheckpointError(f"{path}: cannot export: {why}")
    return model_from(ckpt, path)


def array(tensor: torch.Tensor) -> np.ndarray:
    """A weight as CTranslate2 takes it: a float32 numpy copy."""
    return tensor.detach().to(torch.float32).cpu().numpy().copy()


def set_linear(spec: common_spec.LinearSpec, linear: nn.Linear) -> None:
    spec.weight = array(linear.weight)  # (out, in), as nn.Linear holds it
    spec.bias = array(linear.bias)


def set_layer_norm(spec: common_spec.LayerNormSpec, norm: nn.Module) -> None:
    assert isinstance(norm, nn.LayerNorm), type(norm)
    spec.gamma = array(norm.weight)
    spec.beta = array(norm.bias)


def set_feed_forward(spec: transformer_spec.FeedForwardSpec, feed_forward: nn.Module, norm: nn.Module) -> None:
    """``W2 ReLU(W1 x)``: ``feed_forward[0]`` is W1, ``[3]`` W2 (:func:`seq2seq.models.transformer.feed_forward`)."""
    set_layer_norm(spec.layer_norm, norm)
    set_linear(spec.linear_0, feed_forward[0])  # type: ignore[index]
    set_linear(spec.linear_1, feed_forward[3])  # type: ignore[index]


def set_stack(spec: Any, stack: TransformerStack, embeddings: common_spec.EmbeddingsSpec) -> None:
    """What an encoder and a decoder share: embeddings (scaled by sqrt(D) when read), the
    positions' table ``(max_positions, D)`` from position 0, and the final LayerNorm (pre-norm)."""
    embeddings.weight = array(stack.embedding.weight)  # (vocab, D)
    spec.scale_embeddings = True  # x sqrt(D), as TransformerStack.embed
    positions = stack.positions
    table = positions.weight if positions.weight is not None else positions.table  # (max_positions, D)
    spec.position_encodings.encodings = array(table)
    if hasattr(spec, "layer_norm"):  # pre-norm
        set_layer_norm(spec.layer_norm, stack.norm)


def set_encoder(spec: transformer_spec.TransformerEncoderSpec, encoder: SelfAttentionEncoder) -> None:
    set_stack(spec, encoder, spec.embeddings[0])
    for layer_spec, layer in zip(spec.layer, encoder.layers, strict=True):
        assert isinstance(layer, SelfAttentionLayer), type(layer)
        attention = layer_spec.self_attention
        set_layer_norm(attention.layer_norm, layer.norm1)
        set_linear(attention.linear[0], layer.self_attention.qkv)  # (3D, D): queries, keys, values
        set_linear(attention.linear[1], layer.self_attention.out)
        set_feed_forward(layer_spec.ffn, layer.feed_forward, layer.norm2)


def set_decoder(spec: transformer_spec.TransformerDecoderSpec, decoder: TransformerDecoder) -> None:
    set_stack(spec, decoder, spec.embeddings)
    for layer_spec, layer in zip(spec.layer, decoder.layers, strict=True):
        assert isinstance(layer, TransformerDecoderLayer), type(layer)
        own, cross = layer_spec.self_attention, layer_spec.attention
        set_layer_norm(own.layer_norm, layer.norm1)
        set_linear(own.linear[0], layer.self_attention.qkv)  # (3D, D)
        set_linear(own.linear[1], layer.self_attention.out)
        set_layer_norm(cross.layer_norm, layer.norm2)
        set_linear(cross.linear[0], layer.cross_attention.query)  # (D, D)
        set_linear(cross.linear[1], layer.cross_attention.key_value)  # (2D, D): keys, then values
        set_linear(cross.linear[2], layer.cross_attention.out)
        set_feed_forward(layer_spec.ffn, layer.feed_forward, layer.norm3)
    set_linear(spec.projection, decoder.generator)  # (vocab, D): tied or not
    spec.projection.bias[[PAD_ID, BOS_ID]] = NEVER_WRITTEN  # seq2seq's search never writes them


def vocabulary(tokenizer: Tokenizer, side: str) -> list[str]:
    """The pieces in id order, ``<pad>`` named ``<blank>`` (CTranslate2's padding token)."""
    pieces = tokenizer.id_to_piece(range(len(tokenizer)))
    if "<blank>" in pieces:  # a user-defined piece of that name: it would stand for two ids
        raise CheckpointError(f"the {side} vocabulary has a piece <blank>, CTranslate2's name for padding")
    pieces[PAD_ID] = "<blank>"
    return pieces


def ctranslate2_spec(loaded: Loaded) -> transformer_spec.TransformerSpec:
    """CTranslate2's Transformer spec of a loaded seq2seq Transformer, every weight filled:
    layers and heads as the model has them, ReLU, pre- or post-norm, the alignment layer with
    every head averaged; the vocabularies and their special tokens (see the module's notes)."""
    model = loaded.model
    encoder, decoder = model.encoder, model.decoder
    assert isinstance(encoder, SelfAttentionEncoder) and isinstance(decoder, TransformerDecoder)  # load_transformer
    spec = transformer_spec.TransformerSpec.from_config(
        (len(encoder.layers), len(decoder.layers)),
        decoder.heads,
        pre_norm=decoder.layers[0].pre_norm,
        activation=common_spec.Activation.RELU,
        alignment_layer=decoder.alignment_layer,
        alignment_heads=decoder.heads,  # all of them, averaged: seq2seq's "where it looked"
    )
    set_encoder(spec.encoder, encoder)
    set_decoder(spec.decoder, decoder)
    source, target = vocabulary(loaded.src_tokenizer, "source"), vocabulary(loaded.tgt_tokenizer, "target")
    spec.register_source_vocabulary(source)
    spec.register_target_vocabulary(target)
    config = spec.config
    config.unk_token, config.bos_token, config.eos_token = target[UNK_ID], target[BOS_ID], target[EOS_ID]
    config.decoder_start_token = target[BOS_ID]
    config.add_source_eos = True  # seq2seq's source ends in </s> (seq2seq.data.batching.collate)
    config.layer_norm_epsilon = float(decoder.layers[0].norm1.eps)  # PyTorch's 1e-5 in every one
    return spec


class CheckpointConverter(Converter):
    """CTranslate2's converter over a loaded seq2seq Transformer: ``convert(folder,
    quantization=...)`` validates the spec that :meth:`_load` fills, quantizes and writes it."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded

    def _load(self) -> transformer_spec.TransformerSpec:
        return ctranslate2_spec(self.loaded)


def check_output(output: Path, checkpoint: Path, force: bool) -> None:
    """Refuse an output that is a file, holds files (unless ``force`` and an earlier export wrote
    them: it has ``export.json``), or holds the checkpoint or the current folder."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output={output} is a file; give a folder")
    where = output.resolve()
    for inside, what in ((checkpoint.resolve(), "the checkpoint"), (Path.cwd().resolve(), "the current folder")):
        if inside == where or where in inside.parents:
            raise ConfigError(f"output={output} holds {what}; write the export elsewhere")
    if not output.is_dir() or not any(output.iterdir()):
        return
    if not force:
        raise ConfigError(f"output={output} already holds files; give force=true to replace it, or another folder")
    if not (output / RECORD).is_file():
        raise ConfigError(
            f"output={output} holds files that seq2seq-export did not write (no {RECORD}); force=true replaces only "
            "an earlier export: remove them yourself, or give another folder"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record(loaded: Loaded, checkpoint: Path, quantization: str, shortlist: bool = False) -> dict[str, Any]:
    """``export.json``: what the folder holds and where it came from (the checkpoint's file name
    and sha256, no absolute path), and how to use it."""
    try:
        version = metadata.version("seq2seq-attention")
    except metadata.PackageNotFoundError:
        version = "unknown"
    data = loaded.config.get("data", {})
    return {
        "format": "ctranslate2",
        "quantization": quantization,
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": file_sha256(checkpoint),
        "model": describe_model(saved_model_config(loaded.config["model"])),
        "parameters": loaded.model.num_parameters,
        "languages": f"{data.get('src_lang')}->{data.get('tgt_lang')}",
        "model_config": loaded.config["model"],
        "seq2seq": version,
        "ctranslate2": ctranslate2.__version__,
        "files": {
            "model.bin, config.json, *_vocabulary.json": "the CTranslate2 model",
            "source.model": "SentencePiece: source text -> pieces (encode with out_type=str)",
            "target.model": "SentencePiece: output pieces -> text (decode_pieces)",
            **({"vmap.txt": "the vocabulary shortlist: translate_batch(..., use_vmap=True)"} if shortlist else {}),
        },
        "usage": (
            "ctranslate2.Translator(FOLDER).translate_batch(sentencepiece.SentencePieceProcessor("
            "model_file='FOLDER/source.model').encode(lines, out_type=str)); each result's hypotheses[0] "
            "decoded by target.model is the translation"
        ),
    }


def export_ctranslate2(
    checkpoint: str | Path,
    output: str | Path,
    quantization: str = "float32",
    force: bool = False,
    shortlist: str | Path | None = None,
) -> Path:
    """Write the Transformer of ``checkpoint`` as a CTranslate2 model into the folder ``output``
    with weights of type ``quantization`` (one of :data:`seq2seq.constants.EXPORT_QUANTIZATIONS`),
    plus ``source.model``, ``target.model`` and ``export.json``; with a ``shortlist`` (a
    vocabulary map, :mod:`seq2seq.shortlist`), also ``vmap.txt``, which CTranslate2 reads with
    ``translate_batch(..., use_vmap=True)``.

    1. refuse what cannot work before any writing: an output holding files (without ``force``),
       a model CTranslate2 cannot run (:func:`load_transformer`), a shortlist of another model's
       pieces (:func:`seq2seq.shortlist.read_shortlist`);
    2. fill the spec (:class:`CheckpointConverter`) and write the model into a hidden temporary
       folder beside ``output``, with the tokenizers and the record;
    3. rename it into place (an earlier export there, with ``force``, is moved aside first and
       deleted after): a failed export leaves no half folder.

    Returns ``output``."""
    checkpoint, output = Path(checkpoint), Path(output)
    check_output(output, checkpoint, force)
    loaded = load_transformer(checkpoint)
    if shortlist is not None:
        read_shortlist(shortlist, loaded.src_tokenizer, loaded.tgt_tokenizer)  # its pieces are the model's
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        folder = work / output.name
        vmap = None if shortlist is None else str(shortlist)
        CheckpointConverter(loaded).convert(str(folder), vmap=vmap, quantization=quantization)
        (folder / "source.model").write_bytes(loaded.src_tokenizer.model_proto)
        (folder / "target.model").write_bytes(loaded.tgt_tokenizer.model_proto)
        text = json.dumps(record(loaded, checkpoint, quantization, shortlist is not None), indent=2, ensure_ascii=False)
        (folder / RECORD).write_text(text + "\n", encoding="utf-8")
        sync(folder)
        replaced = work / "replaced"
        if output.is_dir() and any(output.iterdir()):  # an earlier export (check_output), deleted with `work`
            os.replace(output, replaced)
        try:
            os.replace(folder, output)  # over nothing, or over an empty folder
        except OSError:
            if replaced.exists():
                os.replace(replaced, output)  # put back
            raise
        sync(output.parent, files=False)  # the rename itself
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return output


def run_export(cfg: ExportConfig) -> Path:
    """``seq2seq-export``: the checked config's checkpoint, exported; returns the output folder."""
    cfg = check_export(cfg)
    return export_ctranslate2(cfg.checkpoint, cfg.output, cfg.quantization, cfg.force, cfg.shortlist)
