"""The training loop (``seq2seq-train`` runs :func:`train_run`): fit, epoch, step, update.

One run folder holds everything (:mod:`seq2seq.runfolder` names its files,
:mod:`seq2seq.train_state` writes them): ``config.yaml`` (resolved), ``best.pt`` (highest
validation BLEU), ``last.pt`` (for resuming: also the optimizer, the step and the RNG state),
``metrics.csv``. Batch order is a function of (seed, epoch), so a run resumed from ``last.pt``
repeats exactly the updates the uninterrupted run would have made. The learning rate comes from
:mod:`seq2seq.schedules`, the loss from :mod:`seq2seq.loss`, the validation figures from
:func:`seq2seq.evaluation.validate_model`, signals and early stopping from :mod:`seq2seq.stopping`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from seq2seq.board import Board, check_tensorboard
from seq2seq.checkpoint import sha256
from seq2seq.config import TrainConfig, TrainerConfig, check_train, describe_model, uses_attention
from seq2seq.constants import WARMUP_SCHEDULES
from seq2seq.data.batching import bucket_batches, collate, epoch_pairs
from seq2seq.data.prepare import PreparedData, prepare_data
from seq2seq.data.sampling import resegmenter, sample_epoch
from seq2seq.device import autocast_dtype, resolve_device
from seq2seq.distributed import Processes, join, leave
from seq2seq.errors import ConfigError, TrainingStopped
from seq2seq.evaluation import bleu_tokenizer, validate_model
from seq2seq.loss import LossOf, batch_loss
from seq2seq.models.seq2seq import Seq2Seq, build_model
from seq2seq.runfolder import TENSORBOARD, RunLock, remove_stale_temporaries
from seq2seq.schedules import anneal_lr, budget_over, budget_spent, warmup_lr
from seq2seq.stopping import StopSignals, Window
from seq2seq.threads import ThreadGovernor
from seq2seq.train_state import RunFiles, TrainState, check_finite

log = logging.getLogger("seq2seq")
SAMPLED = "sampled-epoch"  # the run folder's this-epoch segmentations (subword regularisation), removed at the end


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


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
        check_fits(cfg, data)
        self.valid_data = data.valid
        self.tokenize = bleu_tokenizer(cfg.data.bleu_tokenize, cfg.data.tgt_lang)
        self.src_tok, self.tgt_tok = data.src_tokenizer, data.tgt_tokenizer
        self.src_ids, self.tgt_ids = data.src_ids, data.tgt_ids
        self.links, self.guided = data.links, cfg.trainer.guided_alignment  # gold piece links, their loss weight
        self.corpora, self.weights, self.by_length = data.corpora, data.weights, data.by_length
        self.resegment = resegmenter(cfg, (self.src_tok, self.tgt_tok))  # None: the stored segmentation
        self.epoch_ids = (self.src_ids, self.tgt_ids)  # this epoch's: the stored ids, or sampled (epoch_batches)
        if cfg.trainer.tensorboard:
            check_tensorboard()  # before anything is written
        self.board = Board()  # fit() opens the run's TensorBoard log (rank 0)
        self.grad_norm = 0.0
        self.autocast_dtype = autocast_dtype(cfg.trainer.precision, self.device, "trainer.precision")
        self.scaler = torch.amp.GradScaler("cuda") if cfg.trainer.precision == "fp16" else None
        seed_everything(cfg.seed)
        self.model: Seq2Seq = build_model(cfg.model, len(self.src_tok), len(self.tgt_tok)).to(self.device)
        self.ddp = data_parallel(self.model, cfg, self.processes, self.device)  # None: one process
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.trainer.lr, betas=(0.9, cfg.trainer.adam_beta2)
        )
        self.state = TrainState(lr=cfg.trainer.lr)
        self.config_dict: dict[str, Any] = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[assignment]
        self.files = RunFiles(
            out_dir, self.model, self.optimizer, (self.src_tok, self.tgt_tok), self.config_dict,
            processes=self.processes, device=self.device, scaler=self.scaler,
        )  # fmt: skip

    def fit(self) -> TrainResult:
        """Train until the budget (epochs, max_steps, max_minutes) or early stopping ends the run,
        resuming from ``last.pt`` when the folder has one. SIGINT or SIGTERM: the update under way
        finishes, ``last.pt`` is saved and :class:`TrainingStopped` says so (a second SIGINT stops at
        once; saves are atomic)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        main = self.processes.main
        with RunLock(self.out_dir) if main else contextlib.nullcontext(), StopSignals() as stop:
            self.start()
            try:
                while not self.finished():
                    self.train_epoch(stop)
            finally:
                self.board.close()
                shutil.rmtree(self.sampled_folder(), ignore_errors=True)
            if main and not self.files.best.exists():  # a resumed run that had already finished
                self.files.save_best(self.state)
        return TrainResult(self.out_dir, self.files.best, self.files.last, self.state, self.model.num_parameters)

    def start(self) -> None:
        """With the folder locked: clear what a killed save left, resume (``trainer.resume``) and
        put a damaged ``best.pt`` right, check that every process stands at the same place; rank
        0 then drops stale files and writes ``config.yaml``, ``environment.json`` and opens
        TensorBoard's log."""
        main = self.processes.main
        if main:
            remove_stale_temporaries(self.out_dir)
        self.processes.broadcast(None)  # the others read last.pt once rank 0 holds the folder
        resumed = self.files.resume(self.cfg.trainer) if self.cfg.trainer.resume else None
        if resumed is not None:
            self.state = resumed
            if main:
                self.files.repair_best(self.state)
        tokenizers = sha256(self.src_tok.model_proto + self.tgt_tok.model_proto)
        views = self.processes.gather((self.state.step, self.state.epoch, tokenizers))
        if len(set(views)) > 1:
            raise ConfigError(f"the training processes disagree on where training stands: {views}")
        if main:
            self.files.prepare(self.state.step, self.finished())
            if self.processes.world > 1:
                log.info("DDP: %d processes, %s", self.processes.world, self.processes.backend)
            if self.cfg.trainer.tensorboard:
                self.board = Board(self.out_dir / TENSORBOARD, self.cfg.trainer.log_every)
        log_start(self.cfg, self.model, len(self.src_ids), (len(self.src_tok), len(self.tgt_tok)), self.device)

    def train_epoch(self, stop: StopSignals) -> None:
        """The rest of the current epoch, or up to the end of the budget. Each pass of the loop:

        1. set the learning rate of the coming update (the warm-up and anneal schedules);
        2. one update (:meth:`train_step`) on the next ``trainer.accumulate`` batches; count it,
           or count it skipped (a non-finite loss or gradient);
        3. move the position in the epoch on; after the epoch's last batch, roll over to the next;
        4. at the epoch's end, every ``trainer.valid_every`` updates and when the budget is spent:
           validate and save (:meth:`validate_and_save`); else on SIGINT/SIGTERM: save ``last.pt``;
        5. after a signal, end the run (:class:`TrainingStopped`); at the end of the epoch or of
           the budget, return.

        Every process decides alike after the same update: any process's signal, rank 0's clock.
        """
        t = self.cfg.trainer
        batches = self.epoch_batches(self.state.epoch)  # each a list of corpus indices, in this epoch's order
        if self.state.batch_in_epoch >= len(batches):  # saved after the epoch's last update, before its roll-over
            self.state.epoch, self.state.batch_in_epoch = self.state.epoch + 1, 0
            return
        window, bar = Window(), progress_bar(t, self.state, len(batches), self.processes.main)
        try:
            while True:
                self.schedule_lr(len(batches), window)  # 1
                start = self.state.batch_in_epoch
                group = batches[start : start + t.accumulate]
                loss, n, made = self.train_step(group)  # 2
                self.threads.update()
                self.state.batch_in_epoch = start + len(group)  # 3
                self.count(loss, n, made, window)
                bar.update(len(group))
                bar.set_postfix(loss=f"{loss / max(n, 1):.3f}", tok_s=f"{window.speed():,.0f}")
                epoch_done = self.state.batch_in_epoch >= len(batches)
                if epoch_done:
                    self.state.epoch, self.state.batch_in_epoch = self.state.epoch + 1, 0
                due = made and t.valid_every > 0 and self.state.step % t.valid_every == 0
                stopping = self.processes.any(bool(stop.signum))
                if epoch_done or due or self.finished(self.clock(window)):  # 4, as an uninterrupted run would
                    self.close(window)
                    self.validate_and_save(window)
                    window = Window()
                elif stopping:
                    self.close(window)
                    self.save()
                if stopping:  # 5
                    raise stopped(stop, self.state.step, self.files.last)
                if epoch_done or self.finished():
                    return
        finally:
            bar.close()

    def train_step(self, group: list[np.ndarray]) -> tuple[float, int, bool]:
        """One update from ``group``: ``trainer.accumulate`` batches (fewer at the epoch's end), each
        a list of corpus indices. The loss is averaged over the target tokens of them all, so N
        batches of B sentences give the update of one batch of N x B.

        1. ``n``: the group's target tokens (as sampled this epoch, with subword regularisation),
           each target with its EOS (every process's share);
        2. each batch: this process's share of its sentences (one process: all), padded
           (``collate``): ``src (B, S)`` and ``src_mask (B, S)``, ``tgt_in (B, T)`` (BOS y_1 .. y_n),
           ``tgt_out (B, T)`` (y_1 .. y_n EOS);
        3. its summed cross-entropy (:func:`seq2seq.loss.batch_loss`, a scalar) under autocast
           where ``trainer.precision`` asks; under DDP weighted so that the processes' losses add
           up to the whole batch's;
        4. backward of ``loss / n`` (scaled under fp16): the group's gradients add up; under DDP
           the processes average theirs on the group's last batch only;
        5. :func:`update`: clip and step, unless the loss or the gradient is not finite.

        Returns the group's summed loss (all processes), ``n`` and whether the update was made
        (False: skipped, nothing changed)."""
        self.model.train()
        world = self.processes.world
        src_ids, tgt_ids = self.epoch_ids
        n_tokens = sum(int(tgt_ids.lengths[index].sum()) + len(index) for index in group)  # 1
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for j, index in enumerate(group):
            mine, weight = self.processes.share(index)  # 2; one process: the whole batch, weight 1
            links = None if not self.guided else [self.links[i] for i in mine]  # type: ignore[index]
            batch = collate([src_ids[i] for i in mine], [tgt_ids[i] for i in mine], links).to(self.device)
            exchange = self.ddp is None or j == len(group) - 1  # DDP: average the gradients once per update
            with contextlib.nullcontext() if exchange else self.ddp.no_sync():  # type: ignore[union-attr]
                with torch.autocast(
                    self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
                ):  # 3
                    if self.ddp is None:
                        loss = batch_loss(self.model, batch, self.cfg.trainer.label_smoothing, self.guided)
                    else:  # DDP averages over processes: scaled by their number, the sum of every share's loss
                        loss = self.ddp(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out, batch.gold)
                        loss = loss * (weight * world)
                scaled = loss / n_tokens  # 4
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            total += loss.item() / world
        total = self.processes.total(total)
        made, self.grad_norm = update(self.model, self.optimizer, self.scaler, total, self.cfg.trainer.grad_clip)  # 5
        return total, n_tokens, made

    def count(self, loss: float, n_tokens: int, made: bool, window: Window) -> None:
        """An update made (the step, the window's figures, TensorBoard) or skipped."""
        if not made:
            self.state.count_skipped(loss, self.cfg.trainer.max_bad_updates)
            return
        self.state.step += 1
        self.state.bad_in_a_row = 0
        window.add(loss, n_tokens)
        self.board.update(self.state.step, loss / max(n_tokens, 1), self.state.lr, window.speed(), self.grad_norm)

    def validate_and_save(self, window: Window) -> None:
        """Validation (rank 0; the others take its metrics), a metrics row, ``best.pt`` on a
        better BLEU, the plateau schedule and early stopping, a kept checkpoint and ``last.pt``."""
        check_finite(self.model, self.state.step)
        metrics = self.processes.broadcast(self.validate() if self.processes.main else None)
        row = self.state.metrics_row(window, metrics)
        self.state.history.append(row)
        self.board.validation(row)
        log_validation(row)
        better = metrics["valid_bleu"] > self.state.best_bleu
        self.state.best_bleu = max(self.state.best_bleu, metrics["valid_bleu"])
        if self.processes.main and (better or not self.files.best.exists()):
            self.files.save_best(self.state)
        self.schedule(metrics["valid_loss"])
        self.state.early_stop(metrics, self.cfg.trainer)
        if self.processes.main:
            self.files.keep(self.state, self.cfg.trainer.keep_checkpoints)
        self.save()

    def validate(self) -> dict[str, float]:
        """The validation figures (:func:`seq2seq.evaluation.validate_model`) and the attention
        examples' pictures (``trainer.attention_examples``)."""
        t = self.cfg.trainer
        metrics, translations = validate_model(
            self.model, self.src_tok, self.tgt_tok, self.valid_data, tokenize=self.tokenize,
            batch_size=t.eval_batch_size, search=self.cfg.search, device=self.device,
            with_alignment=uses_attention(self.cfg.model.decoder) and self.valid_data.alignments is not None,
        )  # fmt: skip
        if t.attention_examples:
            self.files.draw_examples(self.state.step, translations, t.attention_examples)
        return metrics

    def schedule_lr(self, batches_in_epoch: int, window: Window) -> None:
        """The learning rate of the coming update under the warm-up and anneal schedules (the
        plateau schedule moves it after a validation: :meth:`schedule`)."""
        t, s = self.cfg.trainer, self.state
        if t.lr_schedule == "anneal":
            epochs = s.epoch + s.batch_in_epoch / max(batches_in_epoch, 1)
            spent = budget_spent(t, epochs, s.step, s.train_seconds + self.clock(window))
            self.set_lr(anneal_lr(spent, t.lr, t.min_lr, t.lr_anneal))
        elif t.lr_schedule in WARMUP_SCHEDULES:
            self.set_lr(warmup_lr(t.lr_schedule, s.step + 1, t.lr, t.warmup_steps, self.cfg.model.hidden_size))

    def schedule(self, valid_loss: float) -> None:
        """The plateau schedule after a validation: shrink the learning rate when the valid loss stops falling."""
        if self.state.plateau(valid_loss, self.cfg.trainer):
            self.set_lr(self.state.lr)
            log.info("valid loss did not improve: learning rate now %.2e", self.state.lr)

    def set_lr(self, lr: float) -> None:
        self.state.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def finished(self, extra_seconds: float = 0.0) -> bool:
        """Early stopping has ended the run, or the budget is spent (with ``extra_seconds`` more)."""
        s = self.state
        return bool(s.stop_reason) or budget_over(self.cfg.trainer, s.epoch, s.step, s.train_seconds + extra_seconds)

    def clock(self, window: Window) -> float:
        """Training seconds of this window; rank 0's under max_minutes, so that every process
        stops and anneals alike."""
        if self.processes.world > 1 and self.cfg.trainer.max_minutes > 0:
            return float(self.processes.broadcast(window.elapsed()))
        return window.elapsed()

    def close(self, window: Window) -> None:
        """Stop the window's clock and add its seconds (rank 0's) to the training time."""
        self.state.train_seconds += self.processes.broadcast(window.close())

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's batches (arrays of pair indices), the same in every process and after a
        resume: shuffled by the seed and the epoch; with weighted corpora, the epoch's draw."""
        rng = np.random.default_rng([self.cfg.seed, epoch])
        t = self.cfg.trainer
        pairs = epoch_pairs(self.corpora, self.weights, rng)
        by_length = self.by_length
        if self.resegment is not None:  # subword regularisation: this epoch's segmentations, cut by their lengths
            ids = (self.src_ids, self.tgt_ids)
            self.epoch_ids, by_length = sample_epoch(ids, self.resegment, epoch, self.sampled_folder()), None
        src, tgt = self.epoch_ids[0].lengths, self.epoch_ids[1].lengths
        if pairs is None:
            return bucket_batches(src, t.batch_size, t.max_tokens, rng, tgt, by_length)
        return [pairs[b] for b in bucket_batches(src[pairs], t.batch_size, t.max_tokens, rng, tgt[pairs])]

    def sampled_folder(self) -> Path:
        """Where this process keeps the epoch's sampled segmentations (subword regularisation)."""
        return self.out_dir / (SAMPLED if self.processes.world == 1 else f"{SAMPLED}.{self.processes.rank}")

    def save(self) -> None:
        """``last.pt`` (and ``metrics.csv``): :meth:`seq2seq.train_state.RunFiles.save`."""
        self.files.save(self.state)


