"""Decoding over ``decoder.step()``: greedy and batched beam search, both returning attention.

Both search over the same space: PAD and BOS are never produced, EOS is blocked before
``min_len`` tokens and forced after ``max_len = a * source length + b`` tokens, and a
hypothesis' score is the sum of its tokens' log-probabilities, EOS included. Beam search keeps
the beams of all sentences as one batch (``B * K`` rows), reuses the encoder output and the
precomputed attention keys at every step, sets finished hypotheses aside and stops a sentence
once it has ``K`` of them; the final ranking uses the length penalty.

Both take their settings from one :class:`~seq2seq.config.SearchConfig` (whose defaults are the
only ones), as :func:`search` does, which picks greedy for ``beam == 1``. On request (``record``)
either one writes down the candidates of every step (:class:`Candidate`: the beam as a tree, kept
and pruned, for the page); nothing is recorded otherwise. :func:`alternatives` reads, for a
finished output, the tokens the model found most probable at each of its positions (the page's
"what if": pick another word and the search continues from there, as a prefix).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch

from seq2seq.config import SearchConfig
from seq2seq.constants import BOS_ID, EOS_ID, LENGTH_NORMS, PAD_ID
from seq2seq.errors import DecodingTimeout
from seq2seq.models.ensemble import Ensemble, EnsembleMemory
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.models.state import Memory, OutputRows
from seq2seq.shortlist import Shortlist

Prefixes = list[list[int]] | None  # per sentence, the token ids its output must start with ([]: none)
KEPT, FINISHED, PRUNED = "kept", "finished", "pruned"  # what became of a recorded candidate


@dataclass
class Candidate:
    """One candidate of a search step, as recorded on request (``record``): a beam's hypothesis
    extended by one ``token``. At step ``t`` the beam slots are ``0..K-1``; ``parent`` is the slot
    at step ``t - 1`` that this candidate extends (None at step 0), ``slot`` its own slot at step
    ``t`` when it goes on. ``state``: ``kept`` (one of the K that go on), ``finished`` (EOS among
    the K best: a finished hypothesis) or ``pruned`` (among the 2K best, but not kept)."""

    parent: int | None
    token: int
    score: float  # the hypothesis' summed log-probability with this token
    state: str  # KEPT | FINISHED | PRUNED
    slot: int | None = None


Steps = list[list[Candidate]]  # one sentence's recorded search: its candidates at each step


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS/EOS
    weights: torch.Tensor  # (len(tokens), source length incl. EOS): where each output token looked
    score: float  # sum of the tokens' log-probabilities (EOS included)
    norm_score: float = 0.0  # the score the beam ranks by (after the length penalty)


def length_penalty(length: int, alpha: float, norm: str) -> float:
    """What a score is divided by: GNMT's ``((5 + |Y|) / 6) ** α``, plain ``|Y| ** α``, or 1
    (``norm`` one of :data:`LENGTH_NORMS`, checked by the config). ``|Y|`` counts EOS."""
    assert norm in LENGTH_NORMS, norm
    if norm == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    if norm == "length":
        return float(length) ** alpha
    return 1.0


def max_lengths(src_mask: torch.Tensor, a: float, b: int, prefix: torch.Tensor | None = None) -> torch.Tensor:
    """Most output tokens (EOS excluded) per sentence: ``a * source length + b``, at least 1, and
    at least the sentence's forced ``prefix`` (``(B, P)``, PAD after its end) plus ``b``, so a long
    prefix still leaves room to go on."""
    most = (src_mask.sum(dim=1).float() * a + b).long().clamp(min=1)  # (B,)
    return most if prefix is None else torch.maximum(most, (prefix != PAD_ID).sum(dim=1) + max(b, 1))


def _allowed(
    log_probs: torch.Tensor, t: int, max_len: torch.Tensor, min_len: int, prefix: torch.Tensor | None = None
) -> torch.Tensor:
    """Mask the tokens not allowed at step ``t`` (0-based: ``t`` tokens already produced): EOS
    before ``min_len`` tokens, and everything but EOS from a row's ``max_len`` on (the length
    limit wins where ``min_len`` is larger). A row
    whose ``prefix (N, P)`` (PAD after its end) holds a token at ``t`` may write only that token,
    at the model's own log-probability (``max_len`` covers the prefix: :func:`max_lengths`)."""
    log_probs[:, PAD_ID] = float("-inf")
    log_probs[:, BOS_ID] = float("-inf")
    at_limit = t >= max_len  # (N,)
    eos = log_probs[:, EOS_ID].clone() if bool(at_limit.any()) else None  # the limit wins over min_len
    if t < min_len:
        log_probs[:, EOS_ID] = float("-inf")
    if eos is not None:
        log_probs[at_limit] = float("-inf")
        log_probs[at_limit, EOS_ID] = eos[at_limit]
    if prefix is not None and t < prefix.size(1):
        forced = prefix[:, t]  # (N,)
        rows = forced != PAD_ID
        if bool(rows.any()):
            keep = log_probs.gather(1, forced.unsqueeze(1)).squeeze(1)  # (N,)
            log_probs[rows] = float("-inf")
            log_probs[rows, forced[rows]] = keep[rows]
    return log_probs


