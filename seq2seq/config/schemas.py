"""The schemas: every option of every command, its type and its default, written once.

Each command's primary config (``configs/<command>.yaml``) is composed over one of these
dataclasses (:data:`SCHEMAS`); the YAML groups only pick values. The four commands that decode a
checkpoint (eval, translate, gather, serve) share :class:`DecodingConfig`: the search keys, the
batch size, the device and the precision.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING

LENGTH_BUCKET_EDGES: tuple[int, ...] = (10, 20, 30, 40)  # BLEU by source length: 1-10, ..., 31-40, 41+
LONGEST = 10_000  # the open end of the last length bucket ("41+")


@dataclass
class TokenizerConfig:
    model_type: str = "unigram"  # word | unigram | bpe | char
    src_vocab_size: int = 8000  # a soft limit: a small corpus may give fewer pieces
    tgt_vocab_size: int = 8000
    normalization: str = "nmt_nfkc"  # SentencePiece rule; "identity" keeps text as it is
    tgt_normalization: str = ""  # the target side's rule, if not `normalization` (Chinese: identity)
    joint: bool = False  # one model for both languages (src_vocab_size pieces)
    cache_dir: str = ".cache/seq2seq/sentencepiece"  # trained models, by hash of data and settings; "": off
    sample_size: int = 1_000_000  # train on this many pairs drawn from the corpus (seeded); all when it has fewer
    threads: int = 1  # SentencePiece's training threads (1: the same pieces on every machine); 0: every core
    sampling_alpha: float = 0.0  # > 0: subword regularisation, each training batch in a sampled segmentation; 0: off
    sampling_nbest_size: int = -1  # sample among the best n segmentations; -1: all of them (unigram models)
    sampling_side: str = "both"  # both | src | tgt: the sides sampled (the other keeps its best segmentation)

    RESUME_MAY_CHANGE: ClassVar[tuple[str, ...]] = ("cache_dir",)


@dataclass
class DataConfig:
    name: str = MISSING
    root: str = MISSING  # folder with {split}.{lang} files (and {split}.align for gold links)
    src_lang: str = "en"
    tgt_lang: str = "zh"
    train: Any = "train"  # the training split, or several: [europarl,news] (each {root}/{name}.{lang})
    train_weights: list[float] = field(default_factory=list)  # with several: each one's share of an epoch; []: by size
    valid: str = "valid"
    test: str = "test"
    bleu_tokenize: str = "auto"  # sacreBLEU tokenizer; auto: "zh" for Chinese targets, else "13a"
    max_len: int = 0  # training pairs with a side longer than this many tokens are left out (counted); 0: none
    length_buckets: list[int] = field(default_factory=lambda: list(LENGTH_BUCKET_EDGES))  # BLEU by source length
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    store_dir: str = ".cache/seq2seq/store"  # prepared corpora (memory-mapped ids), one folder per data setting

    # what a resumed run may change: they do not touch the updates it makes
    RESUME_MAY_CHANGE: ClassVar[tuple[str, ...]] = (
        "name", "valid", "test", "bleu_tokenize", "length_buckets", "store_dir",
    )  # fmt: skip


@dataclass
class AttentionConfig:
    score: str = "additive"  # dot | scaled_dot | general | additive | cosine
    size: int = 0  # hidden size of the additive score network; 0: the decoder's hidden size
    temperature: float = 0.1  # cosine only: scores are cos / temperature
    learn_temperature: bool = True  # cosine only
    normalizer: str = "softmax"  # step 2: softmax | sparsemax | entmax15 (exact zeros on the words left out);
    # the RNN attention and the Transformer's cross-attention (its self-attention stays softmax)


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
    guided_alignment: float = 0.0  # W > 0: add W x the cross-entropy of the attention against the gold links of
    # each training corpus's {split}.align (Pharaoh i-j; guided alignment, as OpenNMT-py and Marian); 0: off
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
class DecodingConfig(SearchConfig):  # what every command that decodes a checkpoint shares
    batch_size: int = 64  # sentences per batch
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 (a CPU with bf16 instructions, or CUDA) | fp16 (CUDA): autocast
    quantize: str = "none"  # none | int8: int8 linear and GRU/LSTM layers (dynamic quantization, CPU only)
    shortlist: str | None = None  # a vocabulary map (seq2seq-shortlist): score each batch's candidates only


@dataclass
class TrainConfig:
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    search: SearchConfig = field(default_factory=SearchConfig)  # validation decoding while training


@dataclass
class EvalConfig(DecodingConfig):
    checkpoint: Any = MISSING  # a checkpoint file, or a list of them: an ensemble ('checkpoint=[a.pt,b.pt]')
    data: DataConfig = field(default_factory=DataConfig)
    split: str = ""  # a split name (file prefix); default: the data's test split (data.test)
    batch_size: int = 128
    output: str | None = None  # JSON report; default: beside the checkpoint, named after data, split, file, search


@dataclass
class TranslateConfig(DecodingConfig):
    checkpoint: Any = MISSING  # a checkpoint file, or a list of them: an ensemble
    input: str | None = None  # a file; default: standard input
    output: str | None = None  # a file; default: standard output
    attn: bool = True  # show where the model looked (interactive mode)
    format: str = "text"  # batch mode: text (one line each) | json (n-best, scores, attention)
    attention_layers: bool = False  # format=json: also every layer's self- and cross-attention, heads averaged


@dataclass
class CompareConfig(SearchConfig):  # the search keys: how the test split is decoded for the report
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # what every compared model shares
    models: dict[str, Any] = field(default_factory=dict)  # name -> how it differs from `model`
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # the models validate greedily
    split: str = ""  # a split name (file prefix); default: the data's test split (data.test)


@dataclass
class PrepareConfig:
    data: DataConfig = field(default_factory=DataConfig)  # the training corpora to prepare (and their tokenizers)


@dataclass
class AverageConfig:
    run: str | None = None  # a run folder trained with trainer.keep_checkpoints: average its newest `last`
    last: int = 5  # how many of the run's kept checkpoints (stepNNNNNNNN.pt) to average
    checkpoints: list[str] = field(default_factory=list)  # or these checkpoint files, instead of `run`
    output: str | None = None  # default: RUN/averaged.pt (with `run`), else required


@dataclass
class ShortlistConfig:
    checkpoint: str = MISSING  # the model whose tokenizers read the corpus (the table is for its vocabularies)
    src: str | None = None  # source side of a parallel corpus; default: the checkpoint's training data
    tgt: str | None = None  # target side, line-aligned with src (both or neither)
    output: str | None = None  # the vocabulary map to write; default: vmap.txt beside the checkpoint
    per_source: int = 20  # target pieces kept per source piece, by IBM Model 1's t(t | s)
    frequent: int = 100  # the target pieces found in most pairs: candidates in every batch
    iterations: int = 5  # IBM Model 1 EM iterations (0: rank by co-occurrence, c(s, t) / c(s))
    min_count: int = 1  # pairs a source and a target piece must share to be listed


@dataclass
class ExportConfig:
    checkpoint: str = MISSING  # a checkpoint of a Transformer (model=transformer)
    output: str = MISSING  # the folder to write: the CTranslate2 model, source.model and target.model
    format: str = "ctranslate2"  # the inference engine (CTranslate2, the only one)
    quantization: str = "float32"  # float32 | int8 | int16 | float16 | bfloat16 | int8_float32 | int8_float16 |
    # int8_bfloat16: the weights' type in the written model (int8: smallest, fastest on a CPU)
    force: bool = False  # replace an earlier export in output (it has export.json); other files are never replaced
    shortlist: str | None = None  # a vocabulary map (seq2seq-shortlist), written as vmap.txt (use_vmap)


@dataclass
class GatherConfig(DecodingConfig):
    runs: Any = MISSING  # a folder, or a list of them: run folders or folders holding them (best.pt + last.pt)
    data: DataConfig = field(default_factory=DataConfig)  # default: the first run's data
    split: str = ""  # a split name (file prefix); default: the data's test split (data.test)
    batch_size: int = 128
    checkpoints: list[str] = field(default_factory=lambda: ["best.pt"])  # file names: in each run folder,
    # the first of these that exists is evaluated ([averaged.pt,best.pt]: the average where one was made)


@dataclass
class ServeConfig(DecodingConfig):  # the search keys: a request's defaults (it may set beam and nbest)
    checkpoint: Any = None  # one model: a checkpoint file, or a list of them (an ensemble)
    checkpoints: list[Any] = field(default_factory=list)  # or several, side by side on the page (each a
    # file, or a list of files: an ensemble)
    host: str = "127.0.0.1"  # this machine only; 0.0.0.0 serves every network it is on
    port: int = 8000
    max_sentences: int = 32  # per request
    max_chars: int = 1000  # per sentence
    max_beam: int = 16
    max_body_bytes: int = 65536  # a request body over this is refused (413)
    max_search_tokens: int = 20000  # a request's source pieces times its beam, summed over its sentences (422 over)
    max_seconds: int = 30  # one request's decoding time: past it the search stops (503)
    max_response_bytes: int = 8_000_000  # a larger answer is refused (422: ask without attention, or for less)
    max_queue: int = 8  # requests waiting for the model (one decodes at a time); more get 503 with Retry-After
    client_timeout: int = 10  # seconds a client has to send a request's head, and then its body (else closed / 408)
    allowed_hosts: list[str] = field(default_factory=list)  # Host names answered besides the bound address and
    # localhost (a guard against DNS rebinding); ["*"]: any
    token: str = ""  # every request must carry it (Authorization: Bearer, or ?token= in the page's address);
    # "": none on 127.0.0.1/localhost/::1, a generated one (printed at start) on any other host
    run: Any = None  # a run folder whose attention examples (trainer.attention_examples) the page's training
    # view shows, as each served checkpoint's own folder is; with no checkpoint given, its best.pt is served
    gold: str = "auto"  # ROOT/SPLIT with gold alignments (SPLIT.align) for the page's view against gold;
    # auto: the first model's data root's test split where it has test.align; none: no such view

    LIMITS: ClassVar[tuple[str, ...]] = (
        "max_sentences", "max_chars", "max_beam", "max_body_bytes", "max_search_tokens", "max_seconds",
        "max_response_bytes", "max_queue", "client_timeout",
    )  # fmt: skip  # what one request may ask for, and how long it may take


SCHEMAS: dict[str, type] = {
    "train": TrainConfig,
    "eval": EvalConfig,
    "translate": TranslateConfig,
    "compare": CompareConfig,
    "gather": GatherConfig,
    "average": AverageConfig,
    "prepare": PrepareConfig,
    "serve": ServeConfig,
    "export": ExportConfig,
    "shortlist": ShortlistConfig,
}  # the command (and its primary config's name) -> its schema


def nested_schema(f: dataclasses.Field) -> type | None:
    """The dataclass a field holds (``data``, ``model.attention``, ...), or None for a plain value."""
    if f.default_factory is dataclasses.MISSING:
        return None
    value = f.default_factory()
    return type(value) if dataclasses.is_dataclass(value) else None
