"""Structured configs: every option, its type and its default, in one place, and one check per schema.

The dataclasses are registered in Hydra's ConfigStore (:func:`register_configs`) as the schemas of
the primary configs in the config folder (:func:`config_dir`); the YAML groups there (``data/``,
``model/``, ``model/attention/``, ``trainer/``) only pick values. What a type cannot express is
checked by the ``check_*`` function of each schema, which names the valid options; the library
constructors trust a checked config.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from sacrebleu.metrics.bleu import BLEU

from seq2seq.constants import (
    ATTENTION_DECODERS,
    BRIDGES,
    DECODERS,
    DEVICES,
    EARLY_STOP_METRICS,
    ENCODERS,
    LENGTH_NORMS,
    LR_SCHEDULES,
    NORMS,
    OUTPUT_FORMATS,
    POSITIONS,
    PRECISIONS,
    RNN_ATTENTION_DECODERS,
    RNNS,
    SAME_SIZE_SCORES,
    SCORES,
    TOKENIZER_TYPES,
)
from seq2seq.errors import ConfigError

LONGEST = 10_000  # the open end of the last length bucket ("41+")


def config_dir() -> Path:
    """The folder of the commands' YAML configs: inside the installed package (a wheel ships the
    project's top-level ``configs/`` as ``seq2seq/configs``), else the checkout's ``configs/``
    beside the package (an editable install)."""
    package = Path(__file__).resolve().parent
    shipped = package / "configs"
    return shipped if shipped.is_dir() else package.parent / "configs"


@dataclass
class TokenizerConfig:
    model_type: str = "unigram"  # word | unigram | bpe | char
    src_vocab_size: int = 8000  # a soft limit: a small corpus may give fewer pieces
    tgt_vocab_size: int = 8000
    normalization: str = "nmt_nfkc"  # SentencePiece rule; "identity" keeps text as it is
    tgt_normalization: str = ""  # the target side's rule, if not `normalization` (Chinese: identity)
    joint: bool = False  # one model for both languages (src_vocab_size pieces)
    cache_dir: str = ".cache/seq2seq/sentencepiece"  # trained models, by hash of data and settings; "": off

    RESUME_MAY_CHANGE: ClassVar[tuple[str, ...]] = ("cache_dir",)


@dataclass
class DataConfig:
    name: str = MISSING
    root: str = MISSING  # folder with {split}.{lang} files (and {split}.align for gold links)
    src_lang: str = "en"
    tgt_lang: str = "zh"
    train: str = "train"
    valid: str = "valid"
    test: str = "test"
    bleu_tokenize: str = "auto"  # sacreBLEU tokenizer; auto: "zh" for Chinese targets, else "13a"
    max_len: int = 0  # training pairs with a side longer than this many tokens are left out (counted); 0: none
    length_buckets: list[int] = field(default_factory=lambda: [10, 20, 30, 40])  # BLEU by source length: 1-10, ..., 41+
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    # what a resumed run may change: they do not touch the updates it makes
    RESUME_MAY_CHANGE: ClassVar[tuple[str, ...]] = ("name", "valid", "test", "bleu_tokenize", "length_buckets")


@dataclass
class AttentionConfig:
    score: str = "additive"  # dot | scaled_dot | general | additive | cosine
    size: int = 0  # hidden size of the additive score network; 0: the decoder's hidden size
    temperature: float = 0.1  # cosine only: scores are cos / temperature
    learn_temperature: bool = True  # cosine only


@dataclass
class SelfAttentionConfig:  # the Transformer layers: encoder=self_attention and decoder=transformer
    heads: int = 4  # must divide model.hidden_size
    ff_size: int = 0  # feed-forward inner size; 0: 4 x model.hidden_size
    positions: str = "sinusoidal"  # sinusoidal | learned
    max_positions: int = 1024  # longest source (and target) in pieces the layers accept
    norm: str = "pre"  # pre: LayerNorm before each sublayer (+ one at the end) | post: after the residual sum


@dataclass
class ModelConfig:
    decoder: str = "bahdanau"  # bahdanau | luong | transformer (attention) | cho | sutskever (fixed context)
    encoder: str = "rnn"  # rnn | self_attention (Transformer encoder layers)
    rnn: str = "gru"  # gru | lstm: the RNN decoders' cell, and the encoder's when encoder=rnn
    embed_size: int = 64  # Transformer layers (encoder=self_attention, decoder=transformer) use hidden_size
    hidden_size: int = 128  # decoder state; a bidirectional encoder has hidden_size // 2 per direction
    bidirectional: bool = True  # encoder=rnn only
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.1
    bridge: str = "linear"  # how the summary C starts the decoder: linear (tanh(W C)) | copy (C) | zero
    tie_embeddings: bool = False  # the output layer reuses the target embeddings (sutskever: embed == hidden)
    input_feeding: bool = True  # luong only: the RNN also reads the previous attentional state ĥ_{i-1}
    param_init: float = 0.0  # > 0: every RNN, linear and embedding weight starts at U(-x, x) (OpenNMT-py's param_init)
    attention: AttentionConfig = field(default_factory=AttentionConfig)  # bahdanau and luong only (the
    # Transformer decoder's attention is multi-head scaled dot, set in self_attention)
    self_attention: SelfAttentionConfig = field(default_factory=SelfAttentionConfig)  # Transformer layers only
    alignment_layer: int = 0  # decoder=transformer: whose cross-attention (heads averaged) is "where it looked",
    # counted from 1; 0: the last but one (the only one with one layer)


@dataclass
class TrainerConfig:
    epochs: int = 10
    max_steps: int = 0  # stop after this many updates; 0: no limit
    batch_size: int = 64  # sentences per batch
    max_tokens: int = 0  # also cap (sentences x longest side, source or target) per batch; 0: no cap
    max_minutes: float = 0.0  # stop after this much training time (validation not counted); 0: no limit
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | plateau: lr *= lr_shrink when valid loss stops falling |
    # anneal: constant, then linear decay to min_lr over the last lr_anneal of the training budget |
    # inverse_sqrt: linear warm-up to lr over warmup_steps, then lr * sqrt(warmup_steps / step) (fairseq) |
    # noam: lr * hidden_size^-0.5 * min(step^-0.5, step * warmup_steps^-1.5), lr the factor (Vaswani et al.)
    warmup_steps: int = 4000  # inverse_sqrt and noam: updates of linear warm-up
    adam_beta2: float = 0.999  # Adam's second-moment decay (Transformers: 0.98)
    lr_shrink: float = 0.5
    lr_patience: int = 0  # epochs without a better valid loss before shrinking
    min_lr: float = 1e-5
    lr_anneal: float = 0.2  # anneal: the fraction of the budget (epochs, max_steps, max_minutes) spent decaying
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads; 0: the cores other processes leave free, followed while training
    eval_batch_size: int = 128
    valid_max_sentences: int = 0  # validate BLEU on the first N valid sentences; 0: all
    progress: bool = True  # tqdm bars
    resume: bool = True  # continue from last.pt when the run folder has one
    keep_checkpoints: int = 0  # also keep the weights after each of the last N validations
    # (stepNNNNNNNN.pt), for seq2seq-average; 0: none
    valid_every: int = 0  # also validate and save every N updates (mid-epoch); 0: once per epoch
    accumulate: int = 1  # batches per update (gradient accumulation): N x batch_size acts as one batch
    precision: str = "fp32"  # fp32 | bf16 (CPU with bf16 support, or CUDA) | fp16 (CUDA, with a grad scaler)
    patience: int = 0  # early stopping: stop after N validations without a better early_stop_metric; 0: off
    early_stop_metric: str = "valid_bleu"  # valid_bleu | valid_loss
    max_bad_updates: int = 10  # stop after N updates in a row with a non-finite loss or gradient (each is skipped)
    tensorboard: bool = False  # also log to RUN/tensorboard (pip install 'seq2seq-attention[tensorboard]')
    log_every: int = 100  # tensorboard: training loss, lr, tokens/s and gradient norm every N updates
    attention_examples: list[int] = field(default_factory=list)  # valid sentences (from 0) whose attention
    # heatmap is saved at every validation, as RUN/attention/stepNNNNNNNN-I.png: watch attention being learned

    # what a resumed run may change: the budget and how it runs, not the updates it makes
    RESUME_MAY_CHANGE: ClassVar[tuple[str, ...]] = (
        "epochs", "max_steps", "max_minutes", "device", "threads", "eval_batch_size", "valid_max_sentences",
        "progress", "resume", "keep_checkpoints", "patience", "max_bad_updates", "tensorboard", "log_every",
        "attention_examples",
    )  # fmt: skip


@dataclass
class SearchConfig:
    beam: int = 1  # 1: greedy search
    length_penalty: float = 1.0  # α: a hypothesis ranks by log-prob / penalty(length)
    length_norm: str = "gnmt"  # gnmt: ((5 + |Y|) / 6) ** α | length: |Y| ** α | none
    nbest: int = 1  # hypotheses kept per sentence (beam search)
    max_len_a: float = 1.5  # output at most a * source length + b tokens (then EOS)
    max_len_b: int = 10
    min_len: int = 0  # no EOS before this many tokens


@dataclass
class TrainConfig:
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    search: SearchConfig = field(default_factory=SearchConfig)  # validation decoding while training


@dataclass
class EvalConfig(SearchConfig):
    checkpoint: str = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    split: str = ""  # a split name (file prefix); default: the data's test split (data.test)
    batch_size: int = 128
    output: str | None = None  # JSON report; default: beside the checkpoint, named after data, split, file, search
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 (a CPU with bf16 instructions, or CUDA) | fp16 (CUDA): autocast


@dataclass
class TranslateConfig(SearchConfig):
    checkpoint: str = MISSING
    input: str | None = None  # a file; default: standard input
    output: str | None = None  # a file; default: standard output
    batch_size: int = 64
    attn: bool = True  # show where the model looked (interactive mode)
    format: str = "text"  # batch mode: text (one line each) | json (n-best, scores, attention)
    attention_layers: bool = False  # format=json: also every layer's self- and cross-attention, heads averaged
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 (a CPU with bf16 instructions, or CUDA) | fp16 (CUDA): autocast


@dataclass
class CompareConfig(SearchConfig):  # the search keys: how the test split is decoded for the report
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # what every compared model shares
    models: dict[str, Any] = field(default_factory=dict)  # name -> how it differs from `model`
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # the models validate greedily
    split: str = ""  # a split name (file prefix); default: the data's test split (data.test)


@dataclass
class AverageConfig:
    run: str | None = None  # a run folder trained with trainer.keep_checkpoints: average its newest `last`
    last: int = 5  # how many of the run's kept checkpoints (stepNNNNNNNN.pt) to average
    checkpoints: list[str] = field(default_factory=list)  # or these checkpoint files, instead of `run`
    output: str | None = None  # default: RUN/averaged.pt (with `run`), else required


@dataclass
class GatherConfig(SearchConfig):
    runs: Any = MISSING  # a folder, or a list of them: run folders or folders holding them (best.pt + last.pt)
    data: DataConfig = field(default_factory=DataConfig)  # default: the first run's data
    split: str = ""  # a split name (file prefix); default: the data's test split (data.test)
    batch_size: int = 128
    device: str = "auto"
    checkpoints: list[str] = field(default_factory=lambda: ["best.pt"])  # file names: in each run folder,
    # the first of these that exists is evaluated ([averaged.pt,best.pt]: the average where one was made)


@dataclass
class ServeConfig(SearchConfig):  # the search keys: a request's defaults (it may set beam and nbest)
    checkpoint: str | None = None  # one model
    checkpoints: list[str] = field(default_factory=list)  # or several, side by side on the page
    host: str = "127.0.0.1"  # this machine only; 0.0.0.0 serves every network it is on
    port: int = 8000
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 | fp16, as seq2seq-translate's
    batch_size: int = 64
    max_sentences: int = 32  # per request
    max_chars: int = 1000  # per sentence
    max_beam: int = 16
    max_body_bytes: int = 65536  # a request body over this is refused (413)


SCHEMAS: dict[str, type] = {
    "train": TrainConfig,
    "eval": EvalConfig,
    "translate": TranslateConfig,
    "compare": CompareConfig,
    "gather": GatherConfig,
    "average": AverageConfig,
    "serve": ServeConfig,
}  # the command (and its primary config's name) -> its schema


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


def saved_model_config(model: Any) -> Any:
    """A checkpoint's model section over the schema's defaults: options added after it was
    written take their defaults, which rebuild the model it was trained as."""
    return OmegaConf.merge(OmegaConf.structured(ModelConfig), model)


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


def compared_models(cfg: Any) -> dict[str, Any]:
    """Each model of a comparison: the shared ``model`` settings with its own on top."""
    result = {}
    for name, own in cfg.models.items():
        try:
            result[name] = OmegaConf.merge(OmegaConf.structured(ModelConfig), cfg.model, own)
        except OmegaConfBaseException as e:
            raise ConfigError(f"models.{name}: {str(e).splitlines()[0]}") from None
    return result


def length_buckets(upper: list[int] | tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``[10, 15, 20]`` -> 1-10, 11-15, 16-20, 21+ (``data.length_buckets``)."""
    if not upper or list(upper) != sorted(set(upper)) or upper[0] < 1:
        raise ConfigError(f"data.length_buckets={list(upper)}: give increasing word counts, e.g. [10, 20, 30]")
    lows = [1] + [u + 1 for u in upper]
    return tuple(zip(lows, [*upper, LONGEST], strict=True))