def prefix_tensor(prefixes: Prefixes, rows: int, device: torch.device) -> torch.Tensor | None:
    """The sentences' forced beginnings as ``(rows, P)`` token ids, PAD after each one's end;
    None when no sentence has one."""
    if not prefixes or not any(prefixes):
        return None
    assert len(prefixes) == rows and all(EOS_ID not in p and PAD_ID not in p and BOS_ID not in p for p in prefixes)
    out = torch.full((rows, max(len(p) for p in prefixes)), PAD_ID, dtype=torch.long, device=device)
    for i, p in enumerate(prefixes):
        out[i, : len(p)] = torch.tensor(p, dtype=torch.long)
    return out


@torch.no_grad()
def greedy_search(
    model: Seq2Seq | Ensemble,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    cfg: SearchConfig,
    prefixes: Prefixes = None,
    deadline: float | None = None,
    record: list[Steps] | None = None,
    shortlist: Shortlist | None = None,
) -> list[Hypothesis]:
    """The most probable next token at every step, until EOS, for ``src (B, S)`` and its
    ``src_mask (B, S)``, within ``cfg``'s lengths (``max_len_a``, ``max_len_b``, ``min_len``);
    a sentence's ``prefixes`` entry (token ids, may be empty) is written first, as given, and the
    search goes on from it (its log-probabilities count in the score). Past ``deadline`` (a
    ``time.monotonic()`` value) it stops with :class:`seq2seq.errors.DecodingTimeout`. With
    ``record`` (one empty list per sentence), each step's chosen token (kept, or finished at
    EOS) and the runner-up (pruned) are appended to the sentence's list while it is alive.
    With a ``shortlist``, only the batch's candidate target pieces are scored (:func:`restrict`).

    1. encode the source once: the decoder's memory, its first state;
    2. each step ``t``: the decoder steps every sentence's previous token ``prev (B,)`` ->
       logits (B, V) and weights (B, S); the tokens not allowed at ``t`` are masked
       (:func:`_allowed`); the argmax is the next token, and its log-probability is added to
       the score of the sentences still alive;
    3. a sentence that wrote EOS leaves the batch (its rows of the state and the memory are
       dropped, so no later step is spent on it); stop when none is left.
    """
    memory = model.encode(src, src_mask)
    batch_size, device = src.size(0), src.device
    prefix = prefix_tensor(prefixes, batch_size, device)  # (B, P) or None
    max_len = max_lengths(src_mask, cfg.max_len_a, cfg.max_len_b, prefix)  # (B,)
    memory, prefix = restrict(model, memory, src, prefix, shortlist)
    steps = int(max_len.max()) + 1  # the most steps the search can take (the last writes EOS)
    state = model.decoder.init_state(memory)
    prev = torch.full((batch_size,), BOS_ID, dtype=torch.long, device=device)  # (N,)
    rows = torch.arange(batch_size, device=device)  # (N,) the sentence of each row still searching
    scores = torch.zeros(batch_size, device=device)  # (B,)
    tokens = torch.full((batch_size, steps), EOS_ID, dtype=torch.long, device=device)  # (B, steps), written at t
    weights: torch.Tensor | None = None  # (B, steps, S) once the first step says the weights' type
    for t in range(steps):
        check_deadline(deadline)
        logits, state, w = model.decoder.step(prev, state, memory)  # (N, V), (N, S)
        log_probs = _allowed(torch.log_softmax(logits.float(), dim=-1), t, max_len, cfg.min_len, prefix)  # (N, V)
        best = log_probs.argmax(dim=-1)  # (N,)
        ids = piece_ids(memory)  # (C,): a shortlist's positions -> piece ids; None: they are ids
        if record is not None:
            _record_greedy([record[i] for i in rows.tolist()], t, scores[rows], log_probs, ids)
        scores[rows] += log_probs.gather(1, best.unsqueeze(1)).squeeze(1)
        prev = best if ids is None else ids[best]  # (N,)
        if weights is None:
            weights = w.new_empty(batch_size, steps, w.size(1))
        tokens[rows, t] = prev
        weights[rows, t] = w
        going = prev != EOS_ID  # (N,)
        if not bool(going.all()):  # sentences that wrote EOS leave the batch: no step is spent on them
            if not bool(going.any()):
                break
            keep = going.nonzero().squeeze(1)  # (N',)
            rows, prev, max_len = rows[keep], prev[keep], max_len[keep]
            prefix = None if prefix is None else prefix[keep]
            state, memory = state.select(keep), memory.select(keep)
    assert weights is not None
    tokens_t = tokens[:, : t + 1].cpu()  # (B, T)
    weights_t = weights[:, : t + 1].float().cpu()  # (B, T, S)
    lengths = src_mask.sum(dim=1).tolist()
    out = []
    for b in range(batch_size):
        seq = tokens_t[b].tolist()
        n = seq.index(EOS_ID)
        out.append(Hypothesis(seq[:n], weights_t[b, :n, : lengths[b]], float(scores[b]), float(scores[b])))
    return out


