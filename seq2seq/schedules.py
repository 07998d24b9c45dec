"""Learning-rate schedules (``trainer.lr_schedule``) as pure functions of where training stands.

``warmup_lr`` and ``anneal_lr`` give the rate of the next update from the step or the spent
fraction of the budget (``budget_spent``); ``plateau`` takes the plateau schedule's two counters
and a validation loss and returns their new values. Nothing here holds state or touches the
optimizer: the loop sets what they return.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from seq2seq.config import TrainerConfig
from seq2seq.constants import WARMUP_SCHEDULES


def warmup_lr(schedule: str, step: int, lr: float, warmup: int, size: int) -> float:
    """The learning rate of update ``step`` (from 1) under a warm-up schedule:

    - ``inverse_sqrt`` (fairseq): ``lr * step / warmup`` while warming up, then ``lr * sqrt(warmup / step)``;
    - ``noam`` (Vaswani et al. 2017): ``lr * size^-0.5 * min(step^-0.5, step * warmup^-1.5)``, where
      ``lr`` is a factor: the peak, at ``step = warmup``, is ``lr / sqrt(size * warmup)``.
    """
    if schedule == "inverse_sqrt":
        return lr * min(step / warmup, math.sqrt(warmup / step))
    if schedule == "noam":
        return lr * size**-0.5 * min(step**-0.5, step * warmup**-1.5)
    raise ValueError(f"{schedule!r} is not a warm-up schedule: choose one of {', '.join(WARMUP_SCHEDULES)}")


def anneal_lr(spent: float, lr: float, min_lr: float, anneal: float) -> float:
    """The anneal schedule: ``lr`` until the last ``anneal`` of the budget, then a linear fall to
    ``min_lr`` at its end (``spent``: the budget's spent fraction, 0 to 1), so a run with a fixed
    budget ends converged. Under max_minutes the budget is training time: the decay follows the clock."""
    left = (1.0 - spent) / anneal  # 1 when the decay starts, 0 at the end
    return lr if left >= 1.0 else min_lr + (lr - min_lr) * max(left, 0.0)


def budget_spent(t: TrainerConfig, epochs: float, step: int, seconds: float) -> float:
    """The spent fraction of the training budget, 0 to 1: the furthest along of ``epochs`` (done,
    with the fraction of the current one), ``max_steps`` and ``max_minutes`` (whichever will stop
    training first)."""
    spent = [epochs / max(t.epochs, 1)]
    if t.max_steps > 0:
        spent.append(step / t.max_steps)
    if t.max_minutes > 0:
        spent.append(seconds / (60 * t.max_minutes))
    return min(max(spent), 1.0)


def budget_over(t: TrainerConfig, epoch: int, step: int, seconds: float) -> bool:
    """Whether ``epoch`` completed epochs, ``step`` updates or ``seconds`` of training spend the budget."""
    return (
        epoch >= t.epochs
        or (t.max_steps > 0 and step >= t.max_steps)
        or (t.max_minutes > 0 and seconds >= 60 * t.max_minutes)
    )


class Plateau(NamedTuple):
    """The plateau schedule's counters (kept in the training state) and the learning rate."""

    best_valid_loss: float
    bad_epochs: int  # validations in a row without a better valid loss
    lr: float


def plateau(before: Plateau, valid_loss: float, t: TrainerConfig) -> Plateau:
    """After a validation: a better valid loss resets the count; ``lr_patience`` validations
    without one shrink the rate by ``lr_shrink`` (not below ``min_lr``) when the schedule is
    ``plateau``. The counters move under every schedule."""
    if valid_loss < before.best_valid_loss:
        return Plateau(valid_loss, 0, before.lr)
    bad = before.bad_epochs + 1
    if t.lr_schedule == "plateau" and bad > t.lr_patience:
        return Plateau(before.best_valid_loss, 0, max(before.lr * t.lr_shrink, t.min_lr))
    return Plateau(before.best_valid_loss, bad, before.lr)