# ---------------------------------------------------------------- one check per schema


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{name}={value!r} is not valid: choose one of {', '.join(options)}")


def _nested_schema(f: dataclasses.Field) -> type | None:
    """The dataclass a field holds (``data``, ``model.attention``, ...), or None for a plain value."""
    if f.default_factory is dataclasses.MISSING:
        return None
    value = f.default_factory()
    return type(value) if dataclasses.is_dataclass(value) else None


def unknown_options(cfg: Any, schema: type, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Keys of ``cfg`` that ``schema`` does not have (Hydra's ``+key=value`` adds them even to a
    typed config), each with the schema's names at that level."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    found = []
    for key in cfg:
        if key not in fields:
            found.append((f"{prefix}{key}", list(fields)))
            continue
        nested = _nested_schema(fields[key])
        if nested is not None and not OmegaConf.is_missing(cfg, key) and isinstance(cfg[key], DictConfig):
            found += unknown_options(cfg[key], nested, f"{prefix}{key}.")
    return found


def as_container(cfg: Any) -> Any:
    """A config as OmegaConf holds it: a schema's dataclass instance (from Python) becomes a
    typed DictConfig, so every check reads both the same way."""
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)


def check_known(cfg: Any, command: str) -> None:
    """Refuse an option the command's schema does not have, suggesting the nearest name."""
    for key, names in unknown_options(cfg, SCHEMAS[command]):
        parent, _, name = key.rpartition(".")
        near = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {parent + '.' if parent else ''}{near[0]}?)" if near else ""
        raise ConfigError(f"{key} is not an option of seq2seq-{command}{hint}; `seq2seq-{command} --help` lists them")