@torch.no_grad()
def beam_search(
    model: Seq2Seq | Ensemble,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    cfg: SearchConfig,
    prefixes: Prefixes = None,
    deadline: float | None = None,
    record: list[Steps] | None = None,
    shortlist: Shortlist | None = None,
) -> list[list[Hypothesis]]:
    """The ``cfg.nbest`` best hypotheses per sentence of ``src (B, S)`` (``src_mask (B, S)``),
    best first, by ``score / length_penalty``: a beam of ``K = cfg.beam``, ranked with
    ``cfg.length_penalty`` (α) and ``cfg.length_norm``, within ``cfg``'s lengths. A sentence's
    ``prefixes`` entry (token ids) is the start of every hypothesis: while it lasts, step 3
    allows only its next token, so one beam carries it and the search widens after it. Past
    ``deadline`` (a ``time.monotonic()`` value) it stops with :class:`seq2seq.errors.DecodingTimeout`.
    With ``record`` (one empty list per sentence), each step's ``2K`` candidates of every
    sentence still searching are appended to its list (:class:`Candidate`: kept, finished, pruned).
    With a ``shortlist``, only the batch's candidate target pieces are scored (:func:`restrict`).

    The ``K`` beams of every sentence are rows of one batch: row ``b * K + j`` is beam ``j`` of
    sentence ``b``. ``scores (B, K)`` holds each beam's summed log-probability.

    1. encode once; the memory (annotations, keys, the Transformer's cross-attention keys and
       values) is repeated ``K`` times per sentence, once: ``(B*K, ...)``;
    2. each step ``t``: the decoder steps every row's previous token ``prev (B*K,)`` -> logits
       (B*K, V) and weights (B*K, S). At ``t = 0`` a sentence's beams are all the same, so it
       steps ``B`` rows and copies the result ``K`` times (only beam 0 starts with score 0, the
       others at -inf, so the ``K`` candidates are ``K`` different tokens);
    3. the tokens not allowed at ``t`` are masked; every beam's score plus every token's
       log-probability is a candidate, ``(B, K*V)``; the ``2K`` best per sentence are kept, each
       with its beam (``origin``) and ``token``: with at most ``K`` EOS among them, at least
       ``K`` go on;
    4. an EOS among the ``K`` best candidates finishes a hypothesis: it is set aside with its
       tokens, weights and length-penalised score; a sentence with ``K`` finished ones is done
       and leaves the batch (its rows of the state and the memory are dropped, so no later step
       is spent on it), and the search stops when every sentence is;
    5. the ``K`` best candidates that are not EOS go on: the decoder state, the token history
       (B*K, t+1) and the weights (B*K, t+1, S) are reordered to the rows they continue, into
       buffers allocated for the search's length limit (:class:`Rows`: again only when
       sentences leave the batch), so a step allocates no history.

    Finally each sentence's finished hypotheses are sorted by normalised score.
    """
    batch, k, device = src.size(0), cfg.beam, src.device
    first: Memory = model.encode(src, src_mask)
    beams = torch.arange(batch, device=device).repeat_interleave(k)  # (B*K,) row -> sentence
    prefix = prefix_tensor(prefixes, batch, device)  # (B, P) or None
    max_len = max_lengths(src_mask, cfg.max_len_a, cfg.max_len_b, prefix)  # (B,)
    first, prefix = restrict(model, first, src, prefix, shortlist)
    memory = first.select(beams)  # encoder output and keys, once
    row_prefix = None if prefix is None else prefix.index_select(0, beams)  # (B*K, P)
    steps = int(max_len.max()) + 1  # the most steps the search can take (the last writes EOS)
    state = model.decoder.init_state(first)  # (B rows until the first step is taken)
    row_max_len = max_len.repeat_interleave(k)  # (B*K,)
    scores = torch.full((batch, k), float("-inf"), device=device)  # (B, K)
    scores[:, 0] = 0.0  # one live beam per sentence at the start
    prev = torch.full((batch * k,), BOS_ID, dtype=torch.long, device=device)  # (B*K,)
    history = Rows(torch.empty(steps, batch * k, dtype=torch.long, device=device))  # (t, B*K) filled
    attn: Rows | None = None  # (t, B*K, S) filled, once the first step says the weights' type
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]  # set aside, per sentence
    sentences = list(range(batch))  # the sentence of each of the B still searching
    offsets = (torch.arange(batch, device=device) * k).unsqueeze(1)  # (B, 1): each sentence's first row
    src_lengths = src_mask.sum(dim=1).tolist()
    slot = torch.arange(k, device=device)  # (K,)
    for t in range(steps):
        check_deadline(deadline)
        if t == 0:  # a sentence's K beams are still one: step it once, on B rows, then copy
            logits, state, w = model.decoder.step(prev[:batch], state, first)  # (B, V), (B, S)
            logits, state, w = logits.index_select(0, beams), state.select(beams), w.index_select(0, beams)
        else:
            logits, state, w = model.decoder.step(prev, state, memory)  # (B*K, V), (B*K, S)
        if attn is None:
            attn = Rows(w.new_empty(steps, batch * k, w.size(1)))  # (t, B*K, S) filled
        log_probs = _allowed(torch.log_softmax(logits.float(), dim=-1), t, row_max_len, cfg.min_len, row_prefix)
        vocab = log_probs.size(1)
        cand = (scores.view(-1, 1) + log_probs).view(batch, k * vocab)  # (B, K*V)
        top_scores, top_index = cand.topk(min(2 * k, k * vocab), dim=1)  # (B, 2K)
        origin, token = top_index // vocab, top_index % vocab  # (B, 2K) beam and token of each
        ids = piece_ids(memory)  # (C,): a shortlist's positions -> piece ids; None: they are ids
        token = token if ids is None else ids[token]
        is_eos = token == EOS_ID  # (B, 2K)
        # 4. EOS among the K best candidates: a finished hypothesis, set aside
        ends = is_eos[:, :k] & (top_scores[:, :k] > float("-inf"))  # (B, K)
        done = torch.zeros(batch, dtype=torch.bool, device=device)  # (B,)
        if bool(ends.any()):
            for b, j in ends.nonzero().tolist():
                row, s = b * k + int(origin[b, j]), sentences[b]
                finished[s].append(
                    _finished(history.row(row, t), attn.row(row, t)[:, : src_lengths[s]], float(top_scores[b, j]), cfg)
                )
            done = torch.tensor([len(finished[s]) >= k for s in sentences], device=device)
        # 5. the K best candidates that go on
        go_on = top_scores.masked_fill(is_eos, float("-inf"))  # (B, 2K)
        scores, pick = go_on.topk(k, dim=1)  # (B, K)
        done |= ~(scores > float("-inf")).any(dim=1)  # no beam left to go on (a tiny vocabulary): done too
        scores = scores.masked_fill(done.unsqueeze(1), float("-inf"))
        if record is not None:
            _record_beam([record[s] for s in sentences], t, top_scores, origin, token, ends, pick, scores)
        if bool(done.all()):
            break
        rows = offsets + origin.gather(1, pick)  # (B, K) the row each candidate continues
        prev = token.gather(1, pick)  # (B, K)
        if bool(done.any()):  # sentences with K finished hypotheses leave the batch, with their rows
            keep = (~done).nonzero().squeeze(1)  # (B',)
            kept_rows = (keep.unsqueeze(1) * k + slot).view(-1)  # (B'*K,) their rows now
            rows, prev, scores = rows[keep], prev[keep], scores[keep]
            memory, row_max_len = memory.select(kept_rows), row_max_len[kept_rows]
            row_prefix = None if row_prefix is None else row_prefix[kept_rows]
            sentences = [sentences[i] for i in keep.tolist()]
            batch = len(sentences)
            offsets = offsets[:batch]  # the first rows of the narrower batch
        rows, prev = rows.view(-1), prev.view(-1)  # (B*K,) the row each continues, and its token
        state = state.select(rows)
        history.reorder(rows, t, prev)  # (t+1, B*K)
        attn.reorder(rows, t, w.index_select(0, rows))  # (t+1, B*K, S)
    out = []
    for f in finished:
        f.sort(key=lambda h: h.norm_score, reverse=True)
        out.append(f[: max(cfg.nbest, 1)])
    return out


