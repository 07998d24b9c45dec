"""Figures (matplotlib): BLEU by source length, attention heatmaps, training curves.

The only module that imports matplotlib, and only when a figure is drawn. Chinese labels need
a CJK font; one is looked up among the installed fonts, and when none is found the figures are
still drawn (CJK glyphs then show as boxes) after one hint on how to install one.
"""

from __future__ import annotations

import sys
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seq2seq.tokenizer import piece_word

CJK_FONT_HINTS = (
    "Noto Sans CJK",
    "Noto Serif CJK",
    "Noto Sans SC",
    "Source Han Sans",
    "WenQuanYi",
    "Droid Sans Fallback",
    "AR PL",
    "SimHei",
    "Microsoft YaHei",
    "PingFang",
    "Heiti",
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@cache
def find_cjk_font() -> str | None:
    """The family name of an installed font with Chinese glyphs, or None."""
    from matplotlib import font_manager

    for font in font_manager.fontManager.ttflist:
        if any(hint.lower() in font.name.lower() for hint in CJK_FONT_HINTS):
            return font.name
    return None


@cache
def _warn_no_cjk_font() -> None:
    print(
        "note: no CJK font found, so Chinese labels in figures show as boxes; install one "
        "(e.g. Debian/Ubuntu: apt-get install fonts-noto-cjk) and delete matplotlib's font cache",
        file=sys.stderr,
    )


def _needs_cjk(labels: list[str]) -> bool:
    return any(ord(ch) > 0x2E7F for label in labels for ch in label)


def _font_family(labels: list[str]) -> tuple[list[str], bool]:
    """Fonts for ``labels``, and whether their glyphs will all show."""
    family = ["DejaVu Sans"]
    if _needs_cjk(labels):
        cjk = find_cjk_font()
        if cjk is None:
            _warn_no_cjk_font()
            return family, False
        family.insert(0, cjk)
    return family, True


def _labels(tokens: list[str], readable: bool) -> list[str]:
    """Tick labels without SentencePiece markers; numbered when CJK glyphs will show as boxes,
    so rows and columns can still be matched with the text printed in the terminal."""
    shown = [piece_word(t) for t in tokens]
    return shown if readable else [f"{j}:{s}" if _needs_cjk([s]) else s for j, s in enumerate(shown)]


def plot_bleu_by_length(rows_by_model: dict[str, list[dict[str, Any]]], path: str | Path, title: str = "") -> None:
    """One line per model: BLEU of each source-length bucket. Beyond a few models (a sweep) the
    legend moves outside the axes and colours come from a 20-colour cycle with varied markers."""
    plt = _pyplot()
    many = len(rows_by_model) > 6
    fig, ax = plt.subplots(figsize=(9.6 if many else 6.4, 4.8 if many else 4.0))
    colours = plt.get_cmap("tab20" if many else "tab10").colors
    markers = "osD^v<>p*h"
    for k, (name, rows) in enumerate(rows_by_model.items()):
        ax.plot(
            [r["bucket"] for r in rows],
            [r["bleu"] for r in rows],
            marker=markers[k % len(markers)] if many else "o",
            color=colours[k % len(colours)],
            label=name,
        )
    ax.set_xlabel("source length (words)")
    ax.set_ylabel("BLEU")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if many:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    else:
        ax.legend()
    ax.set_title(title or "BLEU by source length")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_attention(
    panels: list[tuple[str, list[str], list[str], torch.Tensor]],
    path: str | Path,
    *,
    xlabel: str = "source",
    ylabel: str = "output",
) -> None:
    """Heatmaps side by side; each panel is ``(title, source tokens, target tokens, weights (T, S))``.
    Source tokens are columns, target tokens rows (a self-attention map: the same sequence twice,
    with its own axis names). A weight of exactly zero is white, any other at least light blue."""
    plt = _pyplot()
    labels = [tok for _, src, tgt, _ in panels for tok in src + tgt]
    family, readable = _font_family(labels)
    n_src = max(len(src) for _, src, _, _ in panels)
    n_tgt = max(len(tgt) for _, _, tgt, _ in panels)
    width = min(3 + 0.26 * n_src, 14) * len(panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, min(2 + 0.26 * n_tgt, 16)), squeeze=False)
    cmap = plt.get_cmap("Blues").with_extremes(bad="white")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        for ax, (title, src, tgt, weights) in zip(axes[0], panels, strict=True):
            # exact zeros (sparse attention) white; any weight above zero at least a light blue
            ax.imshow(np.ma.masked_equal(weights.numpy(), 0.0), cmap=cmap, vmin=-0.08, vmax=1.0, aspect="auto")
            ax.set_xticks(range(len(src)), _labels(src, readable), rotation=90, fontfamily=family, fontsize=9)
            ax.set_yticks(range(len(tgt)), _labels(tgt, readable), fontfamily=family, fontsize=9)
            ax.set_title(title, fontfamily=family)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(histories: dict[str, list[dict[str, Any]]], path: str | Path) -> None:
    """Validation BLEU and loss per epoch, one line per model."""
    plt = _pyplot()
    fig, (ax_bleu, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, rows in histories.items():
        epochs = [float(r["epoch"]) for r in rows]
        ax_bleu.plot(epochs, [float(r["valid_bleu"]) for r in rows], marker="o", label=name)
        ax_loss.plot(epochs, [float(r["valid_loss"]) for r in rows], marker="o", label=name)
    ax_bleu.set(xlabel="epoch", ylabel="valid BLEU", title="validation BLEU")
    ax_loss.set(xlabel="epoch", ylabel="valid loss (nats/token)", title="validation loss")
    for ax in (ax_bleu, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