def require(cfg: Any, key: str, example: str) -> None:
    """A mandatory option left out is a one-line error with an example."""
    if OmegaConf.is_missing(cfg, key):
        raise ConfigError(f"{key} is required, e.g. {example}")


def check_model(model: Any) -> None:
    """Reject a model config whose choices or sizes cannot build, naming what would."""
    _choice("model.decoder", model.decoder, DECODERS)
    _choice("model.encoder", model.encoder, ENCODERS)
    _choice("model.rnn", model.rnn, RNNS)
    _choice("model.bridge", model.bridge, BRIDGES)
    _choice("model.attention.score", model.attention.score, SCORES)
    _choice("model.self_attention.positions", model.self_attention.positions, POSITIONS)
    _choice("model.self_attention.norm", model.self_attention.norm, NORMS)
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


def check_data(data: Any) -> None:
    """The data section's choices (skipped while no corpus is named: eval and gather then use
    the checkpoint's own data)."""
    if OmegaConf.is_missing(data, "name"):
        return
    tok = data.tokenizer
    _choice("data.tokenizer.model_type", tok.model_type, TOKENIZER_TYPES)
    if tok.joint and tok.tgt_normalization and tok.tgt_normalization != tok.normalization:
        raise ConfigError("a joint tokenizer has one normalization: leave data.tokenizer.tgt_normalization empty")
    _choice("data.bleu_tokenize", data.bleu_tokenize, ("auto", *BLEU.TOKENIZERS))
    length_buckets(data.length_buckets)


