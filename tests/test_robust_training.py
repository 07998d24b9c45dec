"""Training that can be trusted: accumulation, precision, mid-epoch saves, a SIGKILL or a signal
that loses nothing, early stopping, a diverged run that keeps its good checkpoints, one run per
folder."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import torch
from omegaconf import OmegaConf
from test_training import tiny_config

from seq2seq import checkpoint
from seq2seq import device as device_module
from seq2seq.checkpoint import average_checkpoints, load_model, read_checkpoint, save_atomic
from seq2seq.data.prepare import prepare_data
from seq2seq.device import cpu_has_bf16
from seq2seq.errors import CheckpointError, ConfigError, RunFolderBusy, TrainingStopped
from seq2seq.training import Trainer, train_run

BIN = Path(sys.executable).parent


def trainer(root: Path, out: Path, **settings: object) -> Trainer:
    cfg = tiny_config(root, **settings)
    cfg.model.dropout = 0.0  # the same masks whatever the batch split
    return Trainer(cfg, out, prepare_data(cfg.data))


def test_accumulating_two_batches_gives_the_update_of_one_batch_twice_as_large(toy_root: Path, tmp_path: Path) -> None:
    accumulated = trainer(toy_root, tmp_path / "a", accumulate=2, grad_clip=0.0)  # no clipping: raw gradients
    whole = trainer(toy_root, tmp_path / "b", grad_clip=0.0)
    first, second = list(range(0, 16)), list(range(100, 116))
    loss_a, tokens_a, made_a = accumulated.train_step([first, second])
    loss_b, tokens_b, made_b = whole.train_step([first + second])
    assert made_a and made_b and tokens_a == tokens_b
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    assert accumulated.grad_norm == pytest.approx(whole.grad_norm, rel=1e-5)  # a 2x scale error would show here
    for (name, a), b in zip(accumulated.model.named_parameters(), whole.model.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-4), name
        assert torch.allclose(a, b, atol=1e-6, rtol=0), name


def test_accumulation_counts_updates_not_batches(toy_root: Path, tmp_path: Path) -> None:
    result = train_run(tiny_config(toy_root, epochs=1, accumulate=3), tmp_path / "run")
    assert result.state.step == 4  # 10 batches: 3 + 3 + 3 + 1


def test_precision_is_autocast_with_fp32_weights_or_refused_where_the_device_cannot(
    toy_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="trainer.precision=fp16 needs a CUDA device"):
        trainer(toy_root, tmp_path / "fp16", precision="fp16", device="cpu")
    if not cpu_has_bf16():
        with pytest.raises(ConfigError, match="trainer.precision=bf16: this CPU .* has no bf16 instructions"):
            trainer(toy_root, tmp_path / "bf16", precision="bf16", device="cpu")
        monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: True)  # torch emulates bf16: slow, but it runs
    t = trainer(toy_root, tmp_path / "bf16", precision="bf16", device="cpu", lr=0.01)
    losses = [t.train_step([list(range(32))])[0] for _ in range(8)]
    fp32 = trainer(toy_root, tmp_path / "fp32", device="cpu", lr=0.01)
    reference = [fp32.train_step([list(range(32))])[0] for _ in range(8)]
    assert losses[-1] < 0.95 * losses[0]  # bf16 training learns,
    assert abs(losses[-1] - reference[-1]) < 0.03 * reference[-1]  # as fast as fp32 does
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # fp32 master weights
    assert all(v.dtype == torch.float32 for s in t.optimizer.state.values() for v in s.values() if v.dim())


def test_valid_every_validates_and_saves_mid_epoch(toy_root: Path, tmp_path: Path) -> None:
    result = train_run(tiny_config(toy_root, epochs=1, valid_every=3), tmp_path / "run")
    assert [row["step"] for row in result.state.history] == [3, 6, 9, 10]  # and the end of the epoch
    assert [row["epoch"] for row in result.state.history] == [0, 0, 0, 1]
    env = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and "git_revision" in env and env["seq2seq"]


def cli_args(root: Path, run: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "seq2seq-train"), f"data.root={root}", f"hydra.run.dir={run}", "trainer.progress=false",
        "model.embed_size=16", "model.hidden_size=32", "trainer.batch_size=32", "trainer.threads=1",
        "trainer.valid_max_sentences=5", *extra,
    ]  # fmt: skip


def saved_step(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["train_state"]["step"])
    except Exception:  # not there yet
        return -1


def start_and_wait_for_a_save(args: list[str], last: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while saved_step(last) < 1:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return proc


def assert_same_tensors(a: dict, b: dict, where: str = "") -> None:
    for key, value in a.items():
        if torch.is_tensor(value):
            assert torch.equal(value, b[key]), f"{where}{key}"
        elif isinstance(value, dict):
            assert_same_tensors(value, b[key], f"{where}{key}.")


def test_a_run_killed_with_sigkill_resumes_to_the_same_last_pt(toy_root: Path, tmp_path: Path) -> None:
    budget = ["trainer.epochs=10", "trainer.valid_every=7"]  # 100 updates, saves mid-epoch
    killed = tmp_path / "killed"
    proc = start_and_wait_for_a_save(cli_args(toy_root, killed, *budget), killed / "last.pt", tmp_path)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate()
    at_kill = saved_step(killed / "last.pt")
    assert 0 < at_kill < 100, at_kill  # killed mid-run, after a save
    (killed / ".last.pt.leftover.tmp").write_bytes(b"half a save")  # what a kill during a save leaves
    assert subprocess.run(cli_args(toy_root, killed, *budget), cwd=tmp_path, capture_output=True).returncode == 0
    assert not (killed / ".last.pt.leftover.tmp").exists() and not (killed / "train.lock").exists()
    whole = tmp_path / "whole"
    assert subprocess.run(cli_args(toy_root, whole, *budget), cwd=tmp_path, capture_output=True).returncode == 0
    a, b = read_checkpoint(whole / "last.pt"), read_checkpoint(killed / "last.pt")
    assert a["train_state"]["step"] == b["train_state"]["step"] == 100
    assert_same_tensors(a["model"], b["model"], "model.")
    assert_same_tensors(a["train_state"]["optimizer"], b["train_state"]["optimizer"], "optimizer.")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_saves_last_pt_and_prints_the_command_that_resumes(
    signum: int, toy_root: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    budget = ["trainer.epochs=30", "trainer.valid_every=5"]
    proc = start_and_wait_for_a_save(cli_args(toy_root, run, *budget), run / "last.pt", tmp_path)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err.decode()
    message = err.decode()
    name = signal.Signals(signum).name
    assert f"stopped by {name} at step" in message and "Traceback" not in message
    step = int(message.split(f"stopped by {name} at step ")[1].split(":")[0])
    assert saved_step(run / "last.pt") == step  # the update under way finished, then was saved
    assert f"hydra.run.dir={run}" in message.splitlines()[-1]  # the command that resumes
    assert not (run / "train.lock").exists()


def test_early_stopping_ends_the_run_and_its_counter_survives_resume(toy_root: Path, tmp_path: Path) -> None:
    settings = {"epochs": 3, "valid_every": 2, "lr": 1e-7, "min_lr": 0.0, "patience": 2}  # valid BLEU stays put
    whole = train_run(tiny_config(toy_root, **settings), tmp_path / "whole")
    assert whole.state.step == 6 and whole.state.stop_reason.startswith("early stop: valid_bleu has not improved")
    train_run(tiny_config(toy_root, max_steps=4, **settings), tmp_path / "split")  # 2 validations, 1 stale
    resumed = train_run(tiny_config(toy_root, **settings), tmp_path / "split")
    assert resumed.state.step == 6 and resumed.state.stop_reason == whole.state.stop_reason


def test_a_diverged_run_stops_and_keeps_its_good_checkpoints(
    toy_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original, calls = Trainer.train_step, []

    def poisoned(self: Trainer, group: list[list[int]]) -> tuple[float, int, bool]:
        calls.append(1)
        if len(calls) == 7:  # a NaN lands in one weight after 6 good updates
            with torch.no_grad():
                self.model.decoder.generator.weight[5, 0] = float("nan")
        return original(self, group)

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    with pytest.raises(TrainingStopped, match="3 updates in a row had a non-finite loss"):
        train_run(tiny_config(toy_root, epochs=2, valid_every=5, max_bad_updates=3), tmp_path / "run")
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert last["train_state"]["step"] == 5 and last["train_state"]["skipped_updates"] == 0
    load_model(tmp_path / "run" / "best.pt")  # finite, loads
    poisoned_ckpt = {**last, "model": {**last["model"]}}
    poisoned_ckpt["model"]["decoder.generator.bias"] = torch.full_like(
        last["model"]["decoder.generator.bias"], float("inf")
    )
    save_atomic(poisoned_ckpt, tmp_path / "bad.pt")
    with pytest.raises(
        CheckpointError, match="decoder.generator.bias holds nan or inf: the run that wrote it diverged"
    ):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="cannot average it"):
        average_checkpoints([tmp_path / "run" / "last.pt", tmp_path / "bad.pt"])


def test_a_second_run_into_a_live_runs_folder_is_refused(toy_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    holder = (  # a live run holds the lock: an exclusive flock on train.lock, its pid inside
        "import fcntl, os, sys, time\n"
        f"f = open({str(run / 'train.lock')!r}, 'a+')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        "f.write(f'{os.getpid()} {os.uname().nodename}\\n'); f.flush(); print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    sleeper = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout is not None and sleeper.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=f"another seq2seq-train \\(pid {sleeper.pid}\\) is training"):
            train_run(tiny_config(toy_root, max_steps=1), run)
        assert not (run / "last.pt").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (run / "train.lock").exists()  # killed: its lock file stays, its flock is gone
    result = train_run(tiny_config(toy_root, max_steps=1), run)  # taken over
    assert result.state.step == 1 and not (run / "train.lock").exists()


def test_a_checkpoint_from_a_newer_version_is_refused_clearly(toy_root: Path, tmp_path: Path) -> None:
    result = train_run(tiny_config(toy_root, max_steps=1), tmp_path / "run")
    ckpt = read_checkpoint(result.best)
    save_atomic({**ckpt, "version": ckpt["version"] + 1}, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="written by a newer seq2seq .* upgrade seq2seq-attention"):
        load_model(tmp_path / "newer.pt")


def test_the_new_trainer_options_are_in_the_example_config() -> None:
    example = OmegaConf.load(Path(__file__).resolve().parent.parent / "configs" / "example.yaml")
    for key in ("valid_every", "accumulate", "precision", "patience", "early_stop_metric", "max_bad_updates"):
        assert key in example.trainer, key


def test_tensorboard_logs_training_and_validation_figures(toy_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")  # the optional extra (the dev extra installs it)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train_run(tiny_config(toy_root, epochs=1, tensorboard=True, log_every=2), tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/tokens_per_second", "train/grad_norm"} <= tags
    assert {"valid/loss", "valid/bleu", "valid/chrf", "valid/alignment_accuracy"} <= tags  # the toy has gold links
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8, 10]
    (bleu,) = events.Scalars("valid/bleu")
    assert bleu.value == pytest.approx(result.state.history[-1]["valid_bleu"])
    assert "valid_alignment_accuracy" in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("at_call", "settings"),
    [(10, {}), (7, {"valid_every": 7}), (13, {"lr_schedule": "plateau", "valid_every": 4, "lr_patience": 0})],
    ids=["last-update-of-an-epoch", "a-valid-every-step", "mid-epoch-under-plateau"],
)
def test_a_run_stopped_by_a_signal_resumes_to_the_uninterrupted_run(
    at_call: int, settings: dict, toy_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"epochs": 3, **settings}  # 10 updates an epoch
    whole = train_run(tiny_config(toy_root, **config), tmp_path / "whole")
    original, calls = Trainer.train_step, []

    def signalled(self: Trainer, group: list[list[int]]) -> tuple[float, int, bool]:
        calls.append(1)
        if len(calls) == at_call:  # SIGTERM lands while this update runs
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, group)

    monkeypatch.setattr(Trainer, "train_step", signalled)
    with pytest.raises(TrainingStopped, match=f"stopped by SIGTERM at step {at_call}"):
        train_run(tiny_config(toy_root, **config), tmp_path / "split")
    monkeypatch.undo()
    resumed = train_run(tiny_config(toy_root, **config), tmp_path / "split")
    assert [r["step"] for r in resumed.state.history] == [r["step"] for r in whole.state.history]
    assert [r["lr"] for r in resumed.state.history] == [r["lr"] for r in whole.state.history]
    a, b = read_checkpoint(whole.last), read_checkpoint(resumed.last)
    assert a["train_state"]["step"] == b["train_state"]["step"] == 30
    assert_same_tensors(a["model"], b["model"], "model.")
    assert_same_tensors(a["train_state"]["optimizer"], b["train_state"]["optimizer"], "optimizer.")


class FullDisk(io.RawIOBase):
    """A file whose disk fills after ``room`` bytes: torch's writer meets ENOSPC mid-checkpoint."""

    def __init__(self, file: BinaryIO, room: int) -> None:
        self.file, self.room = file, room

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ckpt.pt"
    save_atomic({"a": torch.zeros(4)}, path)

    def writer_raises(obj: Any, f: BinaryIO) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def disk_fills(obj: Any, f: BinaryIO) -> None:
        torch.save(obj, FullDisk(f, 100))  # torch's own writer, failing inside (a RuntimeError around the OSError)

    for failing in (writer_raises, disk_fills):
        monkeypatch.setattr(checkpoint, "write_checkpoint", failing)
        with pytest.raises(CheckpointError) as error:
            save_atomic({"a": torch.ones(100_000)}, path)
        message = str(error.value)
        assert "\n" not in message and "no space left on the device" in message, message
        assert "the previous ckpt.pt is unchanged" in message and "free some space" in message
        assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(4))
        assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


