"""Special token ids and every choice list an option can take, defined once.

This module imports nothing of the package, so the config checks, the models, the search and the
tokenizer can all read it without leaning on each other.
"""

from __future__ import annotations

# every vocabulary, source and target: pad=0 unk=1 bos=2 eos=3
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

RNN_ATTENTION_DECODERS = ("bahdanau", "luong")  # a fresh context c_i per target word, one score
ATTENTION_DECODERS = (*RNN_ATTENTION_DECODERS, "transformer")  # + self-attention in the target, multi-head
FIXED_CONTEXT_DECODERS = ("cho", "sutskever")  # one fixed C for the whole target: "distracted"
DECODERS = ATTENTION_DECODERS + FIXED_CONTEXT_DECODERS
ENCODERS = ("rnn", "self_attention")
RNNS = ("gru", "lstm")
BRIDGES = ("linear", "copy", "zero")  # how the summary C starts the decoder
SCORES = ("dot", "scaled_dot", "general", "additive", "cosine")  # attention score functions
SAME_SIZE_SCORES = ("dot", "scaled_dot", "cosine")  # need query size == key size
NORMALIZERS = ("softmax", "sparsemax", "entmax15")  # step 2: scores -> weights; the sparse two give exact zeros
POSITIONS = ("sinusoidal", "learned")  # the Transformer layers' positions
NORMS = ("pre", "post")  # the Transformer layers' LayerNorm: before each sublayer, or after the residual sum
TOKENIZER_TYPES = ("word", "unigram", "bpe", "char")  # SentencePiece model types
SAMPLING_SIDES = ("both", "src", "tgt")  # data.tokenizer.sampling_side: which sides subword regularisation samples
LENGTH_NORMS = ("gnmt", "length", "none")  # beam search length penalty
LR_SCHEDULES = ("constant", "plateau", "anneal", "inverse_sqrt", "noam")
WARMUP_SCHEDULES = ("inverse_sqrt", "noam")  # warm-up, then the inverse square root of the step
QUANTIZE = ("none", "int8")  # decoding: int8 is dynamic quantization of the linear and RNN layers (CPU)
PRECISIONS = ("fp32", "bf16", "fp16")  # autocast (training: with fp32 master weights)
EARLY_STOP_METRICS = ("valid_bleu", "valid_loss")
DEVICES = ("auto", "cpu", "cuda")
OUTPUT_FORMATS = ("text", "json")  # seq2seq-translate's batch output
EXPORT_FORMATS = ("ctranslate2",)  # seq2seq-export: the inference engines a Transformer checkpoint goes to
# seq2seq-export quantization=: CTranslate2's weight types (int8_X: int8 weights, computed in X)
EXPORT_QUANTIZATIONS = (
    "float32", "int8", "int16", "float16", "bfloat16", "int8_float32", "int8_float16", "int8_bfloat16",
)  # fmt: skip
