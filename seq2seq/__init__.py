"""seq2seq: neural machine translation that shows attention at work.

The Python API (the commands call the same functions)::

    from seq2seq import Translator, train, evaluate

    run = train(data="toy", model="attention", overrides=["trainer.max_steps=100"])
    t = Translator.from_checkpoint(run.best, beam=5)
    out = t.translate(["Tom chase Jerry"])   # list[Translation]: text, score, tokens, source_tokens, attention
    report = evaluate(run.best, split="test", beam=5)   # EvalReport: bleu, chrf, signatures, by length

The names load on first use, so ``import seq2seq`` and ``python -m seq2seq.data.toy`` stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seq2seq.api import evaluate, train
    from seq2seq.evaluation import EvalReport
    from seq2seq.training import TrainResult
    from seq2seq.translator import Translation, Translator

_EXPORTS = {
    "train": "seq2seq.api",
    "evaluate": "seq2seq.api",
    "Translator": "seq2seq.translator",
    "Translation": "seq2seq.translator",
    "TrainResult": "seq2seq.training",
    "EvalReport": "seq2seq.evaluation",
}
__all__ = ["EvalReport", "TrainResult", "Translation", "Translator", "evaluate", "train"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'seq2seq' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # found directly from now on
    return value
