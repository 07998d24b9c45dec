"""From corpus files to what the training loop reads: tokenizers and token ids.

:func:`prepare_data` opens the training corpora's store (:mod:`seq2seq.data.store`: made on first
use, then mapped by every later run, resume and process) and reads the valid split. The loop
(:class:`seq2seq.training.Trainer`) then works on :class:`PreparedData` alone, so it can be built
and tested on ids made by hand (:meth:`PreparedData.from_lists`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.config import check_prepare, train_splits
from seq2seq.data.corpus import ParallelCorpus, load_split, split_paths
from seq2seq.data.store import Store, StoreInfo, TokenIds, open_store
from seq2seq.data.toy import write_corpus
from seq2seq.errors import CorpusError
from seq2seq.tokenizer import Tokenizer

log = logging.getLogger("seq2seq")
TOY_ROOT = "data/toy"  # where configs/data/toy.yaml reads the toy corpus from (relative to the working folder)
TOY_SIZES = {"train": 20_000, "valid": 500, "test": 1_000}  # what `data=toy` writes there when it is missing


@dataclass
class PreparedData:
    """The training pairs as ids (the corpora one after the other, ``corpora`` their sizes and
    ``weights`` their shares of an epoch, empty: by size), the raw valid split (for BLEU) and both
    tokenizers."""

    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    src_ids: TokenIds  # training sources
    tgt_ids: TokenIds  # training targets
    valid: ParallelCorpus
    corpora: list[int] = field(default_factory=list)  # pairs of each training corpus; []: one
    weights: list[float] = field(default_factory=list)
    by_length: np.ndarray | None = None  # the pairs sorted by length, made with the store
    store: StoreInfo | None = None
    links: TokenIds | None = None  # gold piece links per training pair (seq2seq.data.links), where stored

    @classmethod
    def from_lists(
        cls, tokenizers: tuple[Tokenizer, Tokenizer], src: list[list[int]], tgt: list[list[int]], valid: ParallelCorpus
    ) -> PreparedData:
        """Ids made by hand, held in memory (tests, benchmarks)."""
        return cls(*tokenizers, TokenIds.from_lists(src), TokenIds.from_lists(tgt), valid)


def train_tokenizers(data: Any, src: list[str], tgt: list[str]) -> tuple[Tokenizer, Tokenizer]:
    """SentencePiece models for both sides (one shared model if ``joint``) from the sample ``src``,
    ``tgt``; cached by sample and settings."""
    tok = data.tokenizer
    threads = tok.threads
    if tok.joint:
        joint, hit = Tokenizer.train_cached(
            src + tgt, tok.src_vocab_size, tok.model_type, tok.normalization, tok.cache_dir, threads
        )
        log.info("joint tokenizer: %d pieces (%s)", len(joint), "from the cache" if hit else "trained")
        return joint, joint
    src_tok, src_hit = Tokenizer.train_cached(
        src, tok.src_vocab_size, tok.model_type, tok.normalization, tok.cache_dir, threads
    )
    tgt_norm = tok.tgt_normalization or tok.normalization
    tgt_tok, tgt_hit = Tokenizer.train_cached(tgt, tok.tgt_vocab_size, tok.model_type, tgt_norm, tok.cache_dir, threads)
    for side, t, hit in (("source", src_tok, src_hit), ("target", tgt_tok, tgt_hit)):
        log.info("%s tokenizer: %d pieces (%s)", side, len(t), "from the cache" if hit else "trained")
    return src_tok, tgt_tok


def ensure_toy_corpus(data: Any) -> None:
    """``data=toy`` with no corpus at its own folder (``data/toy``) writes the toy corpus there
    (said in the log), so a user of the installed package needs no checkout's scripts. Any other
    missing ``data.root`` stays an error that names the file (a typo makes no corpus)."""
    if data.name != "toy" or Path(data.root) != Path(TOY_ROOT) or {data.src_lang, data.tgt_lang} != {"en", "zh"}:
        return
    train = train_splits(data)
    if len(train) > 1 or any(p.exists() for p in split_paths(data.root, train[0], data.src_lang, data.tgt_lang)):
        return  # several training corpora are the user's own: a missing one is an error naming it
    sizes = {train[0]: TOY_SIZES["train"], data.valid: TOY_SIZES["valid"], data.test: TOY_SIZES["test"]}
    counts = write_corpus(data.root, sizes)  # train.en is English, train.zh Chinese, whichever way data translates
    log.info("no toy corpus at %s: wrote one (%s pairs)", data.root, ", ".join(f"{k} {n:,}" for k, n in counts.items()))


def prepare_store(data: Any, links: bool = False) -> Store:
    """``data``'s training corpora in their store (:func:`seq2seq.data.store.open_store`): mapped
    when prepared before, else prepared now (the toy corpus written first where it is missing);
    with ``links``, the gold links of each corpus's ``{split}.align`` too (guided alignment: a
    store of its own, so that runs without it never read those files)."""
    ensure_toy_corpus(data)
    names = train_splits(data)
    paths = [split_paths(data.root, name, data.src_lang, data.tgt_lang) for name in names]
    sources = [(name, src, tgt) for name, (src, tgt, _) in zip(names, paths, strict=True)]
    aligns = [align for _, _, align in paths] if links else None
    missing = [str(a) for a in aligns or [] if not a.is_file()]
    if missing:
        raise CorpusError(
            f"trainer.guided_alignment needs gold links: {', '.join(missing)}: file not found (Pharaoh 'i-j' "
            "links, source word i to target word j, a line per line of the corpus; scripts/align.py makes "
            "them with eflomal)"
        )
    return open_store(data, sources, lambda src, tgt: train_tokenizers(data, src, tgt), aligns)


def run_prepare(cfg: Any) -> StoreInfo:
    """seq2seq-prepare: check ``cfg`` and make (or find) its data's store."""
    return prepare_store(check_prepare(cfg).data).info


def prepare_data(data: Any, valid_max_sentences: int = 0, links: bool = False) -> PreparedData:
    """The training pairs of ``data`` from their store (:func:`prepare_store`; with ``links``, the
    gold links for guided alignment), the tokenizers made with them, and the valid split
    (``data``: a checked ``DataConfig``), cut to its first ``valid_max_sentences`` pairs when
    that is > 0."""
    store = prepare_store(data, links)
    valid = load_split(data.root, data.valid, data.src_lang, data.tgt_lang)
    if valid_max_sentences > 0:
        n = valid_max_sentences
        links = None if valid.alignments is None else valid.alignments[:n]
        valid = ParallelCorpus(valid.src[:n], valid.tgt[:n], links, valid.notes)
    for note in valid.notes:
        log.info("%s", note)
    sizes = [c["pairs"] for c in store.corpora]
    return PreparedData(
        *store.tokenizers, store.src, store.tgt, valid, sizes if len(sizes) > 1 else [], list(data.train_weights),
        store.by_length, store.info, store.links,
    )  # fmt: skip
