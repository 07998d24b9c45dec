"""When training stops early and how long it ran: SIGINT/SIGTERM that ask to stop after the
update under way, early stopping on a validation metric, and the clock of a validation window."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, NamedTuple

from seq2seq.config import TrainerConfig
from seq2seq.runfolder import LAST

log = logging.getLogger("seq2seq")


class StopSignals:
    """SIGINT and SIGTERM ask training to stop after the update under way (``signum`` says which);
    a second SIGINT stops at once (KeyboardInterrupt). Only the main thread can set handlers;
    elsewhere this does nothing."""

    def __init__(self) -> None:
        self.signum = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum: int, frame: Any) -> None:
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C
        self.signum = signum
        log.warning(
            "%s: finishing this update, then saving %s (Ctrl-C again to stop at once)",
            signal.Signals(signum).name,
            LAST,
        )

    def __exit__(self, kind: type | None, error: BaseException | None, trace: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


class Window:
    """Training loss, target tokens and time since the last validation (for its metrics row)."""

    def __init__(self) -> None:
        self.loss, self.tokens, self.start, self.seconds = 0.0, 0, time.perf_counter(), 0.0

    def add(self, loss: float, tokens: int) -> None:
        self.loss += loss
        self.tokens += tokens

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def speed(self) -> float:
        """Target tokens per second so far."""
        return self.tokens / max(self.elapsed(), 1e-9)

    def close(self) -> float:
        """Stop the clock; the training seconds of this window."""
        self.seconds = self.elapsed()
        return self.seconds


class EarlyStop(NamedTuple):
    """Early stopping's counters (kept in the training state) and, once it ends the run, why."""

    best_metric: float | None  # the best trainer.early_stop_metric so far
    stale_validations: int  # validations since it improved
    stop_reason: str = ""


def early_stop(before: EarlyStop, metrics: dict[str, float], t: TrainerConfig) -> EarlyStop:
    """After a validation: ``trainer.patience`` validations in a row without a better
    ``early_stop_metric`` (higher BLEU, lower loss) end the run (0: never)."""
    value = metrics[t.early_stop_metric]
    best = before.best_metric
    higher_is_better = t.early_stop_metric == "valid_bleu"
    if best is None or (value > best if higher_is_better else value < best):
        return EarlyStop(value, 0)
    stale = before.stale_validations + 1
    if t.patience > 0 and stale >= t.patience:
        reason = f"early stop: {t.early_stop_metric} has not improved on {best:g} for {t.patience} validation(s)"
        return EarlyStop(best, stale, reason)
    return EarlyStop(best, stale)
