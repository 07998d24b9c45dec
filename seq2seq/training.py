"""The training loop (``seq2seq-train`` runs :func:`train_run`).

One run folder holds everything: ``config.yaml`` (resolved), ``best.pt`` (highest validation
BLEU), ``last.pt`` (for resuming: also the optimizer, the step and the RNG state),
``metrics.csv``. Batch order is a function of (seed, epoch), so a run resumed from ``last.pt``
repeats exactly the updates the uninterrupted run would have made.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import math
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from seq2seq.board import Board, check_tensorboard
from seq2seq.checkpoint import kept_checkpoints, kept_step, make_checkpoint, read_checkpoint, save_atomic
from seq2seq.config import TrainConfig, check_train, describe_model, resume_mismatch, uses_attention, with_defaults
from seq2seq.constants import PAD_ID, WARMUP_SCHEDULES
from seq2seq.data.batching import Batch, bucket_batches, collate
from seq2seq.data.prepare import PreparedData, prepare_data
from seq2seq.device import autocast_dtype, resolve_device
from seq2seq.distributed import Processes, join, leave
from seq2seq.errors import CheckpointError, ConfigError, TrainingStopped
from seq2seq.evaluation import alignment_accuracy, bleu_tokenizer, corpus_scores, forced_weights
from seq2seq.models.seq2seq import Seq2Seq, build_model
from seq2seq.runfolder import RunLock, remove_stale_temporaries, write_environment
from seq2seq.threads import ThreadGovernor
from seq2seq.translator import Translation, translate_sentences

log = logging.getLogger("seq2seq")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainState:
    """Where training stands; saved in ``last.pt`` so a run can resume exactly."""

    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches of the current epoch already trained
    step: int = 0
    best_bleu: float = -1.0
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


@dataclass
class TrainResult:
    """What a training run left: its folder, checkpoints, metrics and size."""

    run_dir: Path
    best: Path  # highest validation BLEU
    last: Path  # for resuming (weights, optimizer, RNG, position)
    state: TrainState  # state.history: one metrics row per validation (as metrics.csv)
    params: int

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return self.state.history

    @property
    def best_bleu(self) -> float:
        return self.state.best_bleu


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


def sequence_loss(logits: torch.Tensor, tgt_out: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Summed token cross-entropy, padding ignored. ``logits (B, T, V)``, ``tgt_out (B, T)``
    (or ``(N, V)`` and ``(N,)``)."""
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),  # (B * T, V)
        tgt_out.reshape(-1),  # (B * T,)
        ignore_index=PAD_ID,
        reduction="sum",
        label_smoothing=label_smoothing,
    )


def batch_loss(model: Seq2Seq, batch: Batch, label_smoothing: float = 0.0) -> torch.Tensor:
    """The batch's summed loss under teacher forcing. The output layer (the biggest matrix)
    runs on the real target positions only, not on padding."""
    features, _ = model.decoder.features(batch.tgt_in, model.encode(batch.src, batch.src_mask))  # (B, T, F)
    real = batch.tgt_out != PAD_ID  # (B, T)
    logits = model.decoder.logits(features[real])  # (N, vocab)
    return sequence_loss(logits, batch.tgt_out[real], label_smoothing)


