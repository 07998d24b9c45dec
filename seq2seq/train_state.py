"""Where a training run stands (:class:`TrainState`) and the run folder's files that record it
(:class:`RunFiles`): ``last.pt`` to resume from, ``best.pt``, the kept step files, ``metrics.csv``
and the attention examples. The loop (:mod:`seq2seq.training`) decides when; this module knows
what each file holds and how it is written (atomically, never with non-finite weights)."""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from seq2seq.checkpoint import kept_checkpoints, kept_step, make_checkpoint, read_checkpoint, save_atomic
from seq2seq.config import TrainerConfig, resume_mismatch, with_defaults
from seq2seq.data.batching import BATCHING
from seq2seq.distributed import Processes
from seq2seq.errors import CheckpointError, TrainingStopped
from seq2seq.runfolder import (
    ATTENTION,
    AVERAGED,
    BEST,
    CONFIG,
    LAST,
    METRICS,
    example_name,
    kept_name,
    write_environment,
)
from seq2seq.schedules import Plateau, plateau
from seq2seq.stopping import EarlyStop, Window, early_stop
from seq2seq.tokenizer import Tokenizer
from seq2seq.translator import Translation

log = logging.getLogger("seq2seq")


@dataclass
class TrainState:
    """Where training stands; saved in ``last.pt`` so a run can resume exactly."""

    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches of the current epoch already trained
    step: int = 0
    best_bleu: float = -1.0  # the valid BLEU of the weights in best.pt (-1: none yet)
    train_seconds: float = 0.0
    lr: float = 0.0  # the learning rate now (the schedule moves it)
    best_valid_loss: float = float("inf")  # for the plateau schedule
    bad_epochs: int = 0  # validations without a better valid loss (the plateau schedule's counter)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None  # early stopping: the best trainer.early_stop_metric so far
    stale_validations: int = 0  # early stopping: validations since it improved
    stop_reason: str = ""  # why training ended before its budget (early stopping)
    skipped_updates: int = 0  # updates skipped for a non-finite loss or gradient, in all
    bad_in_a_row: int = 0  # ... and in a row now
    batching: int = BATCHING  # how the epochs' batches were drawn (a last.pt without it: 1)

    def count_skipped(self, loss: float, max_bad_updates: int) -> None:
        """Count an update skipped for a non-finite loss or gradient; ``max_bad_updates`` in a row
        end the run (:class:`TrainingStopped`)."""
        self.skipped_updates += 1
        self.bad_in_a_row += 1
        log.warning("non-finite loss or gradient (loss %s): update skipped (%d in a row)", loss, self.bad_in_a_row)
        if self.bad_in_a_row >= max_bad_updates:
            raise TrainingStopped(
                f"training diverged: {self.bad_in_a_row} updates in a row had a non-finite loss or gradient "
                f"(trainer.max_bad_updates={max_bad_updates}) at step {self.step}; {LAST} and "
                f"{BEST} keep the weights from before (lower trainer.lr)"
            )

    def plateau(self, valid_loss: float, t: TrainerConfig) -> bool:
        """The plateau schedule's counters after a validation (:func:`seq2seq.schedules.plateau`);
        True when the schedule shrank the learning rate (``self.lr``: the new one)."""
        after = plateau(Plateau(self.best_valid_loss, self.bad_epochs, self.lr), valid_loss, t)
        improved = valid_loss < self.best_valid_loss
        self.best_valid_loss, self.bad_epochs, self.lr = after
        return not improved and after.bad_epochs == 0  # the patience ran out: the count starts over

    def early_stop(self, metrics: dict[str, float], t: TrainerConfig) -> None:
        """Early stopping's counters after a validation (:func:`seq2seq.stopping.early_stop`);
        ``stop_reason`` says so when they end the run."""
        after = early_stop(EarlyStop(self.best_metric, self.stale_validations), metrics, t)
        self.best_metric, self.stale_validations = after.best_metric, after.stale_validations
        if after.stop_reason:
            self.stop_reason = after.stop_reason
            log.info("%s (step %d)", self.stop_reason, self.step)

    def metrics_row(self, window: Window, metrics: dict[str, float]) -> dict[str, Any]:
        """A validation's row of ``metrics.csv``: where training stands, the training figures of
        ``window`` (since the previous validation) and the validation's ``metrics``."""
        row = {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": round(window.loss / max(window.tokens, 1), 4),
            "valid_loss": round(metrics["valid_loss"], 4),
            "valid_bleu": metrics["valid_bleu"],
            "valid_chrf": metrics["valid_chrf"],
            "tokens_per_second": round(window.tokens / max(window.seconds, 1e-9)),
            "train_seconds": round(self.train_seconds, 1),
            "lr": self.lr,
            "skipped_updates": self.skipped_updates,
        }
        if "valid_alignment_accuracy" in metrics:
            row["valid_alignment_accuracy"] = metrics["valid_alignment_accuracy"]
        return row