class Rows:
    """A beam's history, allocated for the whole search's length and time-major, ``(steps, B*K, ...)``,
    of which the first ``t`` positions are filled (``now[:t]``, one contiguous block). :meth:`reorder`
    gathers the rows the beams go on from into a second buffer of the same size, writes position
    ``t``, and swaps the two: no allocation per step (only when the batch narrows), and no copy of
    the positions not yet written.
    (Row-major, ``(B*K, steps, ...)``, the filled part would be a strided view, which PyTorch's CPU
    gather writes several times slower than the concatenation it replaces.)"""

    def __init__(self, buffer: torch.Tensor) -> None:
        self.now, self.spare = buffer, torch.empty_like(buffer)

    def reorder(self, rows: torch.Tensor, t: int, new: torch.Tensor) -> None:
        """Row ``i`` becomes old row ``rows[i]``, and its position ``t`` is ``new[i]``. Fewer
        ``rows`` than before (finished sentences left the batch): a narrower buffer is allocated
        (and the other one at the next reorder), so a search allocates twice per narrowing."""
        if rows.numel() != self.spare.size(1):
            self.spare = self.spare.new_empty((self.spare.size(0), rows.numel(), *self.spare.shape[2:]))
        torch.index_select(self.now[:t], 1, rows, out=self.spare[:t])
        self.spare[t] = new
        self.now, self.spare = self.spare, self.now

    def row(self, i: int, t: int) -> torch.Tensor:
        """Row ``i``'s first ``t`` positions, ``(t, ...)``."""
        return self.now[:t, i]


