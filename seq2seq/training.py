"""The training loop (``seq2seq-train`` runs :func:`train_run`).

One run folder holds everything: ``config.yaml`` (resolved), ``best.pt`` (highest validation
BLEU), ``last.pt`` (for resuming: also the optimizer, the step and the RNG state),
``metrics.csv``. Batch order is a function of (seed, epoch), so a run resumed from ``last.pt``
repeats exactly the updates the uninterrupted run would have made.
"""

from __future__ import annotations

import csv
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from seq2seq.checkpoint import kept_checkpoints, kept_step, make_checkpoint, read_checkpoint, save_atomic
from seq2seq.config import TrainConfig, check_train, describe_model, resume_mismatch, with_defaults
from seq2seq.constants import PAD_ID
from seq2seq.data.batching import Batch, bucket_batches, collate
from seq2seq.data.prepare import PreparedData, prepare_data
from seq2seq.device import resolve_device
from seq2seq.errors import CheckpointError, ConfigError
from seq2seq.evaluation import bleu_tokenizer, corpus_scores
from seq2seq.models.seq2seq import Seq2Seq, build_model
from seq2seq.search import translate_sentences

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
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


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

    def __init__(self, cfg: TrainConfig, out_dir: Path, data: PreparedData) -> None:
        self.cfg = cfg
        self.out_dir = out_dir
        self.device = resolve_device(cfg.trainer.device)
        if cfg.trainer.threads > 0:
            torch.set_num_threads(cfg.trainer.threads)
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
        seed_everything(cfg.seed)
        self.model: Seq2Seq = build_model(cfg.model, len(self.src_tok), len(self.tgt_tok)).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.trainer.lr)
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
        self.state = TrainState(**{k: ts[k] for k in TrainState.__dataclass_fields__})
        torch.set_rng_state(ts["rng"].cpu())
        if "cuda_rng" in ts and torch.cuda.is_available():
            torch.cuda.set_rng_state(ts["cuda_rng"].cpu())
        log.info("resumed from %s at epoch %d, step %d", self.last_path, self.state.epoch, self.state.step)
        return True

    def save(self) -> None:
        ts: dict[str, Any] = {
            **self.state.__dict__,
            "optimizer": self.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            ts["cuda_rng"] = torch.cuda.get_rng_state()
        save_atomic(make_checkpoint(self.model, self.src_tok, self.tgt_tok, self.config_dict, ts), self.last_path)
        self.write_metrics()

    def save_best(self) -> None:
        save_atomic(make_checkpoint(self.model, self.src_tok, self.tgt_tok, self.config_dict), self.best_path)

    def keep_checkpoint(self) -> None:
        """Save the weights as ``stepNNNNNNNN.pt`` and drop all but the newest ``keep_checkpoints``."""
        keep = self.cfg.trainer.keep_checkpoints
        if keep <= 0:
            return
        path = self.out_dir / f"step{self.state.step:08d}.pt"
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
        with open(self.out_dir / "metrics.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.state.history[0]))
            writer.writeheader()
            writer.writerows(self.state.history)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.cfg.seed * 100_003 + epoch)
        t = self.cfg.trainer
        src_lengths, tgt_lengths = [len(s) for s in self.src_ids], [len(s) for s in self.tgt_ids]
        return bucket_batches(src_lengths, t.batch_size, t.max_tokens, rng, tgt_lengths)

    def train_step(self, index: list[int]) -> tuple[float, int]:
        batch = collate([self.src_ids[i] for i in index], [self.tgt_ids[i] for i in index]).to(self.device)
        self.model.train()
        n_tokens = batch.n_tgt_tokens
        loss = batch_loss(self.model, batch, self.cfg.trainer.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        (loss / n_tokens).backward()
        if self.cfg.trainer.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.trainer.grad_clip)
        self.optimizer.step()
        return loss.item(), n_tokens

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
        scores = corpus_scores([h.text for h in hyps], valid.tgt, self.tokenize)
        return {"valid_loss": loss / max(n, 1), "valid_bleu": scores["bleu"], "valid_chrf": scores["chrf"]}

    def finished(self, extra_seconds: float = 0.0) -> bool:
        t = self.cfg.trainer
        return (
            self.state.epoch >= t.epochs
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

    def end_of_epoch(self, train_loss: float, tokens: int, seconds: float) -> None:
        metrics = self.validate()
        row = {
            "epoch": self.state.epoch,
            "step": self.state.step,
            "train_loss": round(train_loss, 4),
            "valid_loss": round(metrics["valid_loss"], 4),
            "valid_bleu": metrics["valid_bleu"],
            "valid_chrf": metrics["valid_chrf"],
            "tokens_per_second": round(tokens / max(seconds, 1e-9)),
            "train_seconds": round(self.state.train_seconds, 1),
            "lr": self.state.lr,
        }
        self.state.history.append(row)
        log.info(
            "epoch %d step %d: train loss %.3f, valid loss %.3f, valid BLEU %.2f, %d tok/s",
            row["epoch"],
            row["step"],
            row["train_loss"],
            row["valid_loss"],
            row["valid_bleu"],
            row["tokens_per_second"],
        )
        if metrics["valid_bleu"] > self.state.best_bleu or not self.best_path.exists():
            self.state.best_bleu = max(self.state.best_bleu, metrics["valid_bleu"])
            self.save_best()
        self.schedule(metrics["valid_loss"])
        self.keep_checkpoint()
        self.save()

    def fit(self) -> TrainResult:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.cfg.trainer.resume:
            self.resume()
        self.prune_kept()
        (self.out_dir / "config.yaml").write_text(OmegaConf.to_yaml(self.config_dict), encoding="utf-8")
        log.info(
            "%s model: %s parameters (encoder %s, decoder %s); %d training pairs; vocab %d/%d; device %s",
            describe_model(self.cfg.model),
            f"{self.model.num_parameters:,}",
            f"{sum(p.numel() for p in self.model.encoder.parameters()):,}",
            f"{sum(p.numel() for p in self.model.decoder.parameters()):,}",
            len(self.src_ids),
            len(self.src_tok),
            len(self.tgt_tok),
            self.device,
        )
        t = self.cfg.trainer
        while not self.finished():
            batches = self.epoch_batches(self.state.epoch)
            loss_sum, tokens, start = 0.0, 0, time.perf_counter()
            bar = tqdm(
                total=len(batches),
                initial=self.state.batch_in_epoch,
                desc=f"epoch {self.state.epoch + 1}/{t.epochs}",
                disable=not t.progress,
                leave=False,
                dynamic_ncols=True,
            )
            for k in range(self.state.batch_in_epoch, len(batches)):
                if t.lr_schedule == "anneal":
                    self.anneal(self.progress(len(batches), time.perf_counter() - start))
                loss, n = self.train_step(batches[k])
                loss_sum, tokens = loss_sum + loss, tokens + n
                self.state.step += 1
                self.state.batch_in_epoch = k + 1
                elapsed = time.perf_counter() - start
                bar.update()
                bar.set_postfix(loss=f"{loss / n:.3f}", tok_s=f"{tokens / max(elapsed, 1e-9):,.0f}")
                if self.finished(extra_seconds=elapsed):
                    break
            bar.close()
            seconds = time.perf_counter() - start
            self.state.train_seconds += seconds
            if self.state.batch_in_epoch >= len(batches):
                self.state.epoch += 1
                self.state.batch_in_epoch = 0
            self.end_of_epoch(loss_sum / max(tokens, 1), tokens, seconds)
        if not self.best_path.exists():  # a resumed run that had already finished
            self.save_best()
        return TrainResult(self.out_dir, self.best_path, self.last_path, self.state, self.model.num_parameters)


def train_run(cfg: TrainConfig, out_dir: str | Path) -> TrainResult:
    """Check ``cfg``, prepare its data and train into ``out_dir`` (resuming from its ``last.pt``)."""
    cfg = check_train(cfg)
    return Trainer(cfg, Path(out_dir), prepare_data(cfg.data, cfg.trainer.valid_max_sentences)).fit()
