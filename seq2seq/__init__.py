"""seq2seq: neural machine translation that shows attention at work.

The Python API (the commands call the same functions)::

    from seq2seq import Translator, train, evaluate

    run = train(data="toy", model="attention", overrides=["trainer.max_steps=100"])
    t = Translator.from_checkpoint(run.best, beam=5)
    out = t.translate(["Tom chase Jerry"])   # list[Translation]: text, score, tokens, source_tokens, attention
    report = evaluate(run.best, split="test", beam=5)   # EvalReport: bleu, chrf, signatures, by length
"""

from seq2seq.api import evaluate, train
from seq2seq.evaluation import EvalReport
from seq2seq.search import Translation
from seq2seq.training import TrainResult
from seq2seq.translate import Translator

__all__ = ["EvalReport", "TrainResult", "Translation", "Translator", "evaluate", "train"]
