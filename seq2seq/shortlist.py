"""A vocabulary shortlist: decoding scores only the target pieces that a batch's source pieces
may translate to (Marian's lexical shortlist, CTranslate2's vocabulary map), not the whole
target vocabulary.

The output layer and what follows it (log-softmax, the beam's top-k over ``K x V``) are about
40 % of a Transformer's beam step at 4,000 target pieces (docs/speed.md); a batch of 64
sentences needs 1,500-1,800 of them.

1. **Build** (:func:`build_shortlist`; ``seq2seq-shortlist`` runs :func:`run_shortlist`): from a
   parallel corpus (by default the checkpoint's training data) read by the checkpoint's own
   tokenizers, count in how many sentence pairs each source piece ``s`` and target piece ``t``
   occur together, ``c(s, t)``, then estimate IBM Model 1's
   lexical probabilities ``t(t | s)`` over those pairs by a few EM iterations (the lexical
   table Marian's shortlists come from, there by fast_align). The ``frequent`` target pieces
   found in most pairs are candidates for every batch; beside them, each source piece keeps its
   ``per_source`` target pieces of highest ``t(t | s)`` among those seen with it at least
   ``min_count`` times. Both passes go through the corpus in chunks, so the memory is the
   distinct co-occurring pairs, not the corpus.
2. **A batch's candidates** (:meth:`Shortlist.candidates`): the union of its source pieces'
   lists, the frequent pieces, the special tokens and any forced prefix's pieces, sorted (so
   the special ids 0-3 keep their positions). One set per batch, as Marian and CTranslate2
   have it: a set per sentence made each step a batched product of small matrices that read
   ``B x C`` output rows instead of ``V``, slower than the whole layer (docs/speed.md).
3. **Decoding** (:mod:`seq2seq.search`): the output layer's rows of those pieces are gathered
   once per batch (:class:`~seq2seq.models.state.OutputRows`), every step's log-probabilities
   are normalised over them, and each chosen position is mapped back to its piece id.

The file is CTranslate2's vocabulary map (``vmap.txt``), so one file serves both engines
(``seq2seq-export ... shortlist=FILE``): a line ``source_piece<TAB>target_piece target_piece
...`` per source piece, and one line with an empty source, ``<TAB>frequent pieces``, for the
pieces every batch gets. Lines end at ``\n`` and pieces are parted by one space, as CTranslate2
reads them, so a piece may hold any other character (an ideographic space under ``identity``
normalisation); a piece holding a TAB, a space or a line break cannot be written, and is left
out of the file. Keys are single pieces: a file with CTranslate2's n-gram keys is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seq2seq.checkpoint import load_model
from seq2seq.config import check_shortlist
from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seq2seq.data.corpus import PairStream, split_paths
from seq2seq.errors import CorpusError
from seq2seq.tokenizer import Tokenizer

SPECIALS = (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
CHUNK = 2048  # sentence pairs counted at once


@dataclass
class Shortlist:
    """Each source piece's candidate target pieces, and those every batch gets."""

    table: torch.Tensor  # (source vocabulary, per_source) target ids, -1 where a piece has fewer
    frequent: torch.Tensor  # (F,) target ids always candidates

    def candidates(self, src: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """The target ids a batch ``src (B, S)`` (PAD allowed) may write: its pieces' lists, the
        frequent pieces, the special tokens and the ``extra`` ids (a forced prefix; PAD
        ignored). Sorted, so ids 0-3 (the special tokens) are positions 0-3."""
        table = self.table.to(src.device)
        specials = torch.tensor(SPECIALS, device=src.device)
        parts = [table[src.unique()].flatten(), self.frequent.to(src.device), specials]
        if extra is not None:
            parts.append(extra.flatten())
        ids = torch.cat(parts)
        return ids[ids >= 0].unique()  # sorted

    @property
    def per_source(self) -> int:
        return self.table.size(1)


def pair_ids(
    pairs: Iterable[tuple[str, str]], src: Tokenizer, tgt: Tokenizer
) -> Iterator[tuple[list[list[int]], list[list[int]]]]:
    """The pairs' ids, :data:`CHUNK` pairs at a time."""
    chunk: list[tuple[str, str]] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == CHUNK:
            yield src.encode_batch([s for s, _ in chunk]), tgt.encode_batch([t for _, t in chunk])
            chunk = []
    if chunk:
        yield src.encode_batch([s for s, _ in chunk]), tgt.encode_batch([t for _, t in chunk])


def co_occurrences(
    chunks: Iterable[tuple[list[list[int]], list[list[int]]]], src_size: int, tgt_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """In how many pairs each source and target piece occur together: ``keys`` (``s * tgt_size +
    t``, sorted) and their ``counts``; and each source and each target piece's count of pairs."""
    keys = torch.empty(0, dtype=torch.long)
    counts = torch.empty(0, dtype=torch.long)
    pending_keys: list[torch.Tensor] = []  # chunks' tables not yet merged into keys, counts
    pending_counts: list[torch.Tensor] = []
    src_pairs = torch.zeros(src_size, dtype=torch.long)
    tgt_pairs = torch.zeros(tgt_size, dtype=torch.long)

    def merge() -> None:
        nonlocal keys, counts
        merged, inverse = torch.cat([keys, *pending_keys]).unique(return_inverse=True)
        counts = torch.zeros_like(merged).index_add_(0, inverse, torch.cat([counts, *pending_counts]))
        keys = merged
        pending_keys.clear()
        pending_counts.clear()

    for src_ids, tgt_ids in chunks:
        found = []
        for s_ids, t_ids in zip(src_ids, tgt_ids, strict=True):
            s = torch.tensor(s_ids, dtype=torch.long).unique()
            t = torch.tensor(t_ids, dtype=torch.long).unique()
            src_pairs[s] += 1
            tgt_pairs[t] += 1
            found.append((s.unsqueeze(1) * tgt_size + t.unsqueeze(0)).flatten())  # each (s, t) once per pair
        chunk_keys, chunk_counts = torch.cat(found).unique(return_counts=True)
        pending_keys.append(chunk_keys)
        pending_counts.append(chunk_counts)
        if sum(k.numel() for k in pending_keys) > keys.numel():  # merged as the table doubles: sorting
            merge()  # every chunk into the whole table would grow with chunks x table
    if pending_keys:
        merge()
    return keys, counts, src_pairs, tgt_pairs


def lexical_probabilities(
    chunks: Callable[[], Iterable[tuple[list[list[int]], list[list[int]]]]],
    keys: torch.Tensor,
    tgt_size: int,
    iterations: int,
) -> torch.Tensor:
    """IBM Model 1's ``t(t | s)`` for the co-occurring ``keys`` (sorted ``s * tgt_size + t``),
    by ``iterations`` of EM over the pairs that ``chunks()`` reads anew each time: each target
    token's alignment is shared among its sentence's source tokens in proportion to ``t(t | s)``
    (uniform at first), and the shares summed per ``(s, t)`` and normalised per ``s`` are the next
    ``t(t | s)``. A target piece that occurs with every source piece (a full stop) is so shared
    out rather than listed for each."""
    prob = torch.ones(keys.numel(), dtype=torch.float64)
    source = keys // tgt_size
    for _ in range(iterations):
        counts = torch.zeros_like(prob)
        for src_ids, tgt_ids in chunks():
            grid, target = [], []  # every (source token, target token) of every pair; the target token's number
            base = 0
            for s_ids, t_ids in zip(src_ids, tgt_ids, strict=True):
                if not s_ids or not t_ids:
                    continue
                s, t = torch.tensor(s_ids, dtype=torch.long), torch.tensor(t_ids, dtype=torch.long)
                grid.append((s.unsqueeze(1) * tgt_size + t.unsqueeze(0)).flatten())  # (m * n), source-major
                target.append(torch.arange(base, base + t.numel()).repeat(s.numel()))
                base += t.numel()
            if not grid:
                continue
            at = torch.searchsorted(keys, torch.cat(grid))  # every pair's keys are among `keys`
            number = torch.cat(target)
            p = prob[at]
            share = p / torch.zeros(base, dtype=torch.float64).index_add_(0, number, p)[number]
            counts.index_add_(0, at, share)
        total = torch.zeros(int(source.max()) + 1, dtype=torch.float64).index_add_(0, source, counts)
        prob = counts / total[source].clamp(min=1e-300)
    return prob


def build_shortlist(
    pairs: Iterable[tuple[str, str]],
    src: Tokenizer,
    tgt: Tokenizer,
    per_source: int = 20,
    frequent: int = 100,
    min_count: int = 1,
    iterations: int = 5,
) -> Shortlist:
    """A :class:`Shortlist` from sentence ``pairs`` (iterable again for each EM iteration) read by
    the tokenizers ``src`` and ``tgt``: the ``frequent`` target pieces found in most pairs, and
    each source piece's ``per_source`` other target pieces (seen together in at least
    ``min_count`` pairs) of highest ``t(t | s)`` after ``iterations`` of IBM Model 1
    (:func:`lexical_probabilities`; 0: ``c(s, t) / c(s)``, the share of its pairs)."""
    src_size, tgt_size = len(src), len(tgt)
    keys, counts, src_pairs, tgt_pairs = co_occurrences(pair_ids(pairs, src, tgt), src_size, tgt_size)
    if not keys.numel():
        raise CorpusError("the corpus gave no sentence pairs to build a shortlist from")
    if iterations:
        lexical = lexical_probabilities(lambda: pair_ids(pairs, src, tgt), keys, tgt_size, iterations)
    most = tgt_pairs.argsort(descending=True, stable=True)[:frequent]
    most = most[tgt_pairs[most] > 0]
    s, t = keys // tgt_size, keys % tgt_size
    always = torch.zeros(tgt_size, dtype=torch.bool)
    always[most] = True
    always[list(SPECIALS)] = True
    keep = (counts >= min_count) & ~always[t]  # a frequent piece is in every batch: no slot spent on it
    s, t, counts = s[keep], t[keep], counts[keep]
    score = lexical[keep] if iterations else counts.double() / src_pairs[s].clamp(min=1).double()
    order = torch.sort(score, descending=True, stable=True).indices
    order = order[torch.sort(s[order], stable=True).indices]  # by source piece, best first within it
    s, t = s[order], t[order]
    starts = torch.zeros(src_size + 1, dtype=torch.long)
    starts[1:] = torch.bincount(s, minlength=src_size).cumsum(0)
    rank = torch.arange(s.numel()) - starts[s]  # 0 for each source piece's best target piece
    top = rank < per_source
    table = torch.full((src_size, per_source), -1, dtype=torch.long)
    table[s[top], rank[top]] = t[top]
    table[list(SPECIALS)] = -1  # a special source token says nothing of the output
    return Shortlist(table, most)


def write_shortlist(shortlist: Shortlist, path: str | Path, src: Tokenizer, tgt: Tokenizer) -> None:
    """``shortlist`` as a vocabulary map (CTranslate2's ``vmap.txt`` format), written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")

    def pieces(ids: list[int]) -> str:
        return " ".join(p for p in tgt.id_to_piece([t for t in ids if t >= 0]) if writable(p))

    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t" + pieces(shortlist.frequent.tolist()) + "\n")
        for s, row in enumerate(shortlist.table.tolist()):
            key, values = src.sp.id_to_piece(s), pieces(row)
            if values and writable(key):
                f.write(key + "\t" + values + "\n")
    tmp.replace(path)


def writable(piece: str) -> bool:
    """Whether a vocabulary map line can hold ``piece``: not empty, and no TAB, space or line end."""
    return bool(piece) and not any(c in piece for c in "\t \n\r")


def read_shortlist(path: str | Path, src: Tokenizer, tgt: Tokenizer) -> Shortlist:
    """A vocabulary map file (:func:`write_shortlist`'s format) for the model whose tokenizers are
    ``src`` and ``tgt``; a piece neither knows, or a line that is not ``key<TAB>pieces``, is a
    :class:`CorpusError` naming its line, and so is a file that lists no target piece."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such shortlist file")
    rows: dict[int, list[int]] = {}
    frequent: list[int] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): a piece may hold U+2028
        line = line.removesuffix("\r")
        if not line.strip(" \t"):
            continue
        key, tab, values = line.partition("\t")
        if not tab or " " in key:
            what = "no TAB between the source piece and its target pieces" if not tab else "an n-gram key"
            raise CorpusError(f"{path}:{number}: {what} (one source piece, a TAB, target pieces)")
        ids = [_piece_id(tgt, piece, path, number, "target") for piece in values.split(" ") if piece]
        if key:
            rows.setdefault(_piece_id(src, key, path, number, "source"), []).extend(ids)
        else:
            frequent.extend(ids)
    if not frequent and not any(rows.values()):
        raise CorpusError(f"{path}: lists no target pieces (build one: seq2seq-shortlist checkpoint=...)")
    width = max((len(r) for r in rows.values()), default=1)
    table = torch.full((len(src), width), -1, dtype=torch.long)
    for s, ids in rows.items():
        table[s, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return Shortlist(table, torch.tensor(frequent, dtype=torch.long))


def _piece_id(tokenizer: Tokenizer, piece: str, path: Path, line: int, side: str) -> int:
    i = tokenizer.sp.piece_to_id(piece)
    if i == UNK_ID and piece != tokenizer.sp.id_to_piece(UNK_ID):
        raise CorpusError(
            f"{path}:{line}: {piece!r} is not in the model's {side} vocabulary (a shortlist built for another model?)"
        )
    return i


@dataclass
class Made:
    """What :func:`run_shortlist` wrote."""

    output: Path
    listed: int  # source pieces with a list
    per_source: int
    frequent: int
    pairs: int  # sentence pairs read


def run_shortlist(cfg: Any) -> Made:
    """``seq2seq-shortlist``: the checked config's checkpoint, its tokenizers reading ``src`` and
    ``tgt`` (default: every training split of the data it was trained on), a shortlist built and
    written to ``output`` (default: ``vmap.txt`` beside the checkpoint)."""
    cfg = check_shortlist(cfg)
    loaded = load_model(cfg.checkpoint, "cpu")
    if cfg.src is not None:
        files = [(Path(cfg.src), Path(cfg.tgt))]
    else:
        data = loaded.config.get("data", {})
        splits = data.get("train", "train")
        names = [splits] if isinstance(splits, str) else list(splits)
        files = [split_paths(data["root"], name, data["src_lang"], data["tgt_lang"])[:2] for name in names]
    streams = [PairStream(src, tgt, drop_empty=True) for src, tgt in files]  # each file exists: said first
    pairs = Pairs(streams)
    shortlist = build_shortlist(
        pairs, loaded.src_tokenizer, loaded.tgt_tokenizer, cfg.per_source, cfg.frequent, cfg.min_count, cfg.iterations
    )
    output = Path(cfg.output) if cfg.output else Path(cfg.checkpoint).parent / "vmap.txt"
    write_shortlist(shortlist, output, loaded.src_tokenizer, loaded.tgt_tokenizer)
    listed = int((shortlist.table >= 0).any(dim=1).sum())
    return Made(output, listed, cfg.per_source, shortlist.frequent.numel(), sum(s.pairs for s in streams))


class Pairs:
    """The sentence pairs of several aligned file pairs, one after the other; iterable again."""

    def __init__(self, streams: list[PairStream]) -> None:
        self.streams = streams

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for stream in self.streams:
            yield from stream