def data_parallel(
    model: Seq2Seq, cfg: TrainConfig, processes: Processes, device: torch.device
) -> DistributedDataParallel | None:
    """Under torchrun: the model's loss (:class:`seq2seq.loss.LossOf`) for DistributedDataParallel,
    which exchanges the gradients; each process then draws its own dropout masks. One process: None."""
    if processes.world == 1:
        return None
    ddp = DistributedDataParallel(
        LossOf(model, cfg.trainer.label_smoothing, cfg.trainer.guided_alignment),
        device_ids=[device.index] if device.type == "cuda" else None,
    )  # the same start everywhere: DDP broadcasts rank 0's weights
    torch.manual_seed(cfg.seed * 1000 + processes.rank)
    return ddp


def progress_bar(t: TrainerConfig, state: TrainState, batches_in_epoch: int, main: bool) -> tqdm:
    """The epoch's progress bar (``trainer.progress``; rank 0 only), from where the epoch stands."""
    return tqdm(
        total=batches_in_epoch,
        initial=state.batch_in_epoch,
        desc=f"epoch {state.epoch + 1}/{t.epochs}",
        disable=not t.progress or not main,
        leave=False,
        dynamic_ncols=True,
    )


def stopped(stop: StopSignals, step: int, last: Path) -> TrainingStopped:
    """After a signal, with ``last.pt`` saved: the error that ends the run, saying how."""
    signum = stop.signum or signal.SIGTERM  # another process got it
    return TrainingStopped(f"stopped by {signal.Signals(signum).name} at step {step}: {last} saved", signum)


