"""Length-bucketed batches: sentences of similar length share a batch, so little is padding."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    src: torch.Tensor  # (B, S) source ids ending in EOS, padded with PAD
    src_mask: torch.Tensor  # (B, S) True on real tokens
    tgt_in: torch.Tensor | None = None  # (B, T) BOS y_1 .. y_n (teacher forcing input)
    tgt_out: torch.Tensor | None = None  # (B, T) y_1 .. y_n EOS (what to predict)

    @property
    def n_tgt_tokens(self) -> int:
        return 0 if self.tgt_out is None else int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.src), move(self.src_mask), move(self.tgt_in), move(self.tgt_out))


def pad(seqs: list[list[int]]) -> torch.Tensor:
    """Right-pad id lists into a (N, max_len) tensor."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD_ID, dtype=torch.long)  # (N, L)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def collate(src: list[list[int]], tgt: list[list[int]] | None = None) -> Batch:
    """Build a batch: EOS appended to sources, BOS/EOS framing on targets."""
    src_t = pad([s + [EOS_ID] for s in src])  # (B, S)
    if tgt is None:
        return Batch(src_t, src_t != PAD_ID)
    tgt_in = pad([[BOS_ID] + t for t in tgt])  # (B, T)
    tgt_out = pad([t + [EOS_ID] for t in tgt])  # (B, T)
    return Batch(src_t, src_t != PAD_ID, tgt_in, tgt_out)


def bucket_batches(
    lengths: list[int],
    batch_size: int,
    max_tokens: int = 0,
    rng: random.Random | None = None,
    tgt_lengths: list[int] | None = None,
) -> list[list[int]]:
    """Group corpus indices into batches of similar length.

    Sentences are sorted by source length, then by target length when ``tgt_lengths`` is given
    (training), so that neither side carries much padding. ``batch_size`` caps sentences per
    batch, ``max_tokens`` (if > 0) caps ``rows * longest`` (the longer side). With ``rng`` the
    order inside equal lengths and the order of the batches are shuffled; without it the batches
    come sorted by length (for evaluation).
    """
    order = list(range(len(lengths)))
    if rng is not None:
        rng.shuffle(order)
    size = lengths if tgt_lengths is None else [max(s, t) for s, t in zip(lengths, tgt_lengths, strict=True)]
    if tgt_lengths is None:
        order.sort(key=lambda i: lengths[i])  # stable: shuffled ties stay shuffled
    else:
        order.sort(key=lambda i: (lengths[i], tgt_lengths[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest = max(longest, size[i]) if current else size[i]
        too_many_tokens = max_tokens > 0 and current and longest * (len(current) + 1) > max_tokens
        if current and (len(current) >= batch_size or too_many_tokens):
            batches.append(current)
            current = []
            longest = size[i]
        current.append(i)
    if current:
        batches.append(current)
    if rng is not None:
        rng.shuffle(batches)
    return batches