def _record_beam(
    record: list[Steps],
    t: int,
    top_scores: torch.Tensor,
    origin: torch.Tensor,
    token: torch.Tensor,
    ends: torch.Tensor,
    pick: torch.Tensor,
    scores: torch.Tensor,
) -> None:
    """Append step ``t``'s candidates (the ``2K`` best, ``top_scores``/``origin``/``token``
    ``(B, 2K)``) of the sentences still searching (``record``: their lists, one per sentence of
    the batch) to their lists: ``ends (B, K)`` marks the finished ones, ``pick (B, K)`` the
    candidates that went on into slots ``0..K-1`` (those whose ``scores (B, K)`` is finite)."""
    top, orig, tok = top_scores.tolist(), origin.tolist(), token.tolist()
    ended, picked, going = ends.tolist(), pick.tolist(), (scores > float("-inf")).tolist()
    for b, steps in enumerate(record):
        slots = {c: s for s, c in enumerate(picked[b]) if going[b][s]}
        step = []
        for c, score in enumerate(top[b]):
            if score == float("-inf"):
                continue
            state = FINISHED if c < len(ended[b]) and ended[b][c] else KEPT if c in slots else PRUNED
            step.append(Candidate(None if t == 0 else orig[b][c], tok[b][c], score, state, slots.get(c)))
        steps.append(step)