class Trainer:
    """Adam, gradient clipping, length-bucketed batches, validation BLEU after every epoch, on
    prepared data (:func:`seq2seq.data.prepare.prepare_data`); ``cfg`` is a checked config."""

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: Path,
        data: PreparedData,
        *,
        processes: Processes | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.cfg = cfg
        self.out_dir = out_dir
        self.processes = processes or Processes()  # several under torchrun (seq2seq.distributed.join)
        self.device = device if device is not None else resolve_device(cfg.trainer.device)
        self.threads = ThreadGovernor(cfg.trainer.threads)  # 0: threads follow the machine's load
        self.valid_data = data.valid
        self.tokenize = bleu_tokenizer(cfg.data.bleu_tokenize, cfg.data.tgt_lang)
        self.src_tok, self.tgt_tok = data.src_tokenizer, data.tgt_tokenizer
        self.src_ids, self.tgt_ids = data.src_ids, data.tgt_ids
        longest = max((max(len(s), len(t)) for s, t in zip(self.src_ids, self.tgt_ids, strict=True)), default=0)
        if 0 < cfg.trainer.max_tokens < longest:
            raise ConfigError(
                f"trainer.max_tokens={cfg.trainer.max_tokens} holds no batch of the longest training pair "
                f"({longest} tokens): give 0 (no cap) or at least {longest}, or leave long pairs out with data.max_len"
            )
        outside = [i for i in cfg.trainer.attention_examples if i >= len(data.valid)]
        if outside:
            raise ConfigError(
                f"trainer.attention_examples={outside}: the valid split has {len(data.valid)} sentences "
                f"(0 to {len(data.valid) - 1})"
            )
        if cfg.trainer.tensorboard:
            check_tensorboard()  # before anything is written
        self.board = Board()  # fit() opens the run's TensorBoard log (rank 0)
        self.grad_norm = 0.0
        self.autocast_dtype = autocast_dtype(cfg.trainer.precision, self.device, "trainer.precision")
        self.scaler = torch.amp.GradScaler("cuda") if cfg.trainer.precision == "fp16" else None
        seed_everything(cfg.seed)
        self.model: Seq2Seq = build_model(cfg.model, len(self.src_tok), len(self.tgt_tok)).to(self.device)
        self.ddp: DistributedDataParallel | None = None
        if self.processes.world > 1:  # the same start everywhere, then each its own dropout masks
            self.ddp = DistributedDataParallel(
                LossOf(self.model, cfg.trainer.label_smoothing),
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
            torch.manual_seed(cfg.seed * 1000 + self.processes.rank)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.trainer.lr, betas=(0.9, cfg.trainer.adam_beta2)
        )
        self.state = TrainState(lr=cfg.trainer.lr)
        self.config_dict: dict[str, Any] = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[assignment]

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def resume(self) -> bool:
        """Load ``last.pt`` if present: weights, optimizer, state, RNG. True if resumed."""
        if not self.last_path.exists():
            return False
        ckpt = read_checkpoint(self.last_path, self.device)
        if "train_state" not in ckpt:
            raise CheckpointError(f"{self.last_path}: has no training state to resume from")
        if ckpt["src_tokenizer"] != self.src_tok.model_proto or ckpt["tgt_tokenizer"] != self.tgt_tok.model_proto:
            raise CheckpointError(
                f"{self.last_path}: was trained on other data or tokenizer settings; use a new run folder"
            )
        saved = with_defaults(ckpt["config"])
        if saved is None:
            raise CheckpointError(
                f"{self.last_path}: was saved with a config this version cannot read; use a new run folder "
                "(or trainer.resume=false to start over in this one)"
            )
        changed = resume_mismatch(saved, self.config_dict)
        if changed:
            raise CheckpointError(
                f"{self.last_path}: holds a run with another {changed}; use a new run folder "
                "(or trainer.resume=false to start over in this one)"
            )
        ts = ckpt["train_state"]
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ts["optimizer"])
        self.state = TrainState(**{k: ts[k] for k in TrainState.__dataclass_fields__ if k in ts})  # newer: defaults
        rngs = ts.get("rngs", [])  # one per process when several trained
        torch.set_rng_state((rngs[self.processes.rank] if len(rngs) == self.processes.world else ts["rng"]).cpu())
        if "cuda_rng" in ts and torch.cuda.is_available():
            cuda_rngs = ts.get("cuda_rngs", [])
            own = cuda_rngs[self.processes.rank] if len(cuda_rngs) == self.processes.world else ts["cuda_rng"]
            torch.cuda.set_rng_state(own.cpu())
        if self.scaler is not None and "scaler" in ts:
            self.scaler.load_state_dict(ts["scaler"])
        t = self.cfg.trainer
        if self.state.stop_reason.startswith("early stop") and (
            t.patience == 0 or self.state.stale_validations < t.patience
        ):
            self.state.stop_reason = ""  # resumed with more patience (or none): training goes on
        log.info("resumed from %s at epoch %d, step %d", self.last_path, self.state.epoch, self.state.step)
        return True

    def check_finite(self) -> None:
        """Refuse to save non-finite weights: the checkpoints from before the divergence stay."""
        for name, tensor in self.model.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise TrainingStopped(
                    f"training diverged: {name} holds nan or inf at step {self.state.step}; last.pt and best.pt "
                    "keep the weights from before (lower trainer.lr, or raise trainer.grad_clip's protection)"
                )

    def save(self) -> None:
        """``last.pt``: weights, optimizer, state and RNG, to resume exactly (every process calls
        it; rank 0 writes, with every process's RNG state)."""
        self.check_finite()
        rngs = self.processes.gather(torch.get_rng_state())
        cuda_rngs = self.processes.gather(torch.cuda.get_rng_state()) if self.device.type == "cuda" else []
        if not self.processes.main:
            return
        ts: dict[str, Any] = {
            **self.state.__dict__,
            "optimizer": self.optimizer.state_dict(),
            "rng": rngs[0],
        }
        if self.processes.world > 1:
            ts["rngs"] = rngs
        if cuda_rngs:
            ts["cuda_rng"], ts["cuda_rngs"] = cuda_rngs[0], cuda_rngs
        if self.scaler is not None:
            ts["scaler"] = self.scaler.state_dict()
        save_atomic(make_checkpoint(self.model, self.src_tok, self.tgt_tok, self.config_dict, ts), self.last_path)
        self.write_metrics()

    def save_best(self) -> None:
        self.check_finite()
        save_atomic(make_checkpoint(self.model, self.src_tok, self.tgt_tok, self.config_dict), self.best_path)

    def keep_checkpoint(self) -> None:
        """Save the weights as ``stepNNNNNNNN.pt`` and drop all but the newest ``keep_checkpoints``."""
        keep = self.cfg.trainer.keep_checkpoints
        if keep <= 0:
            return
        path = self.out_dir / f"step{self.state.step:08d}.pt"
        self.check_finite()
        save_atomic(make_checkpoint(self.model, self.src_tok, self.tgt_tok, self.config_dict), path)
        for old in kept_checkpoints(self.out_dir)[:-keep]:
            old.unlink(missing_ok=True)

    def prune_kept(self) -> None:
        """Before training goes on, drop what no longer belongs to this run: kept checkpoints past
        the step it resumes from (a run killed between keeping one and saving ``last.pt``) or from
        an earlier run (a fresh start), and an ``averaged.pt`` that further training makes stale."""
        for path in kept_checkpoints(self.out_dir):
            if kept_step(path) > self.state.step:
                path.unlink()
                log.info("removed %s: not from this run's first %d updates", path.name, self.state.step)
        averaged = self.out_dir / "averaged.pt"
        if averaged.exists() and not self.finished():
            averaged.unlink()
            log.info("removed %s: training goes on (run seq2seq-average again afterwards)", averaged.name)

    def write_metrics(self) -> None:
        if not self.state.history:
            return
        columns = list(dict.fromkeys(key for row in self.state.history for key in row))  # rows of older runs too
        with open(self.out_dir / "metrics.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.state.history)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.cfg.seed * 100_003 + epoch)
        t = self.cfg.trainer
        src_lengths, tgt_lengths = [len(s) for s in self.src_ids], [len(s) for s in self.tgt_ids]
        return bucket_batches(src_lengths, t.batch_size, t.max_tokens, rng, tgt_lengths)

    def train_step(self, group: list[list[int]]) -> tuple[float, int, bool]:
        """One update from ``group`` (``trainer.accumulate`` batches of corpus indices): the loss of
        every batch, averaged over the target tokens of them all, so N batches of B sentences give
        the update of one batch of N x B. Returns the summed loss, the target tokens and whether
        the update was made (False: a non-finite loss or gradient, skipped)."""
        self.model.train()
        world = self.processes.world
        n_tokens = sum(len(self.tgt_ids[i]) + 1 for index in group for i in index)  # targets + EOS, all processes
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for j, index in enumerate(group):
            mine, weight = self.processes.share(index)  # one process: the whole batch, weight 1
            batch = collate([self.src_ids[i] for i in mine], [self.tgt_ids[i] for i in mine]).to(self.device)
            exchange = self.ddp is None or j == len(group) - 1  # DDP: average the gradients once per update
            with contextlib.nullcontext() if exchange else self.ddp.no_sync():  # type: ignore[union-attr]
                with torch.autocast(
                    self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
                ):
                    if self.ddp is None:
                        loss = batch_loss(self.model, batch, self.cfg.trainer.label_smoothing)
                    else:  # DDP averages over processes: scaled by their number, the sum of every share's loss
                        loss = self.ddp(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out) * (weight * world)
                scaled = loss / n_tokens
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            total += loss.item() / world
        total = self.processes.total(total)
        return total, n_tokens, self.update(total)

    def autocast(self) -> torch.autocast:
        """Mixed precision for the forward pass (``trainer.precision``; fp32: off)."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def update(self, loss: float) -> bool:
        """Clip and step, unless the loss or the gradient is not finite (then nothing changes)."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        clip = self.cfg.trainer.grad_clip if self.cfg.trainer.grad_clip > 0 else float("inf")  # inf: norm only
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.grad_norm = float(norm)
        finite = math.isfinite(loss) and (self.scaler is not None or bool(torch.isfinite(norm)))
        if not finite:  # under fp16 the scaler itself skips steps with inf gradients and lowers its scale
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.update()
            return False
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            return self.scaler.get_scale() >= scale  # a lower scale: inf gradients, the step was skipped
        self.optimizer.step()
        return True

    def skipped(self, loss: float) -> None:
        """Count an update skipped for a non-finite loss or gradient; too many in a row stop the run."""
        self.state.skipped_updates += 1
        self.state.bad_in_a_row += 1
        log.warning(
            "non-finite loss or gradient (loss %s): update skipped (%d in a row)", loss, self.state.bad_in_a_row
        )
        if self.state.bad_in_a_row >= self.cfg.trainer.max_bad_updates:
            raise TrainingStopped(
                f"training diverged: {self.state.bad_in_a_row} updates in a row had a non-finite loss or gradient "
                f"(trainer.max_bad_updates={self.cfg.trainer.max_bad_updates}) at step {self.state.step}; last.pt and "
                "best.pt keep the weights from before (lower trainer.lr)"
            )

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        valid = self.valid_data
        loss, n = 0.0, 0
        src_ids, tgt_ids = self.src_tok.encode_batch(valid.src), self.tgt_tok.encode_batch(valid.tgt)
        for index in bucket_batches([len(s) for s in src_ids], self.cfg.trainer.eval_batch_size):
            batch = collate([src_ids[i] for i in index], [tgt_ids[i] for i in index]).to(self.device)
            loss += float(batch_loss(self.model, batch))
            n += batch.n_tgt_tokens
        hyps = translate_sentences(
            self.model,
            self.src_tok,
            self.tgt_tok,
            valid.src,
            batch_size=self.cfg.trainer.eval_batch_size,
            cfg=self.cfg.search,
            device=self.device,
        )
        if self.processes.main and self.cfg.trainer.attention_examples:
            self.draw_examples(hyps)
        scores = corpus_scores([h.text for h in hyps], valid.tgt, self.tokenize)
        metrics = {"valid_loss": loss / max(n, 1), "valid_bleu": scores["bleu"], "valid_chrf": scores["chrf"]}
        if valid.alignments is not None and uses_attention(self.cfg.model.decoder):  # watch attention being learned
            weights = forced_weights(
                self.model,
                self.src_tok,
                self.tgt_tok,
                valid,
                batch_size=self.cfg.trainer.eval_batch_size,
                device=self.device,
            )
            pieces = [self.src_tok.pieces(s) for s in valid.src], [self.tgt_tok.pieces(t) for t in valid.tgt]
            metrics["valid_alignment_accuracy"] = round(alignment_accuracy(weights, *pieces, valid.alignments), 4)
        return metrics

    def draw_examples(self, hyps: list[Translation]) -> None:
        """``trainer.attention_examples``: each chosen valid sentence's heatmap at this step."""
        try:
            from seq2seq import plots  # matplotlib only when pictures are asked for
        except ImportError:
            log.warning("matplotlib is not installed: no attention/ pictures (pip install matplotlib)")
            return
        folder = self.out_dir / "attention"
        folder.mkdir(exist_ok=True)
        for i in self.cfg.trainer.attention_examples:
            t = hyps[i]
            if t.tokens:  # (an empty translation has no rows to draw)
                title = f"valid sentence {i}, step {self.state.step}: {t.text}"
                path = folder / f"step{self.state.step:08d}-{i}.png"
                plots.plot_attention([(title, t.source_tokens, t.tokens, t.attention)], path)

    def finished(self, extra_seconds: float = 0.0) -> bool:
        t = self.cfg.trainer
        return (
            bool(self.state.stop_reason)
            or self.state.epoch >= t.epochs
            or (t.max_steps > 0 and self.state.step >= t.max_steps)
            or (t.max_minutes > 0 and self.state.train_seconds + extra_seconds >= 60 * t.max_minutes)
        )

    def progress(self, batches_in_epoch: int, extra_seconds: float = 0.0) -> float:
        """The spent fraction of the training budget, 0 to 1: the furthest along of epochs,
        max_steps and max_minutes (whichever will stop training first)."""
        t = self.cfg.trainer
        spent = [(self.state.epoch + self.state.batch_in_epoch / max(batches_in_epoch, 1)) / max(t.epochs, 1)]
        if t.max_steps > 0:
            spent.append(self.state.step / t.max_steps)
        if t.max_minutes > 0:
            spent.append((self.state.train_seconds + extra_seconds) / (60 * t.max_minutes))
        return min(max(spent), 1.0)

    def set_lr(self, lr: float) -> None:
        self.state.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def anneal(self, progress: float) -> None:
        """The anneal schedule: the learning rate holds at ``lr``, then falls linearly to ``min_lr``
        over the last ``lr_anneal`` of the budget, so a run with a fixed budget ends converged.
        Under max_minutes the budget is training time, so the decay follows the clock."""
        t = self.cfg.trainer
        left = (1.0 - progress) / t.lr_anneal  # 1 when the decay starts, 0 at the end
        self.set_lr(t.lr if left >= 1.0 else t.min_lr + (t.lr - t.min_lr) * max(left, 0.0))

    def schedule(self, valid_loss: float) -> None:
        """The plateau schedule: shrink the learning rate when the valid loss stops falling."""
        t = self.cfg.trainer
        if valid_loss < self.state.best_valid_loss:
            self.state.best_valid_loss, self.state.bad_epochs = valid_loss, 0
            return
        self.state.bad_epochs += 1
        if t.lr_schedule == "plateau" and self.state.bad_epochs > t.lr_patience:
            self.set_lr(max(self.state.lr * t.lr_shrink, t.min_lr))
            self.state.bad_epochs = 0
            log.info("valid loss did not improve: learning rate now %.2e", self.state.lr)

    def early_stop(self, metrics: dict[str, float]) -> None:
        """``trainer.patience`` validations without a better ``early_stop_metric`` end the run."""
        t = self.cfg.trainer
        value = metrics[t.early_stop_metric]
        higher_is_better = t.early_stop_metric == "valid_bleu"
        best = self.state.best_metric
        if best is None or (value > best if higher_is_better else value < best):
            self.state.best_metric, self.state.stale_validations = value, 0
            return
        self.state.stale_validations += 1
        if t.patience > 0 and self.state.stale_validations >= t.patience:
            self.state.stop_reason = (
                f"early stop: {t.early_stop_metric} has not improved on {best:g} for {t.patience} validation(s)"
            )
            log.info("%s (step %d)", self.state.stop_reason, self.state.step)

    def validate_and_save(self, window: Window) -> None:
        """Validation, a metrics row, best.pt, the schedules, a kept checkpoint and last.pt."""
        self.check_finite()
        metrics = self.processes.broadcast(self.validate() if self.processes.main else None)
        row = {
            "epoch": self.state.epoch,
            "step": self.state.step,
            "train_loss": round(window.loss / max(window.tokens, 1), 4),
            "valid_loss": round(metrics["valid_loss"], 4),
            "valid_bleu": metrics["valid_bleu"],
            "valid_chrf": metrics["valid_chrf"],
            "tokens_per_second": round(window.tokens / max(window.seconds, 1e-9)),
            "train_seconds": round(self.state.train_seconds, 1),
            "lr": self.state.lr,
            "skipped_updates": self.state.skipped_updates,
        }
        if "valid_alignment_accuracy" in metrics:
            row["valid_alignment_accuracy"] = metrics["valid_alignment_accuracy"]
        self.state.history.append(row)
        self.board.validation(row)
        log.info(
            "epoch %d step %d: train loss %.3f, valid loss %.3f, valid BLEU %.2f, %d tok/s",
            row["epoch"],
            row["step"],
            row["train_loss"],
            row["valid_loss"],
            row["valid_bleu"],
            row["tokens_per_second"],
        )
        better = metrics["valid_bleu"] > self.state.best_bleu
        self.state.best_bleu = max(self.state.best_bleu, metrics["valid_bleu"])
        if self.processes.main and (better or not self.best_path.exists()):
            self.save_best()
        self.schedule(metrics["valid_loss"])
        self.early_stop(metrics)
        if self.processes.main:
            self.keep_checkpoint()
        self.save()

    def fit(self) -> TrainResult:
        """Train until the budget (epochs, max_steps, max_minutes) or early stopping ends the run,
        resuming from ``last.pt`` when the folder has one. SIGINT or SIGTERM: the update under way
        finishes, ``last.pt`` is saved and :class:`TrainingStopped` says so (a second SIGINT stops at
        once; saves are atomic)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        main = self.processes.main
        with RunLock(self.out_dir) if main else contextlib.nullcontext(), StopSignals() as stop:
            if main:
                remove_stale_temporaries(self.out_dir)
            self.processes.broadcast(None)  # the others read last.pt once rank 0 holds the folder
            if self.cfg.trainer.resume:
                self.resume()
            tokenizers = hashlib.sha256(self.src_tok.model_proto + self.tgt_tok.model_proto).hexdigest()
            views = self.processes.gather((self.state.step, self.state.epoch, tokenizers))
            if len(set(views)) > 1:
                raise ConfigError(f"the training processes disagree on where training stands: {views}")
            if main:
                self.prune_kept()
                (self.out_dir / "config.yaml").write_text(OmegaConf.to_yaml(self.config_dict), encoding="utf-8")
                write_environment(self.out_dir, self.device)
                if self.processes.world > 1:
                    log.info("DDP: %d processes, %s", self.processes.world, self.processes.backend)
                if self.cfg.trainer.tensorboard:
                    self.board = Board(self.out_dir / "tensorboard", self.cfg.trainer.log_every)
            log.info(
                "%s model: %s parameters (encoder %s, decoder %s); %d training pairs; vocab %d/%d; device %s%s",
                describe_model(self.cfg.model),
                f"{self.model.num_parameters:,}",
                f"{sum(p.numel() for p in self.model.encoder.parameters()):,}",
                f"{sum(p.numel() for p in self.model.decoder.parameters()):,}",
                len(self.src_ids),
                len(self.src_tok),
                len(self.tgt_tok),
                self.device,
                "" if self.autocast_dtype is None else f", {self.cfg.trainer.precision} autocast",
            )
            try:
                while not self.finished():
                    self.train_epoch(stop)
            finally:
                self.board.close()
            if main and not self.best_path.exists():  # a resumed run that had already finished
                self.save_best()
        return TrainResult(self.out_dir, self.best_path, self.last_path, self.state, self.model.num_parameters)

    def clock(self, window: Window) -> float:
        """Training seconds of this window; rank 0's under max_minutes, so that every process
        stops and anneals alike."""
        if self.processes.world > 1 and self.cfg.trainer.max_minutes > 0:
            return float(self.processes.broadcast(window.elapsed()))
        return window.elapsed()

    def train_epoch(self, stop: StopSignals) -> None:
        """The rest of the current epoch, or up to the end of the budget, validating and saving at
        its end and every ``valid_every`` updates."""
        t = self.cfg.trainer
        batches = self.epoch_batches(self.state.epoch)
        if self.state.batch_in_epoch >= len(batches):  # saved after the epoch's last update, before its roll-over
            self.state.epoch, self.state.batch_in_epoch = self.state.epoch + 1, 0
            return
        window = Window()
        bar = tqdm(
            total=len(batches),
            initial=self.state.batch_in_epoch,
            desc=f"epoch {self.state.epoch + 1}/{t.epochs}",
            disable=not t.progress or not self.processes.main,
            leave=False,
            dynamic_ncols=True,
        )
        while True:
            if t.lr_schedule == "anneal":
                self.anneal(self.progress(len(batches), self.clock(window)))
            elif t.lr_schedule in WARMUP_SCHEDULES:
                self.set_lr(
                    warmup_lr(t.lr_schedule, self.state.step + 1, t.lr, t.warmup_steps, self.cfg.model.hidden_size)
                )
            k = self.state.batch_in_epoch
            group = batches[k : k + t.accumulate]
            loss, n, made = self.train_step(group)
            self.threads.update()
            self.state.batch_in_epoch = k + len(group)
            if made:
                self.state.step += 1
                self.state.bad_in_a_row = 0
                window.add(loss, n)
                speed = window.tokens / max(window.elapsed(), 1e-9)
                self.board.update(self.state.step, loss / max(n, 1), self.state.lr, speed, self.grad_norm)
            else:
                self.skipped(loss)
            bar.update(len(group))
            bar.set_postfix(loss=f"{loss / max(n, 1):.3f}", tok_s=f"{window.tokens / max(window.elapsed(), 1e-9):,.0f}")
            epoch_done = self.state.batch_in_epoch >= len(batches)
            if epoch_done:
                self.state.epoch += 1
                self.state.batch_in_epoch = 0
            due = made and t.valid_every > 0 and self.state.step % t.valid_every == 0
            stopping = self.processes.any(bool(stop.signum))  # every process stops after the same update
            if epoch_done or due or self.finished(self.clock(window)):  # as an uninterrupted run would
                self.state.train_seconds += self.processes.broadcast(window.close())
                self.validate_and_save(window)
                if epoch_done or self.finished():
                    if stopping:
                        self.stopped(stop, bar)
                    break
                window = Window()
            elif stopping:
                self.state.train_seconds += self.processes.broadcast(window.close())
                self.save()
            if stopping:
                self.stopped(stop, bar)
        bar.close()

    def stopped(self, stop: StopSignals, bar: tqdm) -> None:
        """After a signal, with ``last.pt`` saved: end the run, saying how."""
        bar.close()
        signum = stop.signum or signal.SIGTERM  # another process got it
        raise TrainingStopped(
            f"stopped by {signal.Signals(signum).name} at step {self.state.step}: {self.last_path} saved", signum
        )


class LossOf(nn.Module):
    """The summed training loss of a batch as a module's forward, for DistributedDataParallel
    (which exchanges gradients when its module's forward and backward run)."""

    def __init__(self, model: Seq2Seq, label_smoothing: float) -> None:
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor
    ) -> torch.Tensor:
        return batch_loss(self.model, Batch(src, src_mask, tgt_in, tgt_out), self.label_smoothing)


class Window:
    """Training loss, target tokens and time since the last validation (for its metrics row)."""

    def __init__(self) -> None:
        self.loss, self.tokens, self.start, self.seconds = 0.0, 0, time.perf_counter(), 0.0

    def add(self, loss: float, tokens: int) -> None:
        self.loss += loss
        self.tokens += tokens

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def close(self) -> float:
        """Stop the clock; the training seconds of this window."""
        self.seconds = self.elapsed()
        return self.seconds


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
            "%s: finishing this update, then saving last.pt (Ctrl-C again to stop at once)",
            signal.Signals(signum).name,
        )

    def __exit__(self, kind: type | None, error: BaseException | None, trace: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def train_run(cfg: TrainConfig, out_dir: str | Path) -> TrainResult:
    """Check ``cfg``, prepare its data and train into ``out_dir`` (resuming from its ``last.pt``).
    Under torchrun every process calls this; they train together into rank 0's ``out_dir``."""
    cfg = check_train(cfg)
    processes, device = join(cfg.trainer.device)
    try:
        folder = Path(processes.broadcast(str(out_dir)))
        if not processes.main:
            processes.broadcast(None)  # rank 0 prepares first: the corpus it may write, the tokenizer cache
        data = prepare_data(cfg.data, cfg.trainer.valid_max_sentences)
        if processes.main:
            processes.broadcast(None)
        return Trainer(cfg, folder, data, processes=processes, device=device).fit()
    finally:
        leave(processes)
