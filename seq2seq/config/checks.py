"""One check per schema: what a type cannot express, refused before anything runs with a
one-line :class:`~seq2seq.errors.ConfigError` that names the valid options.

The library's constructors (the models, the search) trust a checked config: every choice list,
size, width and layer number they rely on is checked here, once.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from sacrebleu.metrics.bleu import BLEU

from seq2seq.config.schemas import LONGEST, SCHEMAS, ModelConfig, ServeConfig, nested_schema
from seq2seq.constants import (
    ATTENTION_DECODERS,
    BRIDGES,
    DECODERS,
    DEVICES,
    EARLY_STOP_METRICS,
    ENCODERS,
    EXPORT_FORMATS,
    EXPORT_QUANTIZATIONS,
    LENGTH_NORMS,
    LR_SCHEDULES,
    NORMALIZERS,
    NORMS,
    OUTPUT_FORMATS,
    POSITIONS,
    PRECISIONS,
    QUANTIZE,
    RNN_ATTENTION_DECODERS,
    RNNS,
    SAME_SIZE_SCORES,
    SAMPLING_SIDES,
    SCORES,
    TOKENIZER_TYPES,
)
from seq2seq.errors import ConfigError

# ---------------------------------------------------------------- unknown and missing options


def unknown_options(cfg: Any, schema: type, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Keys of ``cfg`` that ``schema`` does not have (Hydra's ``+key=value`` adds them even to a
    typed config), each with the schema's names at that level."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    found = []
    for key in cfg:
        if key not in fields:
            found.append((f"{prefix}{key}", list(fields)))
            continue
        nested = nested_schema(fields[key])
        if nested is not None and not OmegaConf.is_missing(cfg, key) and isinstance(cfg[key], DictConfig):
            found += unknown_options(cfg[key], nested, f"{prefix}{key}.")
    return found


def _not_an_option(key: str, names: list[str], command: str) -> str:
    """The one line that refuses ``key``, with the nearest of ``names`` (its level's options)."""
    parent, _, name = key.rpartition(".")
    near = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {parent + '.' if parent else ''}{near[0]}?)" if near else ""
    return f"{key} is not an option of seq2seq-{command}{hint}; `seq2seq-{command} --help` lists them"


def check_known(cfg: Any, command: str) -> None:
    """Refuse an option the command's schema does not have, suggesting the nearest name."""
    for key, names in unknown_options(cfg, SCHEMAS[command]):
        raise ConfigError(_not_an_option(key, names, command))


def require(cfg: Any, key: str, example: str) -> None:
    """A mandatory option left out is a one-line error with an example."""
    if OmegaConf.is_missing(cfg, key):
        raise ConfigError(f"{key} is required, e.g. {example}")


def checkpoint_files(key: str, value: Any) -> list[str]:
    """A checkpoint option's files: one path, or a list of different paths (two or more: an
    ensemble, decoded as one model); anything else is a :class:`ConfigError`."""
    files = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, ListConfig)) else []
    if not files or not all(isinstance(f, str) and f for f in files):
        raise ConfigError(
            f"{key}={value!r} is not a checkpoint: give a file (runs/demo/attention/best.pt) or, for an "
            "ensemble, a list of files ('[runs/a/best.pt,runs/b/best.pt]')"
        )
    if len(set(files)) < len(files):
        raise ConfigError(f"{key}={files} names a file twice: an ensemble's models are different files")
    return [str(f) for f in files]


def as_container(cfg: Any) -> Any:
    """A config as OmegaConf holds it: a schema's dataclass instance (from Python) becomes a
    typed DictConfig, so every check reads both the same way."""
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)


def check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    """Refuse ``name=value`` unless ``value`` is one of ``options``, listing them."""
    if value not in options:
        raise ConfigError(f"{name}={value!r} is not valid: choose one of {', '.join(options)}")


# ---------------------------------------------------------------- the sections