def _record_greedy(
    record: list[Steps], t: int, scores: torch.Tensor, log_probs: torch.Tensor, ids: torch.Tensor | None = None
) -> None:
    """Append greedy step ``t`` of the sentences still searching (``record``: their lists, one per
    row) to their lists: the chosen token (the argmax of ``log_probs (N, V)``; kept in slot 0, or
    finished at EOS) and the runner-up (pruned), scored from their ``scores (N,)`` so far
    (``log_probs`` over a shortlist: position ``i`` is token ``ids[i]``)."""
    top, index = log_probs.topk(2, dim=1)  # (N, 2)
    index = index if ids is None else ids[index]
    total = (scores.unsqueeze(1) + top).tolist()
    for b, steps in enumerate(record):
        parent = None if t == 0 else 0
        chosen, runner_up = int(index[b, 0]), int(index[b, 1])
        step = [
            Candidate(
                parent, chosen, total[b][0], FINISHED if chosen == EOS_ID else KEPT, None if chosen == EOS_ID else 0
            )
        ]
        if total[b][1] > float("-inf"):
            step.append(Candidate(parent, runner_up, total[b][1], PRUNED))
        steps.append(step)


@torch.no_grad()
def alternatives(
    model: Seq2Seq | Ensemble,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    outputs: list[list[int]],
    k: int,
    cfg: SearchConfig,
    deadline: float | None = None,
) -> list[list[list[tuple[int, float]]]]:
    """What else the model could have written: for each sentence of ``src (B, S)`` and its
    finished output (``outputs``, token ids without EOS), at each position ``t``, the ``k``
    tokens most probable given the output before ``t`` (its own token among them, unless the
    masks of the search ruled it in), as ``(token id, log-probability)``, best first.

    The output is stepped through as the search stepped it (teacher forcing, one token at a
    time, the same :func:`_allowed` masks), so the numbers are those a search without a
    shortlist saw (they are over every piece, not a shortlist's candidates); an
    alternative ``a`` at ``t`` is the prefix ``output[:t] + [a]`` for a new search. Past
    ``deadline`` (``time.monotonic()``) it stops with :class:`seq2seq.errors.DecodingTimeout`."""
    memory = model.encode(src, src_mask)
    state = model.decoder.init_state(memory)
    batch, device = src.size(0), src.device
    longest = max((len(o) for o in outputs), default=0)
    forced = torch.full((batch, longest), EOS_ID, dtype=torch.long, device=device)  # (B, T)
    for b, out in enumerate(outputs):
        forced[b, : len(out)] = torch.tensor(out, dtype=torch.long)
    max_len = max_lengths(src_mask, cfg.max_len_a, cfg.max_len_b, prefix_tensor(outputs, batch, device))
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)  # (B,)
    found: list[list[list[tuple[int, float]]]] = [[] for _ in range(batch)]
    for t in range(longest):
        check_deadline(deadline)
        logits, state, _ = model.decoder.step(prev, state, memory)  # (B, V)
        log_probs = _allowed(torch.log_softmax(logits.float(), dim=-1), t, max_len, cfg.min_len)
        top, index = log_probs.topk(min(k, log_probs.size(1)), dim=1)  # (B, k)
        for b, out in enumerate(outputs):
            if t < len(out):
                found[b].append(
                    [(i, s) for i, s in zip(index[b].tolist(), top[b].tolist(), strict=True) if s > float("-inf")]
                )
        prev = forced[:, t]
    return found