def test_a_full_disk_during_training_ends_in_one_checkpoint_error_and_last_pt_stays(
    toy_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saves: list[int] = []
    write = checkpoint.write_checkpoint

    def fills_after_two(obj: Any, f: BinaryIO) -> None:  # the first validation's best.pt and last.pt fit
        saves.append(1)
        if len(saves) <= 2:
            write(obj, f)
        else:
            torch.save(obj, FullDisk(f, 1000))

    monkeypatch.setattr(checkpoint, "write_checkpoint", fills_after_two)
    run = tmp_path / "run"
    with pytest.raises(CheckpointError, match="could not save: no space left on the device"):
        train_run(tiny_config(toy_root, epochs=2, valid_every=5), run)
    assert read_checkpoint(run / "last.pt")["train_state"]["step"] == 5
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")] and not (run / "train.lock").exists()


@pytest.fixture(scope="module")
def one_step_run(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("one_step") / "run"
    train_run(tiny_config(toy_root, max_steps=1), run)
    return run


def test_a_flipped_tokenizer_byte_is_refused_and_checkpoints_without_checksums_still_load(
    one_step_run: Path, tmp_path: Path
) -> None:
    ckpt = read_checkpoint(one_step_run / "best.pt")
    for key in ("src_tokenizer", "tgt_tokenizer"):
        flipped = bytearray(ckpt[key])
        flipped[len(flipped) // 2] ^= 0x01
        save_atomic({**ckpt, key: bytes(flipped)}, tmp_path / "flipped.pt")
        with pytest.raises(CheckpointError, match=f"damaged: its {key.replace('_', ' ')} does not match the checksum"):
            load_model(tmp_path / "flipped.pt")
    save_atomic({k: v for k, v in ckpt.items() if k != "tokenizer_sha256"}, tmp_path / "older.pt")
    load_model(tmp_path / "older.pt")  # written before the checksums: loads as before


def test_a_folder_given_as_a_checkpoint_names_the_file_in_it(one_step_run: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file; did you mean .*best.pt") as error:
        load_model(one_step_run)
    assert str(one_step_run / "best.pt") in str(error.value)
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file, and holds no .pt file"):
        read_checkpoint(tmp_path)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("kept", "source"),
    [(4, "restored best.pt from step00000005.pt"), (0, "are lost: removed it")],
    ids=["from-the-kept-step-file", "lost"],
)
def test_a_truncated_best_pt_is_put_right_on_resume_with_one_warning(
    kept: int, source: str, toy_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"epochs": 2, "valid_every": 5, "lr": 1e-7, "min_lr": 0.0, "keep_checkpoints": kept}  # BLEU stays put
    run = tmp_path / "run"
    first = train_run(tiny_config(toy_root, **settings), run)
    assert [row["step"] for row in first.state.history] == [5, 10, 15, 20]  # best.pt: step 5's weights
    best = weights(run / "best.pt")
    truncate(run / "best.pt")
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        resumed = train_run(tiny_config(toy_root, **settings), run)  # finished already: no more training
    (warning,) = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "best.pt" in r.getMessage()
    ]
    assert warning.startswith(f"{run / 'best.pt'}: not a readable checkpoint") and source in warning, warning
    if kept:  # the very weights of the best validation
        assert resumed.best_bleu == first.best_bleu
        assert all(torch.equal(best[name], tensor) for name, tensor in weights(run / "best.pt").items())
    else:  # lost: best.pt holds the resumed weights, and the BLEU counts from here on
        assert resumed.best_bleu == -1.0
        last = weights(run / "last.pt")
        assert all(torch.equal(last[name], tensor) for name, tensor in weights(run / "best.pt").items())


def test_a_truncated_best_pt_of_the_last_validation_is_rewritten_from_last_pt(
    toy_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    first = train_run(tiny_config(toy_root, epochs=1), run)  # one validation: best.pt and last.pt hold the same weights
    truncate(run / "best.pt")
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        resumed = train_run(tiny_config(toy_root, epochs=1), run)
    (warning,) = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "best.pt" in r.getMessage()
    ]
    assert "rewrote best.pt from last.pt" in warning, warning
    assert resumed.best_bleu == first.best_bleu
    last = weights(run / "last.pt")
    assert all(torch.equal(last[name], tensor) for name, tensor in weights(run / "best.pt").items())


def test_a_last_pt_from_before_numpys_batches_resumes_mid_epoch_with_a_warning(
    toy_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train_run(tiny_config(toy_root, epochs=1, max_steps=3), tmp_path / "run")
    last = tmp_path / "run" / "last.pt"
    ckpt = read_checkpoint(last)
    del ckpt["train_state"]["batching"]  # written by a version that shuffled with Python's random
    assert ckpt["train_state"]["batch_in_epoch"] == 3
    save_atomic(ckpt, last)
    with caplog.at_level(logging.WARNING, logger="seq2seq"):
        result = train_run(tiny_config(toy_root, epochs=1, max_steps=5), tmp_path / "run")
    assert result.state.step == 5 and result.state.batching == 2
    warned = [r.message for r in caplog.records if "by a version that drew batches another way" in r.message]
    assert len(warned) == 1 and "in the middle of epoch 1" in warned[0]