def update(
    model: Seq2Seq,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    loss: float,
    grad_clip: float,
) -> tuple[bool, float]:
    """Clip and step, unless the loss or the gradient is not finite (then nothing changes):
    whether the update was made, and the gradient norm before clipping (``grad_clip`` 0: none)."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    finite = math.isfinite(loss) and (scaler is not None or bool(torch.isfinite(norm)))
    if not finite:  # under fp16 the scaler itself skips steps with inf gradients and lowers its scale
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.update()
        return False, float(norm)
    if scaler is None:
        optimizer.step()
        return True, float(norm)
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() >= scale, float(norm)  # a lower scale: inf gradients, the step was skipped


def check_fits(cfg: TrainConfig, data: PreparedData) -> None:
    """Refuse, before anything is built: a ``max_tokens`` that holds no batch of the longest
    training pair, attention examples past the valid split's end, and guided alignment without
    gold links."""
    if cfg.trainer.guided_alignment > 0 and data.links is None:  # data made without prepare_data(links=True)
        raise ConfigError(f"trainer.guided_alignment={cfg.trainer.guided_alignment} needs the gold links in the data")
    longest = int(max(data.src_ids.lengths.max(initial=0), data.tgt_ids.lengths.max(initial=0)))
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


def log_start(cfg: TrainConfig, model: Seq2Seq, pairs: int, vocab: tuple[int, int], device: torch.device) -> None:
    """One line on what trains: the model and its size, the data, the device."""
    precision = "" if cfg.trainer.precision == "fp32" else f", {cfg.trainer.precision} autocast"
    log.info(
        "%s model: %s parameters (encoder %s, decoder %s); %d training pairs; vocab %d/%d; device %s%s",
        describe_model(cfg.model),
        f"{model.num_parameters:,}",
        f"{sum(p.numel() for p in model.encoder.parameters()):,}",
        f"{sum(p.numel() for p in model.decoder.parameters()):,}",
        pairs,
        *vocab,
        device,
        precision,
    )


def log_validation(row: dict[str, Any]) -> None:
    log.info(
        "epoch %d step %d: train loss %.3f, valid loss %.3f, valid BLEU %.2f, %d tok/s",
        *(row[k] for k in ("epoch", "step", "train_loss", "valid_loss", "valid_bleu", "tokens_per_second")),
    )


def train_run(cfg: TrainConfig, out_dir: str | Path) -> TrainResult:
    """Check ``cfg``, prepare its data and train into ``out_dir`` (resuming from its ``last.pt``).
    Under torchrun every process calls this; they train together into rank 0's ``out_dir``."""
    cfg = check_train(cfg)
    processes, device = join(cfg.trainer.device)
    try:
        folder = Path(processes.broadcast(str(out_dir)))
        if not processes.main:
            processes.broadcast(None)  # rank 0 prepares first: the corpus it may write, the tokenizer cache
        data = prepare_data(cfg.data, cfg.trainer.valid_max_sentences, links=cfg.trainer.guided_alignment > 0)
        if processes.main:
            processes.broadcast(None)
        return Trainer(cfg, folder, data, processes=processes, device=device).fit()
    finally:
        leave(processes)