def check_finite(model: nn.Module, step: int) -> None:
    """Refuse to save non-finite weights: the checkpoints from before the divergence stay."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise TrainingStopped(
                f"training diverged: {name} holds nan or inf at step {step}; {LAST} and {BEST} "
                "keep the weights from before (lower trainer.lr, or raise trainer.grad_clip's protection)"
            )


class RunFiles:
    """The checkpoint files and metrics of the run in ``folder``, for ``model`` trained by
    ``optimizer`` (and ``scaler`` under fp16) on these tokenizers with this resolved ``config``.
    Under torchrun every process calls :meth:`resume` and :meth:`save`; rank 0 writes."""

    def __init__(
        self,
        folder: Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        tokenizers: tuple[Tokenizer, Tokenizer],
        config: dict[str, Any],
        *,
        processes: Processes,
        device: torch.device,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        self.folder, self.model, self.optimizer, self.scaler = folder, model, optimizer, scaler
        self.src_tok, self.tgt_tok = tokenizers
        self.config, self.processes, self.device = config, processes, device

    @property
    def last(self) -> Path:
        return self.folder / LAST

    @property
    def best(self) -> Path:
        return self.folder / BEST

    def checkpoint(self, train_state: dict[str, Any] | None = None) -> dict[str, Any]:
        return make_checkpoint(self.model, self.src_tok, self.tgt_tok, self.config, train_state)

    def resume(self, t: TrainerConfig) -> TrainState | None:
        """Load ``last.pt`` if present: weights, optimizer, RNG (each process its own) and the
        state, which it returns (None: nothing to resume). A run that early stopping had ended
        goes on when resumed with more patience (or none)."""
        if not self.last.exists():
            return None
        ckpt = read_checkpoint(self.last, self.device)
        self.check_resumable(ckpt)
        ts = ckpt["train_state"]
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ts["optimizer"])
        state = TrainState(**{k: ts[k] for k in TrainState.__dataclass_fields__ if k in ts})  # newer: defaults
        if ts.get("batching", 1) != BATCHING:
            if state.batch_in_epoch > 0:
                log.warning(
                    "%s was saved in the middle of epoch %d by a version that drew batches another way: "
                    "the rest of that epoch follows this version's order (some of its pairs come twice, "
                    "some not at all); later epochs are whole",
                    self.last, state.epoch + 1,
                )  # fmt: skip
            state.batching = BATCHING
        rank, world = self.processes.rank, self.processes.world
        rngs = ts.get("rngs", [])  # one per process when several trained
        torch.set_rng_state((rngs[rank] if len(rngs) == world else ts["rng"]).cpu())
        if "cuda_rng" in ts and torch.cuda.is_available():
            cuda_rngs = ts.get("cuda_rngs", [])
            torch.cuda.set_rng_state((cuda_rngs[rank] if len(cuda_rngs) == world else ts["cuda_rng"]).cpu())
        if self.scaler is not None and "scaler" in ts:
            self.scaler.load_state_dict(ts["scaler"])
        if state.stop_reason.startswith("early stop") and (t.patience == 0 or state.stale_validations < t.patience):
            state.stop_reason = ""  # resumed with more patience (or none): training goes on
        log.info("resumed from %s at epoch %d, step %d", self.last, state.epoch, state.step)
        return state

    def check_resumable(self, ckpt: dict[str, Any]) -> None:
        """``last.pt`` holds a training state of this run: the same tokenizers and config."""
        if "train_state" not in ckpt:
            raise CheckpointError(f"{self.last}: has no training state to resume from")
        if ckpt["src_tokenizer"] != self.src_tok.model_proto or ckpt["tgt_tokenizer"] != self.tgt_tok.model_proto:
            raise CheckpointError(f"{self.last}: was trained on other data or tokenizer settings; use a new run folder")
        saved = with_defaults(ckpt["config"])
        if saved is None:
            problem = "was saved with a config this version cannot read"
        else:
            changed = resume_mismatch(saved, self.config)
            problem = f"holds a run with another {changed}" if changed else ""
        if problem:
            raise CheckpointError(
                f"{self.last}: {problem}; use a new run folder (or trainer.resume=false to start over in this one)"
            )

    def save(self, state: TrainState) -> None:
        """``last.pt``: weights, optimizer, state and RNG, to resume exactly (every process calls
        it; rank 0 writes, with every process's RNG state), then ``metrics.csv``."""
        check_finite(self.model, state.step)
        rngs = self.processes.gather(torch.get_rng_state())
        cuda_rngs = self.processes.gather(torch.cuda.get_rng_state()) if self.device.type == "cuda" else []
        if not self.processes.main:
            return
        ts: dict[str, Any] = {**state.__dict__, "optimizer": self.optimizer.state_dict(), "rng": rngs[0]}
        if self.processes.world > 1:
            ts["rngs"] = rngs
        if cuda_rngs:
            ts["cuda_rng"], ts["cuda_rngs"] = cuda_rngs[0], cuda_rngs
        if self.scaler is not None:
            ts["scaler"] = self.scaler.state_dict()
        save_atomic(self.checkpoint(ts), self.last)
        self.write_metrics(state.history)

    def save_best(self, state: TrainState) -> None:
        """``best.pt``: the weights alone, as translation and evaluation read them."""
        check_finite(self.model, state.step)
        save_atomic(self.checkpoint(), self.best)

    def keep(self, state: TrainState, keep: int) -> None:
        """Save the weights as ``stepNNNNNNNN.pt`` and drop all but the newest ``keep`` (0: none kept)."""
        if keep <= 0:
            return
        check_finite(self.model, state.step)
        save_atomic(self.checkpoint(), self.folder / kept_name(state.step))
        for old in kept_checkpoints(self.folder)[:-keep]:
            old.unlink(missing_ok=True)

    def prepare(self, step: int, finished: bool) -> None:
        """Before training goes on from ``step`` (rank 0): :meth:`prune`, then write ``config.yaml``
        (it describes ``last.pt`` from now on) and ``environment.json``."""
        self.prune(step, finished)
        (self.folder / CONFIG).write_text(OmegaConf.to_yaml(self.config), encoding="utf-8")
        write_environment(self.folder, self.device)

    def prune(self, step: int, finished: bool) -> None:
        """Before training goes on, drop what no longer belongs to this run: kept checkpoints past
        ``step`` (a run killed between keeping one and saving ``last.pt``) or from an earlier run
        (a fresh start), and an ``averaged.pt`` that further training makes stale."""
        for path in kept_checkpoints(self.folder):
            if kept_step(path) > step:
                path.unlink()
                log.info("removed %s: not from this run's first %d updates", path.name, step)
        averaged = self.folder / AVERAGED
        if averaged.exists() and not finished:
            averaged.unlink()
            log.info("removed %s: training goes on (run seq2seq-average again afterwards)", averaged.name)

    def repair_best(self, state: TrainState) -> None:
        """On resume (rank 0): a ``best.pt`` that cannot be read (a save cut short, a copy
        truncated by hand) is put right, with one warning, from the best source left:

        1. the kept step file of the validation that scored ``state.best_bleu`` (the same weights);
        2. the weights just resumed, where that validation was the last save's (the same weights);
        3. else those weights are lost: the damaged file goes, ``state.best_bleu`` starts over, and
           the next validation writes ``best.pt`` anew (a run already finished: its last weights).
        """
        if not self.best.exists():
            return
        try:
            read_checkpoint(self.best)
            return
        except CheckpointError as damaged:
            problem = str(damaged)
        step = next((row["step"] for row in state.history if row["valid_bleu"] == state.best_bleu), None)
        kept = self.folder / kept_name(step) if step is not None else None
        if kept is not None and kept.is_file():
            try:
                save_atomic(read_checkpoint(kept), self.best)
                log.warning("%s; restored %s from %s (valid BLEU %g)", problem, BEST, kept.name, state.best_bleu)
                return
            except CheckpointError:
                pass  # damaged too: try the next source
        if step is not None and step == state.step:
            self.save_best(state)
            log.warning("%s; rewrote %s from %s (its weights, valid BLEU %g)", problem, BEST, LAST, state.best_bleu)
            return
        self.best.unlink()
        log.warning(
            "%s; the weights of its valid BLEU %g are lost: removed it, the next validation writes %s anew",
            problem,
            state.best_bleu,
            BEST,
        )
        state.best_bleu = -1.0

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """``metrics.csv``: one row per validation, the columns of every row (older runs' too)."""
        if not history:
            return
        columns = list(dict.fromkeys(key for row in history for key in row))
        with open(self.folder / METRICS, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(history)

    def draw_examples(self, step: int, translations: list[Translation], chosen: list[int]) -> None:
        """``trainer.attention_examples``: each ``chosen`` valid sentence's translation and
        attention at ``step`` as data, ``attention/stepNNNNNNNN-I.json`` (what ``seq2seq-serve``'s
        training view reads; written whole or not at all), and as a heatmap beside it (``.png``)."""
        folder = self.folder / ATTENTION
        folder.mkdir(exist_ok=True)
        for i in chosen:
            data = {"step": step, "sentence": i, **translations[i].to_dict()}
            path = folder / example_name(step, i, ".json")
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        try:
            from seq2seq import plots  # matplotlib only when pictures are asked for
        except ImportError:
            log.warning("matplotlib is not installed: no %s/ pictures (pip install matplotlib)", ATTENTION)
            return
        for i in chosen:
            t = translations[i]
            if t.tokens:  # (an empty translation has no rows to draw)
                title = f"valid sentence {i}, step {step}: {t.text}"
                path = folder / example_name(step, i)
                plots.plot_attention([(title, t.source_tokens, t.tokens, t.attention)], path)
