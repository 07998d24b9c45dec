"""Subword regularisation: each training sentence in a segmentation sampled afresh every epoch.

With ``data.tokenizer.sampling_alpha > 0`` a sentence is not always the same pieces: "Jerry" may be
``▁Jerry`` in one epoch and ``▁Je rry`` in the next (SentencePiece's sampling, Kudo 2018; for a
``bpe`` model, BPE-dropout). The model sees many segmentations of one text, a known regulariser
for small corpora.

The store keeps each pair's best segmentation (memory-mapped ids, :mod:`seq2seq.data.store`). At
the start of every epoch, :func:`sample_epoch` decodes the pairs back to their text (as normalised
when the store was made), a chunk at a time, and encodes them again with sampling, seeded by the
run's seed, the epoch and the chunk:

- the sampled ids go to files in the run folder, mapped as the store's are, so memory stays
  bounded whatever the corpus (the files are replaced every epoch and removed at the end);
- the epoch's batches are cut from the *sampled* lengths: sampled segmentations are longer (more,
  shorter pieces) and vary, and batches cut from the stored lengths were a third padding;
- a resumed run samples exactly what the uninterrupted one did, and every process of a torchrun
  run the same;
- a sampled side longer than the limit (``data.max_len``, the positions of a Transformer) keeps
  its stored ids.

Validation, evaluation and translation read the best segmentation, as always.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.data.store import CHUNK, MAX_TOKENS, TokenIds, append, ids_dtype, mapped, write_offsets
from seq2seq.tokenizer import Tokenizer

Rows = list[list[int]]


class Resegmenter:
    """Both sides of some pairs in sampled segmentations (:meth:`__call__`); ``limit``: the
    longest sampled side kept, in pieces."""

    def __init__(
        self,
        tokenizers: tuple[Tokenizer, Tokenizer],
        alpha: float,
        nbest_size: int,
        limit: int,
        seed: int,
        sides: tuple[bool, bool] = (True, True),
    ) -> None:
        self.tokenizers, self.alpha, self.nbest_size, self.limit, self.seed = tokenizers, alpha, nbest_size, limit, seed
        self.sides = sides  # which of source, target are sampled; the other keeps its stored ids

    def __call__(self, src: Rows, tgt: Rows, key: tuple[int, ...]) -> tuple[Rows, Rows]:
        """``src``, ``tgt`` (stored ids) sampled anew; the same ``key`` (epoch, chunk) gives the
        same ids."""
        seeds = np.random.default_rng([self.seed, *key]).integers(1 << 31, size=2).tolist()
        sides = []
        for rows, tok, seed, sample in zip((src, tgt), self.tokenizers, seeds, self.sides, strict=True):
            if not sample:
                sides.append(rows)
                continue
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
    sides = (tok.sampling_side != "tgt", tok.sampling_side != "src")
    return Resegmenter(tokenizers, tok.sampling_alpha, tok.sampling_nbest_size, limit, cfg.seed, sides)


def sample_epoch(
    ids: tuple[TokenIds, TokenIds], resegment: Resegmenter, epoch: int, folder: Path
) -> tuple[TokenIds, TokenIds]:
    """Every pair of ``ids`` (the stored sources and targets) in the segmentation sampled for
    ``epoch``, written to ``folder`` (replaced; :data:`seq2seq.data.store.CHUNK` pairs at a time,
    the k-th seeded by ``(epoch, k)``) and mapped from there."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    n = len(ids[0])
    dtype = ids_dtype(resegment.tokenizers)
    tokens = [0, 0]
    files = {name: (folder / name).open("wb") for name in ("src.ids", "src.len", "tgt.ids", "tgt.len")}
    try:
        for k, start in enumerate(range(0, n, CHUNK)):
            rows = [[side[i] for i in range(start, min(n, start + CHUNK))] for side in ids]
            for s, (side, sampled) in enumerate(zip(("src", "tgt"), resegment(*rows, (epoch, k)), strict=True)):
                tokens[s] += append(files[f"{side}.ids"], files[f"{side}.len"], sampled, dtype)
    finally:
        for f in files.values():
            f.close()
    sides = []
    for s, side in enumerate(("src", "tgt")):
        write_offsets(folder / f"{side}.len", folder / f"{side}.off")
        sides.append(
            TokenIds(
                mapped(folder / f"{side}.ids", np.dtype(dtype).name, tokens[s]),
                mapped(folder / f"{side}.len", "uint16", n),
                mapped(folder / f"{side}.off", "int64", n + 1),
            )
        )
    return sides[0], sides[1]