def restrict(
    model: Seq2Seq | Ensemble,
    memory: Memory | EnsembleMemory,
    src: torch.Tensor,
    prefix: torch.Tensor | None,
    shortlist: Shortlist | None,
) -> tuple[Any, torch.Tensor | None]:
    """With a ``shortlist``, a batch's search scores only its candidate pieces ``ids (C,)``
    (:meth:`Shortlist.candidates` of ``src (B, S)`` and the forced ``prefix (B, P)``): the memory
    (every model's, in an ensemble) carries the output layer's rows of them
    (:class:`OutputRows`), so a step's logits are ``(N, C)``, position ``i`` standing for piece
    ``ids[i]`` (:func:`piece_ids`), and the prefix becomes positions. The special tokens keep
    their ids as positions (``ids`` is sorted), so the masks of :func:`_allowed` hold as they
    are. -> the memory, the prefix."""
    if shortlist is None:
        return memory, prefix
    ids = shortlist.candidates(src, prefix)  # (C,)
    if isinstance(memory, EnsembleMemory):
        members = model.members  # type: ignore[union-attr]
        parts = zip(memory.parts, members, strict=True)
        memory = EnsembleMemory([cut(m, one.decoder.generator, ids) for m, one in parts])
    else:
        memory = cut(memory, model.decoder.generator, ids)  # type: ignore[union-attr]
    if prefix is not None:  # each forced id's position (PAD, id 0, stays 0)
        position = torch.zeros(int(ids.max()) + 1, dtype=torch.long, device=ids.device)
        position[ids] = torch.arange(ids.numel(), device=ids.device)
        prefix = position[prefix]  # (B, P)
    return memory, prefix


def cut(memory: Memory, generator: torch.nn.Module, ids: torch.Tensor) -> Memory:
    """``memory`` with the output layer ``generator`` cut to the pieces ``ids (C,)``."""
    return dataclasses.replace(memory, vocab=OutputRows.of(generator, ids))


def piece_ids(memory: Memory | EnsembleMemory) -> torch.Tensor | None:
    """The piece id of each position of the logits, ``(C,)``; None: no shortlist (positions are
    ids)."""
    first = memory.parts[0] if isinstance(memory, EnsembleMemory) else memory
    return None if first.vocab is None else first.vocab.ids


def _finished(tokens: torch.Tensor, weights: torch.Tensor, score: float, cfg: SearchConfig) -> Hypothesis:
    """A hypothesis ended by EOS: its ``tokens (t,)`` (EOS left out, counted by the penalty), the
    ``weights (t, source length)`` they were written with, and its summed log-probability."""
    penalty = length_penalty(tokens.numel() + 1, cfg.length_penalty, cfg.length_norm)
    return Hypothesis(tokens.tolist(), weights.float().cpu().clone(), score, score / penalty)  # (its own copy:
    # the buffers it is read from are written again)


def search(
    model: Seq2Seq | Ensemble,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    *,
    cfg: SearchConfig,
    prefixes: Prefixes = None,
    deadline: float | None = None,
    record: list[Steps] | None = None,
    shortlist: Shortlist | None = None,
) -> list[list[Hypothesis]]:
    """Greedy when ``cfg.beam == 1``, else beam search; ``cfg.nbest`` hypotheses per sentence,
    each starting with its sentence's ``prefixes`` entry when given; stopped past ``deadline``
    (``time.monotonic()``) with :class:`seq2seq.errors.DecodingTimeout`; each step's candidates
    appended to ``record`` (one list per sentence) when it is given; with a ``shortlist``
    (:mod:`seq2seq.shortlist`), only each batch's candidate target pieces are scored."""
    if cfg.beam <= 1:
        return [[h] for h in greedy_search(model, src, src_mask, cfg, prefixes, deadline, record, shortlist)]
    return beam_search(model, src, src_mask, cfg, prefixes, deadline, record, shortlist)


def check_deadline(deadline: float | None) -> None:
    """A search step may start: no ``deadline``, or it has not passed."""
    if deadline is not None and time.monotonic() > deadline:
        raise DecodingTimeout("the search ran past its time limit")


def describe(cfg: SearchConfig) -> str:
    """The search in words, for reports."""
    if cfg.beam <= 1:
        return "greedy"
    return f"beam {cfg.beam}, length penalty {cfg.length_norm} α={cfg.length_penalty}"
