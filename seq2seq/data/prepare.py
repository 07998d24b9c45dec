"""From corpus files to what the training loop reads: tokenizers and token ids.

:func:`prepare_data` reads and validates the train and valid splits, trains (or finds in the
cache) the SentencePiece models, encodes the training pairs and leaves out the over-long ones.
The loop (:class:`seq2seq.training.Trainer`) then works on :class:`PreparedData` alone, so it can be
built and tested on ids made by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.data.corpus import ParallelCorpus, filter_long, load_split, split_paths
from seq2seq.data.toy import write_corpus
from seq2seq.tokenizer import Tokenizer

log = logging.getLogger("seq2seq")
TOY_ROOT = "data/toy"  # where configs/data/toy.yaml reads the toy corpus from (relative to the working folder)
TOY_SIZES = {"train": 20_000, "valid": 500, "test": 1_000}  # what `data=toy` writes there when it is missing


@dataclass
class PreparedData:
    """The training pairs as ids, the raw valid split (for BLEU) and both tokenizers."""

    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    src_ids: list[list[int]]  # training sources, one id list per pair
    tgt_ids: list[list[int]]  # training targets
    valid: ParallelCorpus


def train_tokenizers(data: Any, train: ParallelCorpus) -> tuple[Tokenizer, Tokenizer]:
    """SentencePiece models for both sides (one shared model if ``joint``), cached by data and settings."""
    tok = data.tokenizer
    if tok.joint:
        joint, hit = Tokenizer.train_cached(
            train.src + train.tgt, tok.src_vocab_size, tok.model_type, tok.normalization, tok.cache_dir
        )
        log.info("joint tokenizer: %d pieces (%s)", len(joint), "from the cache" if hit else "trained")
        return joint, joint
    src, src_hit = Tokenizer.train_cached(
        train.src, tok.src_vocab_size, tok.model_type, tok.normalization, tok.cache_dir
    )
    tgt_norm = tok.tgt_normalization or tok.normalization
    tgt, tgt_hit = Tokenizer.train_cached(train.tgt, tok.tgt_vocab_size, tok.model_type, tgt_norm, tok.cache_dir)
    for side, t, hit in (("source", src, src_hit), ("target", tgt, tgt_hit)):
        log.info("%s tokenizer: %d pieces (%s)", side, len(t), "from the cache" if hit else "trained")
    return src, tgt


def ensure_toy_corpus(data: Any) -> None:
    """``data=toy`` with no corpus at its own folder (``data/toy``) writes the toy corpus there
    (said in the log), so a user of the installed package needs no checkout's scripts. Any other
    missing ``data.root`` stays an error that names the file (a typo makes no corpus)."""
    if data.name != "toy" or Path(data.root) != Path(TOY_ROOT) or {data.src_lang, data.tgt_lang} != {"en", "zh"}:
        return
    if any(p.exists() for p in split_paths(data.root, data.train, data.src_lang, data.tgt_lang)):
        return
    sizes = {data.train: TOY_SIZES["train"], data.valid: TOY_SIZES["valid"], data.test: TOY_SIZES["test"]}
    counts = write_corpus(data.root, sizes)  # train.en is English, train.zh Chinese, whichever way data translates
    log.info("no toy corpus at %s: wrote one (%s pairs)", data.root, ", ".join(f"{k} {n:,}" for k, n in counts.items()))


def prepare_data(data: Any, valid_max_sentences: int = 0) -> PreparedData:
    """Read ``data``'s train and valid splits, train the tokenizers and encode the training pairs
    (``data``: a checked ``DataConfig``). The valid split is cut to its first
    ``valid_max_sentences`` pairs when that is > 0."""
    ensure_toy_corpus(data)
    train = load_split(data.root, data.train, data.src_lang, data.tgt_lang, drop_empty=True)
    valid = load_split(data.root, data.valid, data.src_lang, data.tgt_lang)
    if valid_max_sentences > 0:
        n = valid_max_sentences
        links = None if valid.alignments is None else valid.alignments[:n]
        valid = ParallelCorpus(valid.src[:n], valid.tgt[:n], links, valid.notes)
    src_tok, tgt_tok = train_tokenizers(data, train)
    for note in train.notes + valid.notes:
        log.info("%s", note)
    src_ids, tgt_ids = src_tok.encode_batch(train.src), tgt_tok.encode_batch(train.tgt)
    keep, note = filter_long(src_ids, tgt_ids, data.max_len)
    if note:
        log.info("%s", note)
    return PreparedData(src_tok, tgt_tok, [src_ids[i] for i in keep], [tgt_ids[i] for i in keep], valid)
