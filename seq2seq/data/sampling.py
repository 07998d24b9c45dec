"""Subword regularisation: each training sentence in a segmentation sampled afresh for every batch.

With ``data.tokenizer.sampling_alpha > 0`` a sentence is not always the same pieces: "Jerry" may be
``▁Jerry`` in one epoch and ``▁Je rry`` in the next (SentencePiece's sampling, Kudo 2018; for a
``bpe`` model, BPE-dropout). The model sees many segmentations of one text, a known regulariser
for small corpora.

The store keeps each pair's best segmentation (memory-mapped ids, :mod:`seq2seq.data.store`). A
batch's pairs are decoded back to their text (as normalised when the store was made) and encoded
again with sampling, seeded by the run's seed, the epoch and the batch's place in it:

- a resumed run samples exactly what the uninterrupted one did, and every process of a torchrun
  run the same;
- nothing is held beyond the batch, so memory stays bounded by the batch whatever the corpus;
- the batches are made from the stored lengths: a sampled segmentation is longer (more, shorter
  pieces), so a batch holds that much more than ``trainer.max_tokens``;
- a sampled side longer than the limit (``data.max_len``, the positions of a Transformer) keeps
  its stored ids.

Validation, evaluation and translation read the best segmentation, as always.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seq2seq.data.store import MAX_TOKENS
from seq2seq.tokenizer import Tokenizer

Rows = list[list[int]]


class Resegmenter:
    """Both sides of a batch in sampled segmentations (:meth:`__call__`); ``limit``: the longest
    sampled side kept, in pieces."""

    def __init__(self, tokenizers: tuple[Tokenizer, Tokenizer], alpha: float, nbest_size: int, limit: int, seed: int):
        self.tokenizers, self.alpha, self.nbest_size, self.limit, self.seed = tokenizers, alpha, nbest_size, limit, seed

    def __call__(self, src: Rows, tgt: Rows, key: tuple[int, ...]) -> tuple[Rows, Rows]:
        """``src``, ``tgt`` (a batch's stored ids) sampled anew; the same ``key`` (epoch, batch)
        gives the same ids."""
        seeds = np.random.default_rng([self.seed, *key]).integers(1 << 31, size=2).tolist()
        sides = []
        for rows, tok, seed in zip((src, tgt), self.tokenizers, seeds, strict=True):
            sampled = tok.sample_batch([tok.decode(r) for r in rows], self.alpha, self.nbest_size, seed)
            sides.append([new if 0 < len(new) <= self.limit else old for new, old in zip(sampled, rows, strict=True)])
        return sides[0], sides[1]


def resegmenter(cfg: Any, tokenizers: tuple[Tokenizer, Tokenizer]) -> Resegmenter | None:
    """The run's :class:`Resegmenter` (``cfg``: a checked ``TrainConfig``), None without
    ``data.tokenizer.sampling_alpha``."""
    tok = cfg.data.tokenizer
    if tok.sampling_alpha <= 0:
        return None
    limit = cfg.data.max_len if 0 < cfg.data.max_len <= MAX_TOKENS else MAX_TOKENS
    if cfg.model.decoder == "transformer" or cfg.model.encoder == "self_attention":
        limit = min(limit, cfg.model.self_attention.max_positions - 1)  # the EOS (BOS) takes a position
    return Resegmenter(tokenizers, tok.sampling_alpha, tok.sampling_nbest_size, limit, cfg.seed)