def check_trainer(trainer: Any) -> None:
    """Reject a trainer config the loop or the schedule cannot run, before anything is written."""
    _choice("trainer.lr_schedule", trainer.lr_schedule, LR_SCHEDULES)
    _choice("trainer.device", trainer.device, DEVICES)
    _choice("trainer.precision", trainer.precision, PRECISIONS)
    _choice("trainer.early_stop_metric", trainer.early_stop_metric, EARLY_STOP_METRICS)
    at_least = {"epochs": 1, "batch_size": 1, "eval_batch_size": 1, "max_steps": 0, "max_tokens": 0}
    at_least |= {"lr_patience": 0, "threads": 0, "valid_max_sentences": 0, "keep_checkpoints": 0}
    at_least |= {
        "warmup_steps": 1,
        "valid_every": 0,
        "accumulate": 1,
        "patience": 0,
        "max_bad_updates": 1,
        "log_every": 1,
    }
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
    for name in ("grad_clip", "max_minutes"):
        if not trainer[name] >= 0.0:  # nan too
            raise ConfigError(f"trainer.{name}={trainer[name]} must be >= 0")


def check_search(search: Any, prefix: str = "") -> None:
    """Beam, n-best and length normalisation (``prefix``: ``search.`` where it is a section)."""
    _choice(f"{prefix}length_norm", search.length_norm, LENGTH_NORMS)
    if search.beam < 1 or search.nbest < 1 or search.nbest > search.beam:
        raise ConfigError(
            f"{prefix}beam={search.beam} {prefix}nbest={search.nbest}: need beam >= 1 and 1 <= nbest <= beam"
        )


