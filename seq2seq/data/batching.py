"""Length-bucketed batches: sentences of similar length share a batch, so little is padding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID
from seq2seq.data.links import gold_weights

BATCHING = 2  # how training draws batches; 1: Python's random shuffle, 2: numpy's, within runs of one length


@dataclass
class Batch:
    src: torch.Tensor  # (B, S) source ids ending in EOS, padded with PAD
    src_mask: torch.Tensor  # (B, S) True on real tokens
    tgt_in: torch.Tensor | None = None  # (B, T) BOS y_1 .. y_n (teacher forcing input)
    tgt_out: torch.Tensor | None = None  # (B, T) y_1 .. y_n EOS (what to predict)
    gold: torch.Tensor | None = None  # (B, T, S) gold attention (guided alignment; seq2seq.data.links)

    @property
    def n_tgt_tokens(self) -> int:
        return 0 if self.tgt_out is None else int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.src), move(self.src_mask), move(self.tgt_in), move(self.tgt_out), move(self.gold))


def pad(seqs: list[list[int]]) -> torch.Tensor:
    """Right-pad id lists into a (N, max_len) tensor."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD_ID, dtype=torch.long)  # (N, L)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def collate(src: list[list[int]], tgt: list[list[int]] | None = None, links: list[list[int]] | None = None) -> Batch:
    """Build a batch: EOS appended to sources, BOS/EOS framing on targets; with ``links`` (each
    pair's flat piece links), the gold attention the guided-alignment loss reads."""
    src_t = pad([s + [EOS_ID] for s in src])  # (B, S)
    if tgt is None:
        return Batch(src_t, src_t != PAD_ID)
    tgt_in = pad([[BOS_ID] + t for t in tgt])  # (B, T)
    tgt_out = pad([t + [EOS_ID] for t in tgt])  # (B, T)
    gold = None if links is None else gold_weights(links, src_t.size(1), tgt_in.size(1))  # (B, T, S)
    return Batch(src_t, src_t != PAD_ID, tgt_in, tgt_out, gold)


def bucket_batches(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    max_tokens: int = 0,
    rng: np.random.Generator | None = None,
    tgt_lengths: np.ndarray | None = None,
    by_length: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Group corpus indices into batches of similar length (each an array of indices).

    Sentences are sorted by source length, then by target length when ``tgt_lengths`` is given
    (training), so that neither side carries much padding (``by_length``: that order, made
    before, e.g. by the corpus store). ``batch_size`` caps sentences per batch, ``max_tokens``
    (if > 0) caps ``rows * longest`` (the longer side). With ``rng`` the order inside equal
    lengths and the order of the batches are shuffled; without it the batches come sorted by
    length (for evaluation). Arrays throughout: millions of pairs cost a few bytes each, not a
    Python list each, and with ``by_length`` nothing is sorted.
    """
    src = np.asarray(lengths)  # an array stays as it is (a store's uint16)
    tgt = None if tgt_lengths is None else np.asarray(tgt_lengths)
    order = length_order(src, tgt) if by_length is None else np.array(by_length)  # a copy, shuffled below
    if rng is not None:
        shuffle_ties(order, src, tgt, rng)
    size = src[order] if tgt is None else np.maximum(src[order], tgt[order])
    ends = batch_ends(size, batch_size, max_tokens)
    if not ends:
        return []
    batches = np.split(order, ends[:-1])
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def length_order(src: np.ndarray, tgt: np.ndarray | None = None) -> np.ndarray:
    """Indices sorted by source length, then target length; ties keep their order (stable).
    4 bytes an index below 2**31 sentences."""
    key = src if tgt is None else (src.astype(np.uint32) << 16) | tgt.astype(np.uint32)
    return np.argsort(key, kind="stable").astype(np.int32 if len(src) < 2**31 else np.int64)


def shuffle_ties(order: np.ndarray, src: np.ndarray, tgt: np.ndarray | None, rng: np.random.Generator) -> None:
    """Shuffle ``order`` (sorted by length, :func:`length_order`) in place within each run of
    equal lengths (source, and target when given): the sentences of one length come in a new
    order each epoch, the lengths stay sorted."""
    s = src[order]
    change = s[1:] != s[:-1]
    if tgt is not None:
        t = tgt[order]
        change |= t[1:] != t[:-1]
    bounds = [0, *(np.flatnonzero(change) + 1).tolist(), len(order)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):  # a run per length pair: thousands, not millions
        if b - a > 1:
            rng.shuffle(order[a:b])


def batch_ends(sizes: Sequence[int] | np.ndarray, batch_size: int, max_tokens: int) -> list[int]:
    """Where each batch ends in ``sizes`` (sorted sentences' sizes): greedily as many sentences as
    ``batch_size`` and ``max_tokens`` (``rows * longest``, if > 0) allow."""
    ends: list[int] = []
    start, longest = 0, 0
    for offset in range(0, len(sizes), 1 << 20):  # a million at a time as Python ints
        chunk = sizes[offset : offset + (1 << 20)]
        for i, n in enumerate(chunk.tolist() if isinstance(chunk, np.ndarray) else chunk, offset):
            longest = max(longest, n)
            if i > start and (i - start >= batch_size or (max_tokens > 0 and longest * (i - start + 1) > max_tokens)):
                ends.append(i)
                start, longest = i, n
    if len(sizes):
        ends.append(len(sizes))
    return ends


def epoch_pairs(sizes: Sequence[int], weights: Sequence[float], rng: np.random.Generator) -> np.ndarray | None:
    """The pairs of one epoch over several training corpora (``sizes``: each one's pairs, laid
    end to end): corpus k gives ``weights[k] / sum(weights)`` of the epoch's ``sum(sizes)`` pairs,
    drawn without replacement, and whole passes over it where its share is larger than it (a small
    corpus is repeated, a large one sampled). None: every pair once (one corpus, or no weights)."""
    if len(sizes) < 2 or not weights:
        return None
    total, share = sum(sizes), np.asarray(weights, dtype=np.float64) / sum(weights)
    counts = np.floor(share * total).astype(np.int64)
    counts[: total - counts.sum()] += 1  # the pairs that rounding left, one each to the first corpora
    start, drawn = 0, []
    for size, count in zip(sizes, counts.tolist(), strict=True):
        if count > 0 and size > 0:  # a tiny weight can round a corpus's share down to nothing
            passes = [rng.permutation(size) for _ in range(-(-count // size))]
            drawn.append(start + np.concatenate(passes)[:count])
        start += size
    return np.concatenate(drawn)