def check_model(model: Any) -> None:
    """Reject a model config whose choices or sizes cannot build, naming what would: the choice
    lists, the least sizes, then the widths that must match (heads, attention, bridge, tied
    embeddings). The model constructors check none of it again."""
    check_choice("model.decoder", model.decoder, DECODERS)
    check_choice("model.encoder", model.encoder, ENCODERS)
    check_choice("model.rnn", model.rnn, RNNS)
    check_choice("model.bridge", model.bridge, BRIDGES)
    check_choice("model.attention.score", model.attention.score, SCORES)
    check_choice("model.attention.normalizer", model.attention.normalizer, NORMALIZERS)
    check_choice("model.self_attention.positions", model.self_attention.positions, POSITIONS)
    check_choice("model.self_attention.norm", model.self_attention.norm, NORMS)
    _check_model_sizes(model)
    _check_model_widths(model)


def _check_model_sizes(model: Any) -> None:
    """Each size at least what builds; dropout, param_init and the alignment layer in range."""
    for name, value, least in (
        ("model.embed_size", model.embed_size, 1),
        ("model.hidden_size", model.hidden_size, 2 if model.bidirectional or model.encoder == "self_attention" else 1),
        ("model.encoder_layers", model.encoder_layers, 1),
        ("model.decoder_layers", model.decoder_layers, 1),
        ("model.self_attention.heads", model.self_attention.heads, 1),
        ("model.self_attention.ff_size", model.self_attention.ff_size, 0),
        ("model.self_attention.max_positions", model.self_attention.max_positions, 1),
        ("model.alignment_layer", model.alignment_layer, 0),
    ):
        if value < least:
            raise ConfigError(f"{name}={value} is too small: at least {least}")
    if not 0.0 <= model.dropout < 1.0:
        raise ConfigError(f"model.dropout={model.dropout} must lie in [0, 1)")
    if not model.input_feeding and model.decoder != "luong":
        raise ConfigError(f"model.input_feeding=false applies to model.decoder=luong only (got {model.decoder})")
    if not 0.0 <= model.param_init <= 1.0:
        raise ConfigError(f"model.param_init={model.param_init} must lie in [0, 1] (0: PyTorch's own initialisation)")
    if model.alignment_layer > model.decoder_layers:
        raise ConfigError(
            f"model.alignment_layer={model.alignment_layer}: the decoder has {model.decoder_layers} layers "
            "(count from 1; 0: the last but one)"
        )


