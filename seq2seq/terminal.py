"""Attention drawn in a terminal: a heatmap of shaded blocks (source tokens as columns, output
tokens as rows, aligned for double-width characters) and the most-attended source word of each
output word."""

from __future__ import annotations

import math
import shutil
import unicodedata

import torch

from seq2seq.tokenizer import piece_word
from seq2seq.translator import Translation

SHADES = "·░▒▓█"  # weights in [0, 0.2), [0.2, 0.4) ... [0.8, 1]; an exact zero (sparse attention) is blank


def display(token: str) -> str:
    """A token as shown: the word it spells (:func:`piece_word`), control characters as ``?``."""
    return "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in piece_word(token))


def width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, cols: int) -> str:
    return text + " " * max(cols - width(text), 0)


def shade(weight: float) -> str:
    """A cell: blank for a weight of exactly zero (sparsemax, entmax15 and masks give those), ``·``
    for a small one (softmax gives every word some weight), darker blocks for more; ``?`` for a
    weight that overflowed (bf16/fp16)."""
    if weight == 0.0:
        return " "
    if not math.isfinite(weight):
        return "?"
    return SHADES[min(int(weight * len(SHADES)), len(SHADES) - 1)]


def heatmap(t: Translation, max_cols: int | None = None) -> list[str]:
    """Rows: output tokens; columns: source tokens; each cell shaded by its attention weight."""
    return grid(t.tokens, t.source_tokens, t.attention, max_cols)


def grid(rows: list[str], columns: list[str], weights: torch.Tensor, max_cols: int | None = None) -> list[str]:
    """A map in the terminal: one line per row token, one column per column token, each cell
    shaded by its weight (``weights``: ``(len(rows), len(columns))``). Columns are as wide as
    their token; when that does not fit the terminal (``max_cols``, default its width), columns
    are two wide and numbered, with the numbered column tokens listed below."""
    src = [display(p) for p in columns]
    tgt = [display(p) for p in rows]
    left = max((width(s) for s in tgt), default=0) + 1
    max_cols = max_cols or shutil.get_terminal_size((100, 24)).columns
    cols = [max(width(s), 2) for s in src]
    numbered = left + sum(c + 1 for c in cols) > max_cols
    if numbered:
        cols = [2] * len(src)
        header = [f"{j % 100:>2}" for j in range(len(src))]
    else:
        header = [pad(s, c) for s, c in zip(src, cols, strict=True)]
    lines = [" " * left + " ".join(header)]
    for row, token in zip(weights.tolist(), tgt, strict=True):
        lines.append(pad(token, left) + " ".join(shade(w) * c for w, c in zip(row, cols, strict=True)))
    if numbered:
        lines.append("  " + "  ".join(f"{j}:{s}" for j, s in enumerate(src)))
    return lines


def looked_at(t: Translation) -> list[str]:
    """For each output token, the source token it attended to most, and the weight."""
    tgt = [display(p) for p in t.tokens]
    left = max((width(s) for s in tgt), default=0)
    lines = []
    for row, token in zip(t.attention, tgt, strict=True):
        j = int(row.argmax())
        lines.append(f"  {pad(token, left)}  <- {display(t.source_tokens[j])}  ({float(row[j]):.2f})")
    return lines
