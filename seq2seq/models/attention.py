"""Attention in the three steps of the lecture note.

1. **score** the query against every key (:class:`Score` subclasses: dot, scaled dot, general,
   additive, cosine) -> ``scores (B, T, S)``;
2. **softmax** the scores into weights, with padded source positions masked to exactly zero;
3. **weighted sum** of the values: ``context = weights @ values``.

Each score function only does step 1; :class:`Attention` runs the shared steps 2 and 3. Parts of
a score that do not depend on the query (``U h_j`` in additive, ``W h_j`` in general) are computed
once per batch by :meth:`Score.project_keys` and passed in as ``keys``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seq2seq.constants import SAME_SIZE_SCORES, SCORES
from seq2seq.errors import ConfigError


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
        return query @ keys.transpose(1, 2)  # (B, T, S)


class ScaledDotScore(Score):
    """``score(q, k) = q · k / sqrt(d)`` (Vaswani et al.): keeps the softmax out of saturation."""

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return query @ keys.transpose(1, 2) / math.sqrt(query.size(-1))  # (B, T, S)


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

    def __init__(self, temperature: float = 0.1, learn_temperature: bool = True) -> None:
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


class Attention(nn.Module):
    """score -> masked softmax -> weighted sum. Returns ``(context, weights)``."""

    def __init__(self, score: Score) -> None:
        super().__init__()
        self.score = score

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        return self.score.project_keys(values)

    def forward(
        self,
        query: torch.Tensor,  # (B, T, Q)
        keys: torch.Tensor,  # (B, S, K) from project_keys
        values: torch.Tensor,  # (B, S, V)
        mask: torch.Tensor,  # (B, 1, S) or (B, T, S), True where a real token is
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(query, keys)  # 1. score: (B, T, S)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # 2. softmax: (B, T, S), padding gets 0
        context = weights @ values  # 3. weighted sum: (B, T, V)
        return context, weights


def build_score(
    kind: str,
    *,
    query_size: int,
    key_size: int,
    attention_size: int,
    temperature: float = 0.1,
    learn_temperature: bool = True,
) -> Score:
    """The score function called ``kind`` (one of :data:`SCORES`)."""
    if kind in SAME_SIZE_SCORES and query_size != key_size:
        raise ConfigError(
            f"{kind} attention needs query size == key size (got {query_size} and {key_size}); "
            "use 'general' or 'additive', or matching sizes"
        )
    if kind == "dot":
        return DotScore()
    if kind == "scaled_dot":
        return ScaledDotScore()
    if kind == "general":
        return GeneralScore(query_size, key_size)
    if kind == "additive":
        return AdditiveScore(query_size, key_size, attention_size)
    if kind == "cosine":
        return CosineScore(temperature, learn_temperature)
    raise ConfigError(f"unknown attention score {kind!r}: choose one of {', '.join(SCORES)}")