def _check_model_widths(model: Any) -> None:
    """The widths that must agree: heads dividing the Transformer layers' size, query and key
    of the same-size scores, a copied bridge, tied embeddings, and a decoder that can see the
    source."""
    transformer = model.encoder == "self_attention" or model.decoder == "transformer"
    if transformer and model.hidden_size % model.self_attention.heads:
        raise ConfigError(
            f"model.hidden_size={model.hidden_size} is not divisible by "
            f"model.self_attention.heads={model.self_attention.heads}"
        )
    if model.encoder == "self_attention":
        key_size = model.hidden_size
    else:
        key_size = (model.hidden_size // 2) * 2 if model.bidirectional else model.hidden_size
    rnn_attention = model.decoder in RNN_ATTENTION_DECODERS
    if rnn_attention and model.attention.score in SAME_SIZE_SCORES and key_size != model.hidden_size:
        raise ConfigError(
            f"{model.attention.score} attention needs query size == key size (got {model.hidden_size} and "
            f"{key_size}): use an even model.hidden_size with a bidirectional encoder"
        )
    if model.bridge == "copy" and key_size != model.hidden_size and model.decoder != "transformer":
        raise ConfigError(f"model.bridge=copy needs the summary C ({key_size}) as wide as model.hidden_size")
    if model.tie_embeddings and model.decoder == "sutskever" and model.embed_size != model.hidden_size:
        raise ConfigError(
            f"model.tie_embeddings with model.decoder={model.decoder} needs model.embed_size == model.hidden_size "
            "(its output layer reads the decoder state)"
        )
    if model.decoder == "sutskever" and model.bridge == "zero":
        raise ConfigError(
            "model.decoder=sutskever reads the source only through the bridge: model.bridge=zero leaves it blind"
        )


def length_buckets(upper: list[int] | tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``[10, 15, 20]`` -> 1-10, 11-15, 16-20, 21+ (``data.length_buckets``)."""
    if not upper or list(upper) != sorted(set(upper)) or upper[0] < 1:
        raise ConfigError(f"data.length_buckets={list(upper)}: give increasing word counts, e.g. [10, 20, 30]")
    lows = [1] + [u + 1 for u in upper]
    return tuple(zip(lows, [*upper, LONGEST], strict=True))


def check_data(data: Any) -> None:
    """The data section's choices (skipped while no corpus is named: eval and gather then use
    the checkpoint's own data)."""
    if OmegaConf.is_missing(data, "name"):
        return
    tok = data.tokenizer
    check_choice("data.tokenizer.model_type", tok.model_type, TOKENIZER_TYPES)
    if tok.joint and tok.tgt_normalization and tok.tgt_normalization != tok.normalization:
        raise ConfigError("a joint tokenizer has one normalization: leave data.tokenizer.tgt_normalization empty")
    check_choice("data.bleu_tokenize", data.bleu_tokenize, ("auto", *BLEU.TOKENIZERS))
    length_buckets(data.length_buckets)
    for name, least in (("sample_size", 1), ("threads", 0)):
        if tok[name] < least:
            raise ConfigError(f"data.tokenizer.{name}={tok[name]} must be >= {least}")
    check_sampling(tok)
    if not data.store_dir:
        raise ConfigError("data.store_dir is empty: the prepared corpus needs a folder")
    corpora = train_splits(data)
    weights = list(data.train_weights)
    if weights and len(weights) != len(corpora):
        raise ConfigError(
            f"data.train_weights={weights} gives {len(weights)} weights for {len(corpora)} training corpora "
            f"({', '.join(corpora)}): give one each, or none"
        )
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise ConfigError(f"data.train_weights={weights}: every weight must be a finite number > 0")


def check_sampling(tok: Any) -> None:
    """Subword regularisation's settings: a sampled segmentation needs a unigram or BPE model."""
    if not 0.0 <= tok.sampling_alpha < math.inf:
        raise ConfigError(f"data.tokenizer.sampling_alpha={tok.sampling_alpha} must be >= 0 (0: off)")
    check_choice("data.tokenizer.sampling_side", tok.sampling_side, SAMPLING_SIDES)
    if tok.sampling_nbest_size == 0 or tok.sampling_nbest_size < -1:
        raise ConfigError(
            f"data.tokenizer.sampling_nbest_size={tok.sampling_nbest_size}: give n >= 1 (the best n) or -1 (all)"
        )
    if tok.sampling_alpha > 0 and tok.model_type not in ("unigram", "bpe"):
        raise ConfigError(
            f"data.tokenizer.sampling_alpha with model_type={tok.model_type}: a {tok.model_type} model has one "
            "segmentation per text; sampling needs model_type=unigram (or bpe: BPE-dropout)"
        )
    if tok.sampling_alpha > 0 and tok.model_type == "bpe" and not tok.sampling_alpha < 1:
        raise ConfigError(
            f"data.tokenizer.sampling_alpha={tok.sampling_alpha} is BPE-dropout's rate with a bpe model: "
            "give one in (0, 1)"
        )


def check_seed(seed: int) -> None:
    """The batches' generator (numpy's) takes seeds from 0."""
    if seed < 0:
        raise ConfigError(f"seed={seed} must be >= 0")


def train_splits(data: Any) -> list[str]:
    """``data.train`` as a list of split names (one name, or several for weighted corpora)."""
    given = data.train
    names = [given] if isinstance(given, str) else list(given) if isinstance(given, Sequence) else None
    if not names or not all(isinstance(n, str) and n.strip() and "/" not in n for n in names):
        raise ConfigError(f"data.train={given!r}: give a split name (train) or a list of them ([europarl,news])")
    if len(set(names)) != len(names):
        raise ConfigError(f"data.train={names} names a corpus twice: give it a weight instead (data.train_weights)")
    return names


def check_trainer(trainer: Any) -> None:
    """Reject a trainer config the loop or the schedule cannot run, before anything is written."""
    check_choice("trainer.lr_schedule", trainer.lr_schedule, LR_SCHEDULES)
    check_choice("trainer.device", trainer.device, DEVICES)
    check_choice("trainer.precision", trainer.precision, PRECISIONS)
    check_choice("trainer.early_stop_metric", trainer.early_stop_metric, EARLY_STOP_METRICS)
    at_least = {"epochs": 1, "batch_size": 1, "eval_batch_size": 1, "max_steps": 0, "max_tokens": 0}
    at_least |= {"lr_patience": 0, "threads": 0, "valid_max_sentences": 0, "keep_checkpoints": 0}
    at_least |= {"warmup_steps": 1, "valid_every": 0, "accumulate": 1, "patience": 0}
    at_least |= {"max_bad_updates": 1, "log_every": 1}
    for name, least in at_least.items():
        if trainer[name] < least:
            raise ConfigError(f"trainer.{name}={trainer[name]} must be >= {least}")
    top = 10.0 if trainer.lr_schedule == "noam" else 1.0  # noam: lr is a factor of hidden_size^-0.5 ...
    if not 0.0 < trainer.lr <= top:  # also refuses nan
        raise ConfigError(f"trainer.lr={trainer.lr} must lie in (0, {top:g}]")
    if not 0.0 <= trainer.min_lr <= trainer.lr:
        raise ConfigError(f"trainer.min_lr={trainer.min_lr} must lie in [0, trainer.lr={trainer.lr}]")
    for name, low, high in (("lr_shrink", 0.0, 1.0), ("lr_anneal", 0.0, 1.0)):
        if not low < trainer[name] <= high:
            raise ConfigError(f"trainer.{name}={trainer[name]} must lie in ({low:g}, {high:g}]")
    if any(i < 0 for i in trainer.attention_examples):
        raise ConfigError(
            f"trainer.attention_examples={list(trainer.attention_examples)}: give valid sentence numbers from 0"
        )
    if not 0.0 <= trainer.adam_beta2 < 1.0:
        raise ConfigError(f"trainer.adam_beta2={trainer.adam_beta2} must lie in [0, 1)")
    if not 0.0 <= trainer.label_smoothing < 1.0:
        raise ConfigError(f"trainer.label_smoothing={trainer.label_smoothing} must lie in [0, 1)")
    if not 0.0 <= trainer.guided_alignment < math.inf:
        raise ConfigError(f"trainer.guided_alignment={trainer.guided_alignment} must be a weight >= 0 (0: off)")
    for name in ("grad_clip", "max_minutes"):
        if not trainer[name] >= 0.0:  # nan too
            raise ConfigError(f"trainer.{name}={trainer[name]} must be >= 0")


def check_search(search: Any, prefix: str = "") -> None:
    """Beam, n-best and length normalisation (``prefix``: ``search.`` where it is a section)."""
    check_choice(f"{prefix}length_norm", search.length_norm, LENGTH_NORMS)
    if search.beam < 1 or search.nbest < 1 or search.nbest > search.beam:
        raise ConfigError(
            f"{prefix}beam={search.beam} {prefix}nbest={search.nbest}: need beam >= 1 and 1 <= nbest <= beam"
        )


def check_decoding(cfg: Any) -> None:
    """The keys of :class:`~seq2seq.config.schemas.DecodingConfig` that eval, translate, gather
    and serve share: the search, the batch size, the device and the precision."""
    check_search(cfg)
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} must be >= 1")
    check_choice("device", cfg.device, DEVICES)
    check_choice("precision", cfg.precision, PRECISIONS)
    check_choice("quantize", cfg.quantize, QUANTIZE)
    if cfg.quantize != "none" and cfg.precision != "fp32":
        raise ConfigError(f"quantize={cfg.quantize} with precision={cfg.precision}: int8 decoding runs in fp32 around")


def compared_models(cfg: Any) -> dict[str, Any]:
    """Each model of a comparison: the shared ``model`` settings with its own on top."""
    result = {}
    for name, own in cfg.models.items():
        try:
            result[name] = OmegaConf.merge(OmegaConf.structured(ModelConfig), cfg.model, own)
        except OmegaConfBaseException as e:
            raise ConfigError(f"models.{name}: {str(e).splitlines()[0]}") from None
    return result


def run_folders(runs: Any) -> list[str]:
    """``runs=FOLDER`` or ``runs=[A,B]`` as a list of folder names."""
    if isinstance(runs, str):
        return [runs]
    if OmegaConf.is_list(runs) or isinstance(runs, list | tuple):
        if runs and all(isinstance(r, str) for r in runs):
            return list(runs)
    raise ConfigError(f"runs={runs}: give a folder (runs=runs/sweep) or a list of them ('runs=[runs/a,runs/b]')")


# ---------------------------------------------------------------- one check per command


def _command_check(command: str) -> Callable[[Callable[[Any], None]], Callable[[Any], Any]]:
    """Make ``body`` the check of ``seq2seq-<command>``: the config, a dataclass instance or a
    DictConfig, becomes a typed DictConfig, is refused if it holds an option the schema lacks,
    goes through ``body`` and is returned."""

    def wrap(body: Callable[[Any], None]) -> Callable[[Any], Any]:
        @functools.wraps(body)
        def check(cfg: Any) -> Any:
            cfg = as_container(cfg)
            check_known(cfg, command)
            body(cfg)
            return cfg

        return check

    return wrap


@_command_check("train")
def check_train(cfg: Any) -> None:
    """Check a seq2seq-train config; returns it as a typed DictConfig."""
    check_seed(cfg.seed)
    check_data(cfg.data)
    check_model(cfg.model)
    check_trainer(cfg.trainer)
    check_search(cfg.search, "search.")
    if cfg.trainer.guided_alignment > 0 and cfg.model.decoder not in ATTENTION_DECODERS:
        raise ConfigError(
            f"trainer.guided_alignment teaches attention where to look; model.decoder={cfg.model.decoder} has "
            "none (a fixed context): use an attention decoder, or trainer.guided_alignment=0"
        )
    if cfg.trainer.guided_alignment > 0 and cfg.data.tokenizer.sampling_alpha > 0:
        raise ConfigError(
            "trainer.guided_alignment with data.tokenizer.sampling_alpha: the gold links are stored on the best "
            "segmentation's pieces, not on sampled ones; use one of the two"
        )
    if cfg.trainer.guided_alignment > 0 and cfg.model.attention.normalizer != "softmax":
        raise ConfigError(
            f"trainer.guided_alignment with model.attention.normalizer={cfg.model.attention.normalizer}: a gold "
            "link on a weight of exactly zero gets no gradient, so the guidance cannot move it; use softmax"
        )


@_command_check("eval")
def check_eval(cfg: Any) -> None:
    """Check a seq2seq-eval config; returns it as a typed DictConfig."""
    require(cfg, "checkpoint", "seq2seq-eval checkpoint=runs/demo/attention/best.pt")
    checkpoint_files("checkpoint", cfg.checkpoint)
    check_data(cfg.data)
    check_decoding(cfg)


@_command_check("translate")
def check_translate(cfg: Any) -> None:
    """Check a seq2seq-translate config; returns it as a typed DictConfig."""
    require(cfg, "checkpoint", "seq2seq-translate checkpoint=runs/demo/attention/best.pt")
    checkpoint_files("checkpoint", cfg.checkpoint)
    check_decoding(cfg)
    check_choice("format", cfg.format, OUTPUT_FORMATS)


@_command_check("compare")
def check_compare(cfg: Any) -> None:
    """Check a seq2seq-compare config; returns it as a typed DictConfig."""
    check_seed(cfg.seed)
    check_data(cfg.data)
    if not cfg.models:
        raise ConfigError("models is empty: name at least one model, e.g. '+models.attention={decoder: bahdanau}'")
    for model in compared_models(cfg).values():
        check_model(model)
    check_trainer(cfg.trainer)
    check_search(cfg)


@_command_check("gather")
def check_gather(cfg: Any) -> None:
    """Check a seq2seq-gather config; returns it as a typed DictConfig."""
    require(cfg, "runs", "seq2seq-gather 'runs=[runs/sweep/2026-11-27_10-00-00]' (or runs=FOLDER)")
    run_folders(cfg.runs)
    check_data(cfg.data)
    check_decoding(cfg)
    if cfg.shortlist:
        raise ConfigError(
            "shortlist= is one model's vocabulary map, and seq2seq-gather decodes several runs: leave it out "
            "(seq2seq-eval takes one)"
        )


@_command_check("average")
def check_average(cfg: Any) -> None:
    """Check a seq2seq-average config; returns it as a typed DictConfig."""
    if (cfg.run is None) == (not cfg.checkpoints):
        raise ConfigError("give either run=FOLDER (with last=N) or checkpoints=[FILE,...], not both or neither")
    if cfg.run is not None and cfg.last < 1:
        raise ConfigError(f"last={cfg.last} must be >= 1")
    if cfg.checkpoints and not cfg.output:
        raise ConfigError("output=FILE is required with checkpoints=[...]")


@_command_check("export")
def check_export(cfg: Any) -> None:
    """Check a seq2seq-export config; returns it as a typed DictConfig."""
    require(cfg, "checkpoint", "seq2seq-export checkpoint=runs/tatoeba-transformer/best.pt output=ct2-model")
    require(cfg, "output", "seq2seq-export checkpoint=runs/tatoeba-transformer/best.pt output=ct2-model")
    checkpoint_files("checkpoint", cfg.checkpoint)
    if not cfg.output:
        raise ConfigError("output= is empty: give the folder to write, e.g. output=ct2-model")
    check_choice("format", cfg.format, EXPORT_FORMATS)
    check_choice("quantization", cfg.quantization, EXPORT_QUANTIZATIONS)


@_command_check("shortlist")
def check_shortlist(cfg: Any) -> None:
    """Check a seq2seq-shortlist config; returns it as a typed DictConfig."""
    require(cfg, "checkpoint", "seq2seq-shortlist checkpoint=runs/tatoeba-transformer/best.pt")
    checkpoint_files("checkpoint", cfg.checkpoint)
    if (cfg.src is None) != (cfg.tgt is None):
        raise ConfigError("give both src= and tgt= (a parallel corpus), or neither (the checkpoint's training data)")
    for key in ("per_source", "iterations", "frequent", "min_count"):
        low = 1 if key in ("per_source", "min_count") else 0
        if cfg[key] < low:
            raise ConfigError(f"{key}={cfg[key]} must be at least {low}")


@_command_check("prepare")
def check_prepare(cfg: Any) -> None:
    """Check a seq2seq-prepare config; returns it as a typed DictConfig."""
    check_data(cfg.data)


@_command_check("serve")
def check_serve(cfg: Any) -> None:
    """Check a seq2seq-serve config; returns it as a typed DictConfig."""
    if cfg.run is not None and (not isinstance(cfg.run, str) or not os.path.isdir(cfg.run)):
        raise ConfigError(f"run={cfg.run}: not a run folder (the folder seq2seq-train wrote)")
    if (cfg.checkpoint is None) == (not cfg.checkpoints):
        raise ConfigError(
            "give checkpoint=FILE or 'checkpoints=[A,B]' (several side by side), e.g. "
            "seq2seq-serve checkpoint=runs/demo/attention/best.pt"
        )
    check_decoding(cfg)
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"port={cfg.port} is not a port: give 1 to 65535")
    for key in ServeConfig.LIMITS:
        if cfg[key] < (0 if key == "max_queue" else 1):
            raise ConfigError(f"{key}={cfg[key]} must be >= {0 if key == 'max_queue' else 1}")
    if cfg.token and (len(cfg.token) < 8 or not cfg.token.isascii() or not cfg.token.isprintable() or " " in cfg.token):
        raise ConfigError("token= must be at least 8 printable ASCII characters without spaces")
    if cfg.beam > cfg.max_beam:
        raise ConfigError(f"beam={cfg.beam} is over max_beam={cfg.max_beam}")
    if cfg.checkpoint is not None:
        checkpoint_files("checkpoint", cfg.checkpoint)
    models = [frozenset(checkpoint_files(f"checkpoints[{i}]", c)) for i, c in enumerate(cfg.checkpoints)]
    if len(set(models)) < len(models):
        raise ConfigError(f"checkpoints={OmegaConf.to_container(cfg.checkpoints)} names a model twice")
    if cfg.shortlist and len(models) > 1:
        raise ConfigError(
            "shortlist= is one model's vocabulary map, and 'checkpoints=[...]' serves several side by side: "
            "leave it out, or serve one model (checkpoint=FILE)"
        )