def check_train(cfg: Any) -> Any:
    """Check a seq2seq-train config; returns it as a typed DictConfig."""
    cfg = as_container(cfg)
    check_known(cfg, "train")
    check_data(cfg.data)
    check_model(cfg.model)
    check_trainer(cfg.trainer)
    check_search(cfg.search, "search.")
    return cfg


def check_eval(cfg: Any) -> Any:
    """Check a seq2seq-eval config; returns it as a typed DictConfig."""
    cfg = as_container(cfg)
    check_known(cfg, "eval")
    require(cfg, "checkpoint", "seq2seq-eval checkpoint=runs/demo/attention/best.pt")
    check_data(cfg.data)
    check_search(cfg)
    _choice("device", cfg.device, DEVICES)
    _choice("precision", cfg.precision, PRECISIONS)
    return cfg


def check_translate(cfg: Any) -> Any:
    """Check a seq2seq-translate config; returns it as a typed DictConfig."""
    cfg = as_container(cfg)
    check_known(cfg, "translate")
    require(cfg, "checkpoint", "seq2seq-translate checkpoint=runs/demo/attention/best.pt")
    check_search(cfg)
    _choice("device", cfg.device, DEVICES)
    _choice("precision", cfg.precision, PRECISIONS)
    _choice("format", cfg.format, OUTPUT_FORMATS)
    return cfg


def check_compare(cfg: Any) -> Any:
    """Check a seq2seq-compare config; returns it as a typed DictConfig."""
    cfg = as_container(cfg)
    check_known(cfg, "compare")
    check_data(cfg.data)
    if not cfg.models:
        raise ConfigError("models is empty: name at least one model, e.g. '+models.attention={decoder: bahdanau}'")
    for model in compared_models(cfg).values():
        check_model(model)
    check_trainer(cfg.trainer)
    check_search(cfg)
    return cfg


def check_gather(cfg: Any) -> Any:
    """Check a seq2seq-gather config; returns it as a typed DictConfig."""
    cfg = as_container(cfg)
    check_known(cfg, "gather")
    require(cfg, "runs", "seq2seq-gather 'runs=[runs/sweep/2026-11-27_10-00-00]' (or runs=FOLDER)")
    run_folders(cfg.runs)
    check_data(cfg.data)
    check_search(cfg)
    _choice("device", cfg.device, DEVICES)
    return cfg


def check_average(cfg: Any) -> Any:
    """Check a seq2seq-average config; returns it as a typed DictConfig."""
    cfg = as_container(cfg)
    check_known(cfg, "average")
    if (cfg.run is None) == (not cfg.checkpoints):
        raise ConfigError("give either run=FOLDER (with last=N) or checkpoints=[FILE,...], not both or neither")
    if cfg.run is not None and cfg.last < 1:
        raise ConfigError(f"last={cfg.last} must be >= 1")
    if cfg.checkpoints and not cfg.output:
        raise ConfigError("output=FILE is required with checkpoints=[...]")
    return cfg


