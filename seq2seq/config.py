"""Structured configs: every option, its type and its default, in one place.

The dataclasses are registered in Hydra's ConfigStore as the schemas of the primary configs in
``configs/``; the YAML groups there (``data/``, ``model/``, ``model/attention/``, ``trainer/``)
only pick values. Choices that a type cannot express are checked by :func:`check_choices`,
which names the valid options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seq2seq.errors import ConfigError

ATTENTION_DECODERS = ("bahdanau", "luong")  # a fresh context c_i per target word
FIXED_CONTEXT_DECODERS = ("cho", "sutskever")  # one fixed C for the whole target: "distracted"
DECODERS = ATTENTION_DECODERS + FIXED_CONTEXT_DECODERS
ENCODERS = ("rnn", "self_attention")
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")


@dataclass
class TokenizerConfig:
    model_type: str = "unigram"  # word | unigram | bpe | char
    src_vocab_size: int = 8000  # a soft limit: a small corpus may give fewer pieces
    tgt_vocab_size: int = 8000
    normalization: str = "nmt_nfkc"  # SentencePiece rule; "identity" keeps text as it is
    tgt_normalization: str = ""  # the target side's rule, if not `normalization` (Chinese: identity)
    joint: bool = False  # one model for both languages (src_vocab_size pieces)
    cache_dir: str = ".cache/seq2seq/sentencepiece"  # trained models, by hash of data and settings; "": off


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


@dataclass
class AttentionConfig:
    score: str = "additive"  # dot | scaled_dot | general | additive | cosine
    size: int = 0  # hidden size of the additive score network; 0: the decoder's hidden size
    temperature: float = 0.1  # cosine only: scores are cos / temperature
    learn_temperature: bool = True  # cosine only


@dataclass
class SelfAttentionConfig:
    heads: int = 4  # must divide model.hidden_size
    ff_size: int = 0  # feed-forward inner size; 0: 4 x model.hidden_size
    positions: str = "sinusoidal"  # sinusoidal | learned
    max_positions: int = 1024  # longest source (in pieces) the encoder accepts


@dataclass
class ModelConfig:
    decoder: str = "bahdanau"  # bahdanau | luong (attention) | cho | sutskever (fixed context)
    encoder: str = "rnn"  # rnn | self_attention (Transformer encoder layers)
    rnn: str = "gru"  # gru | lstm: the decoder's cell, and the encoder's when encoder=rnn
    embed_size: int = 64  # with encoder=self_attention the source embeddings are hidden_size wide
    hidden_size: int = 128  # decoder state; a bidirectional encoder has hidden_size // 2 per direction
    bidirectional: bool = True  # encoder=rnn only
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.1
    bridge: str = "linear"  # how the summary C starts the decoder: linear (tanh(W C)) | copy (C) | zero
    tie_embeddings: bool = False  # the output layer reuses the target embeddings (sutskever: embed == hidden)
    input_feeding: bool = True  # luong only: the RNN also reads the previous attentional state ĥ_{i-1}
    param_init: float = 0.0  # > 0: every RNN, linear and embedding weight starts at U(-x, x) (OpenNMT-py's param_init)
    attention: AttentionConfig = field(default_factory=AttentionConfig)  # bahdanau and luong only
    self_attention: SelfAttentionConfig = field(default_factory=SelfAttentionConfig)  # encoder=self_attention only


def uses_attention(decoder: str) -> bool:
    """Whether ``model.decoder`` is an attention decoder (a fresh context per target word)."""
    return decoder in ATTENTION_DECODERS


def saved_model_config(model: Any) -> Any:
    """A checkpoint's model section over the schema's defaults: options added after it was
    written take their defaults, which rebuild the model it was trained as."""
    return OmegaConf.merge(OmegaConf.structured(ModelConfig), model)


def describe_model(model: Any) -> str:
    """A short name of the architecture, e.g. ``luong/general decoder, 1-layer bi-lstm encoder``."""
    decoder = f"{model.decoder}/{model.attention.score}" if uses_attention(model.decoder) else model.decoder
    if model.encoder == "self_attention":
        encoder = f"{model.encoder_layers}-layer self-attention ({model.self_attention.heads} heads)"
    else:
        encoder = f"{model.encoder_layers}-layer {'bi-' if model.bidirectional else ''}{model.rnn}"
    feeding = ", no input feeding" if model.decoder == "luong" and not model.input_feeding else ""
    return f"{decoder} decoder ({model.decoder_layers}-layer {model.rnn}{feeding}), {encoder} encoder"


def check_model(model: Any) -> None:
    """Reject a model config whose choices or sizes cannot build, naming what would."""
    from seq2seq.models.attention import SCORES
    from seq2seq.models.decoder import BRIDGES
    from seq2seq.models.encoder import POSITIONS, RNNS

    _choice("model.decoder", model.decoder, DECODERS)
    _choice("model.encoder", model.encoder, ENCODERS)
    _choice("model.rnn", model.rnn, RNNS)
    _choice("model.bridge", model.bridge, BRIDGES)
    _choice("model.attention.score", model.attention.score, SCORES)
    _choice("model.self_attention.positions", model.self_attention.positions, POSITIONS)
    for name, value, least in (
        ("model.embed_size", model.embed_size, 1),
        ("model.hidden_size", model.hidden_size, 2 if model.bidirectional or model.encoder == "self_attention" else 1),
        ("model.encoder_layers", model.encoder_layers, 1),
        ("model.decoder_layers", model.decoder_layers, 1),
        ("model.self_attention.heads", model.self_attention.heads, 1),
        ("model.self_attention.ff_size", model.self_attention.ff_size, 0),
        ("model.self_attention.max_positions", model.self_attention.max_positions, 1),
    ):
        if value < least:
            raise ConfigError(f"{name}={value} is too small: at least {least}")
    if not 0.0 <= model.dropout < 1.0:
        raise ConfigError(f"model.dropout={model.dropout} must lie in [0, 1)")
    if not model.input_feeding and model.decoder != "luong":
        raise ConfigError(f"model.input_feeding=false applies to model.decoder=luong only (got {model.decoder})")
    if not 0.0 <= model.param_init <= 1.0:
        raise ConfigError(f"model.param_init={model.param_init} must lie in [0, 1] (0: PyTorch's own initialisation)")
    if model.encoder == "self_attention":
        key_size = model.hidden_size
        if model.hidden_size % model.self_attention.heads:
            raise ConfigError(
                f"model.hidden_size={model.hidden_size} is not divisible by "
                f"model.self_attention.heads={model.self_attention.heads}"
            )
    else:
        key_size = (model.hidden_size // 2) * 2 if model.bidirectional else model.hidden_size
    if model.decoder in ATTENTION_DECODERS and model.attention.score in ("dot", "scaled_dot", "cosine"):
        if key_size != model.hidden_size:
            raise ConfigError(
                f"{model.attention.score} attention needs query size == key size (got {model.hidden_size} and "
                f"{key_size}): use an even model.hidden_size with a bidirectional encoder"
            )
    if model.bridge == "copy" and key_size != model.hidden_size:
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


@dataclass
class TrainerConfig:
    epochs: int = 10
    max_steps: int = 0  # stop after this many updates; 0: no limit
    batch_size: int = 64  # sentences per batch
    max_tokens: int = 0  # also cap (sentences x longest side, source or target) per batch; 0: no cap
    max_minutes: float = 0.0  # stop after this much training time (validation not counted); 0: no limit
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | plateau: lr *= lr_shrink when valid loss stops falling |
    # anneal: constant, then linear decay to min_lr over the last lr_anneal of the training budget
    lr_shrink: float = 0.5
    lr_patience: int = 0  # epochs without a better valid loss before shrinking
    min_lr: float = 1e-5
    lr_anneal: float = 0.2  # anneal: the fraction of the budget (epochs, max_steps, max_minutes) spent decaying
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads; 0: torch's default
    eval_batch_size: int = 128
    valid_max_sentences: int = 0  # validate BLEU on the first N valid sentences; 0: all
    progress: bool = True  # tqdm bars
    resume: bool = True  # continue from last.pt when the run folder has one
    keep_checkpoints: int = 0  # also keep the weights after each of the last N validations
    # (stepNNNNNNNN.pt), for seq2seq-average; 0: none


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
    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass
class EvalConfig(SearchConfig):
    checkpoint: str = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    split: str = ""  # a split name (file prefix); default: the data's test split (data.test)
    batch_size: int = 128
    output: str | None = None  # JSON report; default: eval-{data}-{split}[-beamK].json beside the checkpoint
    device: str = "auto"


@dataclass
class TranslateConfig(SearchConfig):
    checkpoint: str = MISSING
    input: str | None = None  # a file; default: standard input
    output: str | None = None  # a file; default: standard output
    batch_size: int = 64
    attn: bool = True  # show where the model looked (interactive mode)
    format: str = "text"  # batch mode: text (one line each) | json (n-best, scores, attention)
    device: str = "auto"


@dataclass
class CompareConfig(SearchConfig):
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # what every compared model shares
    models: dict[str, Any] = field(default_factory=dict)  # name -> how it differs from `model`
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    search: SearchConfig = field(default_factory=SearchConfig)  # validation decoding while training
    split: str = ""  # a split name (file prefix); default: the data's test split (data.test)


@dataclass
class AverageConfig:
    run: str | None = None  # a run folder trained with trainer.keep_checkpoints: average its newest `last`
    last: int = 5  # how many of the run's kept checkpoints (stepNNNNNNNN.pt) to average
    checkpoints: list[str] = field(default_factory=list)  # or these checkpoint files, instead of `run`
    output: str | None = None  # default: RUN/averaged.pt (with `run`), else required


@dataclass
class GatherConfig(SearchConfig):
    runs: list[str] = MISSING  # run folders, or folders holding them (searched for best.pt + last.pt)
    data: DataConfig = field(default_factory=DataConfig)  # default: the first run's data
    split: str = ""  # a split name (file prefix); default: the data's test split (data.test)
    batch_size: int = 128
    device: str = "auto"
    checkpoints: list[str] = field(default_factory=lambda: ["best.pt"])  # file names: in each run folder,
    # the first of these that exists is evaluated ([averaged.pt,best.pt]: the average where one was made)


def check_trainer(trainer: Any) -> None:
    """Reject a trainer config the schedule cannot run (the CLI and :class:`Trainer` both ask)."""
    _choice("trainer.lr_schedule", trainer.lr_schedule, ("constant", "plateau", "anneal"))
    if not 0.0 < trainer.lr_anneal <= 1.0:
        raise ConfigError(f"trainer.lr_anneal={trainer.lr_anneal} must lie in (0, 1]")
    if trainer.keep_checkpoints < 0:
        raise ConfigError(f"trainer.keep_checkpoints={trainer.keep_checkpoints} must be >= 0")


def check_choices(cfg: Any) -> None:
    """Reject option values outside their choices, naming the valid ones."""
    from seq2seq.tokenizer import MODEL_TYPES

    models = list(compared_models(cfg).values()) if "models" in cfg else [cfg.model] if "model" in cfg else []
    for model in models:
        check_model(model)
    if "data" in cfg and not OmegaConf.is_missing(cfg.data, "name"):
        _choice("data.tokenizer.model_type", cfg.data.tokenizer.model_type, MODEL_TYPES)
        from sacrebleu.metrics.bleu import _TOKENIZERS

        _choice("data.bleu_tokenize", cfg.data.bleu_tokenize, ("auto", *_TOKENIZERS))
        from seq2seq.evaluate import length_buckets

        length_buckets(cfg.data.length_buckets)
    if "trainer" in cfg:
        check_trainer(cfg.trainer)
    device = cfg.trainer.device if "trainer" in cfg else cfg.get("device", "auto")
    _choice("device", device, ("auto", "cpu", "cuda"))
    for search in (cfg, cfg.get("search")):
        if search is not None and "length_norm" in search:
            _choice("length_norm", search.length_norm, ("gnmt", "length", "none"))
            if search.beam < 1 or search.nbest < 1 or search.nbest > max(search.beam, 1):
                raise ConfigError(f"beam={search.beam} nbest={search.nbest}: need beam >= 1 and 1 <= nbest <= beam")
    if "format" in cfg:
        _choice("format", cfg.format, ("text", "json"))


def compared_models(cfg: Any) -> dict[str, ModelConfig]:
    """Each model of a comparison: the shared ``model`` settings with its own on top."""
    result = {}
    for name, own in cfg.models.items():
        try:
            result[name] = OmegaConf.merge(OmegaConf.structured(ModelConfig), cfg.model, own)
        except OmegaConfBaseException as e:
            raise ConfigError(f"models.{name}: {str(e).splitlines()[0]}") from None
    return result  # type: ignore[return-value]


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{name}={value!r} is not valid: choose one of {', '.join(options)}")


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore  # only the command-line entry points need Hydra

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="translate_schema", node=TranslateConfig)
    cs.store(name="compare_schema", node=CompareConfig)
    cs.store(name="gather_schema", node=GatherConfig)
    cs.store(name="average_schema", node=AverageConfig)
    if not OmegaConf.has_resolver("folder_name"):  # a group override (model/attention=dot) has a slash
        OmegaConf.register_new_resolver("folder_name", lambda text: str(text).replace("/", "."))
