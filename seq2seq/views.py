"""What the page's views read besides a translation (:mod:`seq2seq.serve` serves them; nothing
here needs a web framework):

- **how attention was learned**: a run folder's validations (``metrics.csv``) with the attention
  examples that ``trainer.attention_examples`` wrote at each one (``attention/*.json``), as
  :func:`training_view`; read anew at every request, so a run still training grows on the page;
- **against gold**: a corpus split with gold word alignments (:class:`GoldSplit`, e.g. the toy
  corpus' test split): :meth:`GoldSplit.view` reads a sentence's reference through the model
  (teacher forcing), and gives its attention, the gold links as the map's cells, and the
  sentence's alignment accuracy (:func:`seq2seq.evaluation.alignment_accuracy`, the figure
  ``seq2seq-eval`` reports for a whole split).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.data.corpus import load_split, split_paths
from seq2seq.data.links import piece_links
from seq2seq.errors import ConfigError, CorpusError
from seq2seq.evaluation import alignment_accuracy
from seq2seq.runfolder import ATTENTION, EXAMPLE, METRICS
from seq2seq.search import check_deadline
from seq2seq.translator import Translator, finite

log = logging.getLogger(__name__)

MAX_LISTED = 500  # sentences of a gold split the page lists (the first ones)
LISTED_CHARS = 120  # of each listed sentence (the whole one comes with its view)
MAX_STEPS = 200  # validations a training view shows (evenly spread over the run when it has more)


def training_view(folder: Path) -> dict[str, Any]:
    """A run's validations, oldest first, each ``{"step", "epoch", "valid_bleu",
    "alignment_accuracy", "examples": [...]}`` where ``examples`` are the attention examples
    written at that step (each a translation's JSON with ``sentence``, its valid line); only
    validations that have examples, at most :data:`MAX_STEPS` (evenly spread, the last kept).
    A file that cannot be read (a run writing it just now) is skipped, with a log line."""
    metrics: dict[int, dict[str, str]] = {}
    if (folder / METRICS).is_file():
        with open(folder / METRICS, newline="", encoding="utf-8") as f:
            metrics = {int(row["step"]): row for row in csv.DictReader(f) if row.get("step", "").isdigit()}
    files: dict[int, list[Path]] = {}  # step -> its examples' files, from their names alone
    for path in sorted((folder / ATTENTION).glob("step*-*.json")):
        match = EXAMPLE.fullmatch(path.name)
        if match is not None:
            files.setdefault(int(match[1]), []).append(path)
    steps = sorted(files)
    if len(steps) > MAX_STEPS:  # chosen before any file is read
        steps = [steps[round(i * (len(steps) - 1) / (MAX_STEPS - 1))] for i in range(MAX_STEPS)]
    examples: dict[int, list[dict[str, Any]]] = {}
    for step in steps:
        for path in files[step]:
            try:
                examples.setdefault(step, []).append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as e:
                log.warning("%s: skipped (%s)", path.name, e)
    steps = [step for step in steps if step in examples]
    return {
        "steps": [
            {
                "step": step,
                "epoch": number(metrics.get(step, {}).get("epoch")),
                "valid_bleu": number(metrics.get(step, {}).get("valid_bleu")),
                "alignment_accuracy": number(metrics.get(step, {}).get("valid_alignment_accuracy")),
                "examples": sorted(examples[step], key=lambda e: e.get("sentence", 0)),
            }
            for step in steps
        ]
    }


def number(text: str | None) -> float | None:
    """A metrics.csv cell as a number (None where empty or missing)."""
    try:
        return finite(float(text)) if text else None
    except ValueError:
        return None


def has_examples(folder: Path) -> bool:
    """The folder is a run that wrote attention examples."""
    return any(EXAMPLE.fullmatch(p.name) for p in (folder / ATTENTION).glob("step*-*.json"))


@dataclass
class GoldSplit:
    """A corpus split with gold word alignments (Pharaoh ``i-j``, source word i to target word j)."""

    name: str  # as the page shows it (no absolute path)
    src: list[str]
    tgt: list[str]
    links: list[list[tuple[int, int]]]

    @classmethod
    def read(cls, path: str, src_lang: str, tgt_lang: str, name: str) -> GoldSplit:
        """``ROOT/SPLIT`` -> ``ROOT/SPLIT.{src_lang}``, ``.{tgt_lang}`` and ``.align``, checked as
        every corpus is (line counts, UTF-8, links inside their sentences)."""
        root, split = Path(path).parent, Path(path).name
        align = split_paths(root, split, src_lang, tgt_lang)[2]
        if not align.is_file():
            raise ConfigError(f"gold={path}: no {align.name} beside it (gold alignments, Pharaoh i-j)")
        try:
            corpus = load_split(root, split, src_lang, tgt_lang)
        except CorpusError as e:
            raise ConfigError(f"gold={path}: {e}") from None
        assert corpus.alignments is not None
        return cls(name, corpus.src, corpus.tgt, corpus.alignments)

    def listing(self) -> dict[str, Any]:
        """What the page lists: the split's name and its first :data:`MAX_LISTED` sentences, each
        cut at :data:`LISTED_CHARS` characters (with "…"), so the answer stays small."""

        def cut(text: str) -> str:
            return text if len(text) <= LISTED_CHARS else text[: LISTED_CHARS - 1] + "…"

        shown = range(min(len(self.src), MAX_LISTED))
        return {
            "name": self.name,
            "size": len(self.src),
            "sentences": [{"index": i, "source": cut(self.src[i])} for i in shown],
        }

    def view(
        self, translator: Translator, index: int, heads: bool = False, deadline: float | None = None
    ) -> dict[str, Any]:
        """Sentence ``index`` read through the model: ``source``, ``reference``, the translation
        JSON of the reference as if the model had written it (``tokens``, ``source_tokens``,
        ``attention``; with ``heads`` every layer's maps too), ``gold`` (the gold links as
        ``[row, column]`` cells of that map: target piece, source piece) and ``accuracy`` (the
        share of gold-aligned target words whose most-attended source word is a gold link). Past
        ``deadline`` (``time.monotonic()``), before the maps: :class:`seq2seq.errors.DecodingTimeout`."""
        t = translator.read(self.src[index], self.tgt[index])
        src_pieces, tgt_pieces = t.source_tokens[:-1], t.tokens  # the source's EOS column has no word
        flat = piece_links(src_pieces, tgt_pieces, self.links[index], f"{self.name}:{index + 1}")
        cells = sorted({(flat[k + 1], flat[k]) for k in range(0, len(flat), 2)})
        weights = t.attention[:, : len(src_pieces)]
        accuracy = alignment_accuracy([weights], [src_pieces], [tgt_pieces], [self.links[index]])
        check_deadline(deadline)
        layers = translator.attention_maps(t) if heads else None
        return {
            "index": index,
            "reference": self.tgt[index],
            **t.to_dict(layers=layers, heads=heads),
            "gold": [list(c) for c in cells],
            "accuracy": finite(accuracy),
            "gold_words": len({j for _, j in self.links[index]}),
        }


def auto_gold(translator: Translator) -> str | None:
    """The served model's own test split, where it has gold alignments (``DATA_ROOT/test`` with
    ``test.align``, as the toy corpus writes), else None."""
    data = translator.config.get("data", {})
    root, src, tgt = data.get("root"), data.get("src_lang"), data.get("tgt_lang")
    if not (root and src and tgt):
        return None
    paths = split_paths(root, "test", src, tgt)
    return str(Path(root) / "test") if all(p.is_file() for p in paths) else None
