"""Gold alignment links for guided alignment (``trainer.guided_alignment``): word links to piece
links when the store is prepared, piece links to each batch's target distribution.

A Pharaoh line ``i-j`` links source word ``i`` to target word ``j`` (from 0). SentencePiece cuts
words into pieces (a piece starting with ``▁`` starts a word, :func:`~seq2seq.tokenizer.word_index`),
so the link becomes every (source piece of word i, target piece of word j). A target piece's gold
distribution is uniform over the source pieces it is linked to; a piece with no link (and the EOS
row) has none and adds nothing to the loss. Piece links are stored flat, ``s0, t0, s1, t1, ...``.
"""

from __future__ import annotations

import numpy as np
import torch

from seq2seq.errors import CorpusError
from seq2seq.tokenizer import word_index


def piece_links(src_pieces: list[str], tgt_pieces: list[str], links: list[tuple[int, int]], where: str) -> list[int]:
    """The word ``links`` of one pair as piece links, flat (``s, t, s, t, ...``); a link beyond
    the sentence's words is a :class:`CorpusError` naming ``where`` (the file and line)."""
    s_word, t_word = word_index(src_pieces), word_index(tgt_pieces)
    n_src, n_tgt = (s_word[-1] + 1 if s_word else 0), (t_word[-1] + 1 if t_word else 0)
    s_pieces: dict[int, list[int]] = {}
    t_pieces: dict[int, list[int]] = {}
    for k, w in enumerate(s_word):
        s_pieces.setdefault(w, []).append(k)
    for k, w in enumerate(t_word):
        t_pieces.setdefault(w, []).append(k)
    flat: list[int] = []
    for i, j in sorted(set(links)):
        if i >= n_src or j >= n_tgt:
            raise CorpusError(f"{where}: link {i}-{j} is outside the sentence pair ({n_src} x {n_tgt} words)")
        for s in s_pieces[i]:
            for t in t_pieces[j]:
                flat += (s, t)
    return flat


def gold_weights(links: list[list[int]] | list[np.ndarray], src_len: int, tgt_len: int) -> torch.Tensor:
    """The batch's gold attention ``(B, T, S)`` from each pair's flat piece links: row ``t`` (the
    step that writes target piece ``t``) uniform over the source pieces linked to piece ``t``; all
    zero where piece ``t`` has no link (and for EOS and padding)."""
    gold = torch.zeros(len(links), tgt_len, src_len)
    for b, flat in enumerate(links):
        pairs = torch.as_tensor(np.asarray(flat, dtype=np.int64).reshape(-1, 2))  # (L, 2): source, target piece
        gold[b, pairs[:, 1], pairs[:, 0]] = 1.0
    return gold / gold.sum(dim=2, keepdim=True).clamp(min=1.0)
