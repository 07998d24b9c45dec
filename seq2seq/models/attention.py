"""Attention in the three steps of the lecture note.

1. **score** the query against every key (:class:`Score` subclasses: dot, scaled dot, general,
   additive, cosine) -> ``scores (B, T, S)``;
2. **normalize** the scores into weights that sum to one, with padded source positions masked to
   exactly zero: softmax (every word some weight), or sparsemax / 1.5-entmax (:func:`sparsemax`,
   :func:`entmax15`), which give the words that matter the weight and the rest exactly zero;
3. **weighted sum** of the values: ``context = weights @ values``.

Each score function only does step 1; :class:`Attention` runs the shared steps 2 and 3. Parts of
a score that do not depend on the query (``U h_j`` in additive, ``W h_j`` in general) are computed
once per batch by :meth:`Score.project_keys` and passed in as ``keys``.

Multi-head attention (:class:`MultiHeadSelfAttention`, :class:`MultiHeadCrossAttention`) runs the
same :class:`Attention` with the scaled dot score on ``h`` heads at once: its tensors carry the
heads as a second batch dimension, ``(B, h, T, d)``, which the dot scores and the weighted sum
take as they are.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seq2seq.constants import NORMALIZERS, SAME_SIZE_SCORES, SCORES


class Score(nn.Module):
    """Step 1: ``(query (B, T, Q), keys (B, S, K)) -> scores (B, T, S)``."""

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        """The query-independent part of the score, once per batch. Default: the values."""
        return values

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class DotScore(Score):
    """``score(q, k) = q · k`` (Luong "dot")."""

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return query @ keys.transpose(-2, -1)  # (B, T, S)


class ScaledDotScore(Score):
    """``score(q, k) = q · k / sqrt(d)`` (Vaswani et al.): keeps the softmax out of saturation."""

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return query @ keys.transpose(-2, -1) / math.sqrt(query.size(-1))  # (B, T, S), or (B, h, T, S)


class GeneralScore(Score):
    """``score(q, k) = q · W k`` (Luong "general", bilinear); ``W k`` is precomputed."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(key_size, query_size, bias=False)

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        return self.key_proj(values)  # (B, S, Q)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return query @ keys.transpose(1, 2)  # (B, T, S)


class AdditiveScore(Score):
    """``score(q, k) = v · tanh(W q + U k)`` (Bahdanau "concat"): a small extra network."""

    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(key_size, attention_size, bias=False)  # U
        self.query_proj = nn.Linear(query_size, attention_size, bias=True)  # W (+ bias)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        return self.key_proj(values)  # (B, S, A)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q = self.query_proj(query)  # (B, T, A)
        hidden = torch.tanh_(keys.unsqueeze(1) + q.unsqueeze(2))  # (B, T, S, A), in place: the biggest tensor
        return self.v(hidden).squeeze(-1)  # (B, T, S)


class CosineScore(Score):
    """``score(q, k) = cos(q, k) / τ``.

    A raw cosine lies in [-1, 1], which makes an almost flat softmax over a long sentence, so the
    cosine is divided by a temperature ``τ``. By default ``1/τ`` is learned (started at
    ``1/temperature``); with ``learn_temperature=False`` it stays fixed.
    """

    def __init__(self, temperature: float, learn_temperature: bool) -> None:
        super().__init__()
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(values, dim=-1)  # (B, S, K)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q = nn.functional.normalize(query, dim=-1)  # (B, T, Q)
        return self.log_scale.exp() * (q @ keys.transpose(1, 2))  # (B, T, S)


def sparsemax(scores: torch.Tensor) -> torch.Tensor:
    """Sparsemax over the last dimension (Martins and Astudillo, 2016): the Euclidean projection of
    the scores onto the simplex, ``p = max(z - tau, 0)`` with ``tau`` chosen so that ``p`` sums to
    one; scores more than ``tau`` below the top get exactly zero. A row that is not finite gives
    NaN, as softmax does (training skips such an update)."""
    z = scores - scores.amax(dim=-1, keepdim=True)  # shift-invariant; keeps the sums small
    z_sorted = z.sort(dim=-1, descending=True).values  # z_(1) >= z_(2) >= ...
    k = torch.arange(1, z.size(-1) + 1, device=z.device, dtype=z.dtype)  # 1 .. S
    cumulative = z_sorted.cumsum(dim=-1)
    support = (1 + k * z_sorted > cumulative).sum(dim=-1, keepdim=True).clamp(min=1)  # |S|: how many get weight
    tau = (cumulative.gather(-1, support - 1) - 1) / support.to(z.dtype)
    return (z - tau).clamp(min=0)