def check_serve(cfg: Any) -> Any:
    """Check a seq2seq-serve config; returns it as a typed DictConfig."""
    cfg = as_container(cfg)
    check_known(cfg, "serve")
    if (cfg.checkpoint is None) == (not cfg.checkpoints):
        raise ConfigError(
            "give checkpoint=FILE or 'checkpoints=[A,B]' (several side by side), e.g. "
            "seq2seq-serve checkpoint=runs/demo/attention/best.pt"
        )
    check_search(cfg)
    _choice("device", cfg.device, DEVICES)
    _choice("precision", cfg.precision, PRECISIONS)
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"port={cfg.port} is not a port: give 1 to 65535")
    for key in ("batch_size", "max_sentences", "max_chars", "max_beam", "max_body_bytes"):
        if cfg[key] < 1:
            raise ConfigError(f"{key}={cfg[key]} must be >= 1")
    if cfg.beam > cfg.max_beam:
        raise ConfigError(f"beam={cfg.beam} is over max_beam={cfg.max_beam}")
    if len(set(cfg.checkpoints)) < len(cfg.checkpoints):
        raise ConfigError(f"checkpoints={list(cfg.checkpoints)} names a file twice")
    return cfg


def run_folders(runs: Any) -> list[str]:
    """``runs=FOLDER`` or ``runs=[A,B]`` as a list of folder names."""
    if isinstance(runs, str):
        return [runs]
    if OmegaConf.is_list(runs) or isinstance(runs, list | tuple):
        if runs and all(isinstance(r, str) for r in runs):
            return list(runs)
    raise ConfigError(f"runs={runs}: give a folder (runs=runs/sweep) or a list of them ('runs=[runs/a,runs/b]')")


# ---------------------------------------------------------------- resuming


def resume_mismatch(
    saved: dict[str, Any], now: dict[str, Any], schema: type = TrainConfig, prefix: str = ""
) -> str | None:
    """The first option that differs between a saved run's config and this one although a resumed
    run must keep it (every option but those a schema lists in ``RESUME_MAY_CHANGE``), or None.
    Both are plain dicts of a :class:`TrainConfig`; see :func:`with_defaults` for old saved ones."""
    for f in dataclasses.fields(schema):
        if f.name in getattr(schema, "RESUME_MAY_CHANGE", ()):
            continue
        old, new, nested = saved.get(f.name), now.get(f.name), _nested_schema(f)
        if nested is not None and isinstance(old, dict) and isinstance(new, dict):
            found = resume_mismatch(old, new, nested, f"{prefix}{f.name}.")
            if found:
                return found
        elif old != new:
            return f"{prefix}{f.name}"
    return None


def known_options(saved: Any, schema: type) -> Any:
    """``saved`` without the keys ``schema`` lacks (an older version let ``+key=value`` into a
    run's config; they never changed what it trained)."""
    if not isinstance(saved, dict):
        return saved
    fields = {f.name: f for f in dataclasses.fields(schema)}
    kept = {}
    for key, value in saved.items():
        if key in fields:
            nested = _nested_schema(fields[key])
            kept[key] = known_options(value, nested) if nested is not None else value
    return kept


def with_defaults(saved: dict[str, Any], schema: type = TrainConfig) -> dict[str, Any] | None:
    """A saved config with the defaults of options added since it was written (they give the
    same run) and without keys the schema lacks, or None when a value does not fit its type."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), known_options(saved, schema))
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException:
        return None


# ---------------------------------------------------------------- Hydra


def folder_name(overrides: str) -> str:
    """A multirun job's folder name from its overrides (``model:luong+model.attention:dot``), with
    only characters that an override carries unquoted, so the folder's paths can be passed back
    as ``checkpoint=...``; a group override's slash becomes a dot."""
    return re.sub(r"[^A-Za-z0-9_.:+\-]", "_", str(overrides).replace("/", "."))


def register_configs() -> None:
    """The schemas (``train_schema``, ...) in Hydra's ConfigStore and the ``folder_name``
    resolver. Called by the entry points and the Python API before composing; idempotent."""
    store = ConfigStore.instance()
    for command, schema in SCHEMAS.items():
        store.store(name=f"{command}_schema", node=schema)
    if not OmegaConf.has_resolver("folder_name"):
        OmegaConf.register_new_resolver("folder_name", folder_name)
