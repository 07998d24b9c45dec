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

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seq2seq.errors import ConfigError

DECODERS = ("attention", "fixed_context")
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")


@dataclass
class TokenizerConfig:
    model_type: str = "unigram"  # word | unigram | bpe | char
    src_vocab_size: int = 8000  # a soft limit: a small corpus may give fewer pieces
    tgt_vocab_size: int = 8000
    normalization: str = "nmt_nfkc"  # SentencePiece rule; "identity" keeps text as it is


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
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)


@dataclass
class AttentionConfig:
    score: str = "additive"  # dot | scaled_dot | general | additive | cosine
    size: int = 0  # hidden size of the additive score network; 0: the decoder's hidden size
    temperature: float = 0.1  # cosine only: scores are cos / temperature
    learn_temperature: bool = True  # cosine only


@dataclass
class ModelConfig:
    decoder: str = "attention"  # attention | fixed_context
    embed_size: int = 64
    hidden_size: int = 128  # decoder state; a bidirectional encoder has hidden_size // 2 per direction
    bidirectional: bool = True
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.1
    attention: AttentionConfig = field(default_factory=AttentionConfig)


@dataclass
class TrainerConfig:
    epochs: int = 10
    max_steps: int = 0  # stop after this many updates; 0: no limit
    batch_size: int = 64  # sentences per batch
    max_tokens: int = 0  # also cap (sentences x longest source) per batch; 0: no cap
    lr: float = 1e-3
    grad_clip: float = 1.0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads; 0: torch's default
    eval_batch_size: int = 128
    valid_max_sentences: int = 0  # validate BLEU on the first N valid sentences; 0: all
    progress: bool = True  # tqdm bars
    resume: bool = True  # continue from last.pt when the run folder has one


@dataclass
class SearchConfig:
    max_len_a: float = 1.5  # output at most a * source length + b tokens
    max_len_b: int = 10


@dataclass
class TrainConfig:
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass
class EvalConfig:
    checkpoint: str = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    split: str = "test"
    batch_size: int = 128
    output: str | None = None  # JSON report; default: eval-{data}-{split}.json beside the checkpoint
    device: str = "auto"
    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass
class TranslateConfig:
    checkpoint: str = MISSING
    input: str | None = None  # a file; default: standard input
    output: str | None = None  # a file; default: standard output
    batch_size: int = 64
    attn: bool = True  # show where the model looked (interactive mode)
    device: str = "auto"
    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass
class CompareConfig:
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # what every compared model shares
    models: dict[str, Any] = field(default_factory=dict)  # name -> how it differs from `model`
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    split: str = "test"


def check_choices(cfg: Any) -> None:
    """Reject option values outside their choices, naming the valid ones."""
    from seq2seq.models.attention import SCORES
    from seq2seq.tokenizer import MODEL_TYPES

    models = list(compared_models(cfg).values()) if "models" in cfg else [cfg.model] if "model" in cfg else []
    for model in models:
        _choice("model.decoder", model.decoder, DECODERS)
        _choice("model.attention.score", model.attention.score, SCORES)
    if "data" in cfg:
        _choice("data.tokenizer.model_type", cfg.data.tokenizer.model_type, MODEL_TYPES)
    device = cfg.trainer.device if "trainer" in cfg else cfg.get("device", "auto")
    _choice("device", device, ("auto", "cpu", "cuda"))


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
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="translate_schema", node=TranslateConfig)
    cs.store(name="compare_schema", node=CompareConfig)