def entmax15(scores: torch.Tensor) -> torch.Tensor:
    """1.5-entmax over the last dimension (Peters, Niculae and Martins, 2019), between softmax and
    sparsemax: ``p = max(z / 2 - tau, 0) ** 2`` summing to one, found exactly by sorting; smoother
    than sparsemax, still exactly zero on the scores far below the top. The support is found
    without gradients and ``tau`` computed on it alone (the thresholds of other support sizes
    would put 0/0 into the gradient)."""
    z = (scores - scores.amax(dim=-1, keepdim=True)) / 2
    z_sorted = z.sort(dim=-1, descending=True).values
    k = torch.arange(1, z.size(-1) + 1, device=z.device, dtype=z.dtype)
    total, total_sq = z_sorted.cumsum(dim=-1), (z_sorted**2).cumsum(dim=-1)  # over the top k, for each k
    with torch.no_grad():
        mean, mean_sq = total / k, total_sq / k
        tau = mean - ((1 - k * (mean_sq - mean**2)) / k).clamp(min=0).sqrt()  # the threshold if |S| = k
        support = (tau <= z_sorted).sum(dim=-1, keepdim=True).clamp(min=1)
    n = support.to(z.dtype)
    mean = total.gather(-1, support - 1) / n  # over the support, with gradients
    mean_sq = total_sq.gather(-1, support - 1) / n
    tau = mean - ((1 - n * (mean_sq - mean**2)) / n).clamp(min=1e-12).sqrt()
    return (z - tau).clamp(min=0) ** 2


def normalize(scores: torch.Tensor, mask: torch.Tensor | None, normalizer: str) -> torch.Tensor:
    """Step 2: scores ``(..., S)`` -> weights summing to one over the keys ``mask`` lets through
    (broadcasting to the scores; None: all), exactly zero on the others. The sparse normalizers
    run in float32 whatever the precision, as autocast runs softmax (sorting and running sums in
    bf16 would miss the sum of one by a few percent)."""
    if normalizer == "softmax":
        return torch.softmax(scores if mask is None else scores.masked_fill(~mask, float("-inf")), dim=-1)
    scores = scores.float()
    if mask is not None:  # a masked key 10 below the row's best real one is outside either support
        top = scores.masked_fill(~mask, float("-inf")).amax(dim=-1, keepdim=True)
        scores = torch.where(mask, scores, top - 10)
    weights = sparsemax(scores) if normalizer == "sparsemax" else entmax15(scores)
    return weights if mask is None else weights.masked_fill(~mask, 0.0)


class Attention(nn.Module):
    """score -> masked normalizer (softmax, sparsemax or 1.5-entmax) -> weighted sum. Returns
    ``(context, weights)``."""

    def __init__(self, score: Score, normalizer: str) -> None:
        super().__init__()
        assert normalizer in NORMALIZERS, normalizer  # the config checks the choice
        self.score, self.normalizer = score, normalizer

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        return self.score.project_keys(values)

    def forward(
        self,
        query: torch.Tensor,  # (B, T, Q)
        keys: torch.Tensor,  # (B, S, K) from project_keys
        values: torch.Tensor,  # (B, S, V)
        mask: torch.Tensor | None,  # (B, 1, S) or (B, T, S), True where a key may be seen; None: all
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(query, keys)  # 1. score: (B, T, S)
        weights = normalize(scores, mask, self.normalizer)  # 2. normalize: (B, T, S), padding gets 0
        context = weights @ values  # 3. weighted sum: (B, T, V)
        return context, weights


class MultiHeadAttention(nn.Module):
    """``heads`` scaled dot-product attentions side by side (Vaswani et al. 2017): each head
    attends over its own ``size / heads`` slice of the projected queries, keys and values through
    the shared :class:`Attention`; the heads' contexts are concatenated and projected back.

    The subclasses say where queries, keys and values come from: one sequence
    (:class:`MultiHeadSelfAttention`) or the target for queries and the source for keys and values
    (:class:`MultiHeadCrossAttention`).
    """

    def __init__(self, size: int, heads: int, normalizer: str) -> None:
        super().__init__()
        assert size % heads == 0, f"a size of {size} does not split into {heads} heads"  # checked by the config
        self.heads = heads
        self.head_size = size // heads
        self.attention = Attention(ScaledDotScore(), normalizer)
        self.out = nn.Linear(size, size)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, n * d)`` -> ``(B, n, T, d)``: ``n`` heads' slices (``n`` may be ``2h``: keys then values)."""
        b, t, width = x.shape
        return x.view(b, t, width // self.head_size, self.head_size).transpose(1, 2)  # (B, n, T, d)

    def attend(
        self,
        query: torch.Tensor,  # (B, h, T, d)
        keys: torch.Tensor,  # (B, h, S, d)
        values: torch.Tensor,  # (B, h, S, d)
        mask: torch.Tensor | None,  # broadcasts to (B, h, T, S); None: every key
        weights: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The shared three steps on every head -> output (B, T, D) and weights (B, h, T, S).

        Where the weights are not wanted (``weights=False``: training and decoding read only the
        layer that feeds heatmaps and alignment), the normalizer is softmax and there is more than
        one query position (training, teacher forcing, the encoder), the three steps run as one
        fused kernel, ``scaled_dot_product_attention`` (the same numbers up to rounding; the
        weights are never formed) -> output, None. A decoding step's single query stays on the
        three plain products: on the CPU the fused kernel's set-up (it fills its work buffers at
        every call) made a beam-5 Transformer step slower, not faster (docs/speed.md)."""
        if weights or self.attention.normalizer != "softmax" or query.size(2) == 1:
            context, found = self.attention(query, keys, values, mask)  # (B, h, T, d), (B, h, T, S)
        else:
            context, found = nn.functional.scaled_dot_product_attention(query, keys, values, attn_mask=mask), None
        b, h, t, d = context.shape
        return self.out(context.transpose(1, 2).reshape(b, t, h * d)), found  # (B, T, D)


class MultiHeadSelfAttention(MultiHeadAttention):
    """Queries, keys and values from one sequence: any two positions are one step apart.

    ``past`` holds the keys and values of earlier positions (a decoder's cache): a step then
    projects only its new positions and attends over the past and itself. The cache grows by
    concatenation, contiguous at every step: writing into a buffer allocated once for the search
    measured slower on the CPU (the products and the beam's reorder over strided views cost more
    than the allocations they save; docs/speed.md)."""

    def __init__(self, size: int, heads: int) -> None:
        super().__init__(
            size, heads, "softmax"
        )  # self-attention stays dense: model.attention.normalizer is the source's
        self.qkv = nn.Linear(size, 3 * size)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D)
        mask: torch.Tensor | None,  # (B, 1, 1, S) padding or (1, 1, T, S) causal, S = past + T
        past: tuple[torch.Tensor, torch.Tensor] | None = None,  # (B, h, t, d) keys and values
        weights: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, torch.Tensor]]:
        """-> output (B, T, D), weights (B, h, T, S) (None when not ``weights`` and fused), and the
        keys and values (B, h, S, d) to cache."""
        query, keys, values = (self.split(t) for t in self.qkv(x).chunk(3, dim=-1))  # each (B, h, T, d)
        if past is not None:
            keys = torch.cat([past[0], keys], dim=2)  # (B, h, t + T, d)
            values = torch.cat([past[1], values], dim=2)  # (B, h, t + T, d)
        output, found = self.attend(query, keys, values, mask, weights)
        return output, found, (keys, values)


class MultiHeadCrossAttention(MultiHeadAttention):
    """Queries from the target, keys and values from the source annotations. The keys and values
    do not depend on the query: :meth:`project_keys` makes them once per batch, for every step."""

    def __init__(self, size: int, heads: int, memory_size: int, normalizer: str) -> None:
        super().__init__(size, heads, normalizer)
        self.query = nn.Linear(size, size)
        self.key_value = nn.Linear(memory_size, 2 * size)

    def project_keys(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``values (B, S, M)`` -> the keys and the values of every head, ``(B, h, S, d)`` each."""
        both = self.split(self.key_value(values))  # (B, 2h, S, d): keys, then values
        return both[:, : self.heads], both[:, self.heads :]

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D)
        keys: torch.Tensor,  # (B, h, S, d) from project_keys
        values: torch.Tensor,  # (B, h, S, d) from project_keys
        mask: torch.Tensor,  # (B, 1, 1, S) True on real source tokens
        weights: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> output (B, T, D), weights (B, h, T, S) (None when not ``weights``: fused)."""
        query = self.split(self.query(x))  # (B, h, T, d)
        return self.attend(query, keys, values, mask, weights)


def build_score(
    kind: str, *, query_size: int, key_size: int, attention_size: int, temperature: float, learn_temperature: bool
) -> Score:
    """The score function called ``kind`` (one of :data:`SCORES`; the config checks the choice,
    and that a dot or cosine score has ``query_size == key_size``)."""
    assert kind in SCORES and (kind not in SAME_SIZE_SCORES or query_size == key_size), (kind, query_size, key_size)
    if kind == "dot":
        return DotScore()
    if kind == "scaled_dot":
        return ScaledDotScore()
    if kind == "general":
        return GeneralScore(query_size, key_size)
    if kind == "additive":
        return AdditiveScore(query_size, key_size, attention_size)
    return CosineScore(temperature, learn_temperature)
