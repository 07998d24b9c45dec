"""Checkpoint averaging: kept per-validation checkpoints, the mean of their weights, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_cli import run, text
from test_training import tiny_config

from seq2seq.checkpoint import average_checkpoints, kept_checkpoints, load_model, read_checkpoint, save_atomic
from seq2seq.errors import CheckpointError
from seq2seq.search import translate_sentences
from seq2seq.train import train


@pytest.fixture(scope="module")
def kept_run(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kept") / "run"
    train(tiny_config(toy_root, epochs=3, keep_checkpoints=2), out)  # 10 updates per epoch
    return out


def test_keep_checkpoints_keeps_the_newest_n_validations(kept_run: Path) -> None:
    assert [p.name for p in kept_checkpoints(kept_run)] == ["step00000020.pt", "step00000030.pt"]
    last, newest = read_checkpoint(kept_run / "last.pt"), read_checkpoint(kept_run / "step00000030.pt")
    assert "train_state" not in newest  # weights, tokenizers and config only
    for name, tensor in last["model"].items():
        assert torch.equal(tensor, newest["model"][name]), name


def test_average_is_the_elementwise_mean_of_float_tensors(kept_run: Path) -> None:
    a, b = (read_checkpoint(p)["model"] for p in kept_checkpoints(kept_run))
    avg = average_checkpoints(kept_checkpoints(kept_run))
    assert "train_state" not in avg and avg["averaged_from"] == ["step00000020.pt", "step00000030.pt"]
    moved = 0
    for name, tensor in avg["model"].items():
        assert tensor.dtype == a[name].dtype and tensor.shape == a[name].shape
        assert torch.allclose(tensor, (a[name] + b[name]) / 2, atol=1e-7), name
        moved += not torch.equal(a[name], b[name])
    assert moved > 0  # the two checkpoints differ, so the mean is a new point


def test_average_by_hand_and_non_float_tensors_come_from_the_last_file(kept_run: Path, tmp_path: Path) -> None:
    base = read_checkpoint(kept_run / "best.pt")
    files = []
    for k, (w, count) in enumerate([([1.0, 2.0], 3), ([2.0, 6.0], 4), ([6.0, 1.0], 5)]):
        ckpt = {**base, "model": {"w": torch.tensor(w), "count": torch.tensor(count)}}
        save_atomic(ckpt, tmp_path / f"{k}.pt")
        files.append(tmp_path / f"{k}.pt")
    avg = average_checkpoints(files)["model"]
    assert torch.equal(avg["w"], torch.tensor([3.0, 3.0]))  # (1+2+6)/3, (2+6+1)/3
    assert avg["count"].item() == 5 and avg["count"].dtype == torch.int64


def test_an_averaged_checkpoint_loads_and_translates(kept_run: Path, tmp_path: Path) -> None:
    save_atomic(average_checkpoints(kept_checkpoints(kept_run)), tmp_path / "avg.pt")
    loaded = load_model(tmp_path / "avg.pt")
    hyps = translate_sentences(loaded.model, loaded.src_tokenizer, loaded.tgt_tokenizer, ["a b c"], 8)
    assert len(hyps) == 1 and isinstance(hyps[0].text, str)


def test_averaging_other_models_or_tokenizers_is_refused(kept_run: Path, toy_root: Path, tmp_path: Path) -> None:
    other = train(tiny_config(toy_root, max_steps=1), tmp_path / "other")  # same tokenizer, other weights: fine
    average_checkpoints([other.best, kept_run / "best.pt"])
    cfg = tiny_config(toy_root, max_steps=1)
    cfg.model.hidden_size = 24
    wider = train(cfg, tmp_path / "wider")
    with pytest.raises(CheckpointError, match="holds another model"):
        average_checkpoints([kept_run / "best.pt", wider.best])
    ckpt = read_checkpoint(kept_run / "best.pt")
    save_atomic({**ckpt, "tgt_tokenizer": b"other"}, tmp_path / "tok.pt")
    with pytest.raises(CheckpointError, match="other tokenizers"):
        average_checkpoints([kept_run / "best.pt", tmp_path / "tok.pt"])
    with pytest.raises(CheckpointError, match="no checkpoints"):
        average_checkpoints([])


def test_average_cli_writes_the_mean_of_a_runs_last_checkpoints(kept_run: Path, tmp_path: Path) -> None:
    p = run("seq2seq-average", f"run={kept_run}", "last=2", f"output={tmp_path / 'avg.pt'}", cwd=tmp_path)
    assert p.returncode == 0, text(p)
    assert "averaged 2 checkpoints (step00000020.pt, step00000030.pt)" in p.stdout.decode()
    assert read_checkpoint(tmp_path / "avg.pt")["averaged_from"] == ["step00000020.pt", "step00000030.pt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["last=3"], "last=3 but only 2 kept checkpoints"),
        (["last=0"], "last=0 must be >= 1"),
        ([], None),  # run only: fine, the default is the newest 5, more than the run kept
    ],
)
def test_average_cli_names_what_is_wrong(kept_run: Path, tmp_path: Path, args: list[str], message: str | None) -> None:
    p = run("seq2seq-average", f"run={kept_run}", *args, f"output={tmp_path / 'x.pt'}", cwd=tmp_path)
    assert p.returncode != 0
    assert (message or "last=5 but only 2 kept checkpoints") in p.stderr.decode()
    assert not (tmp_path / "x.pt").exists()


def test_average_cli_without_kept_checkpoints_or_with_both_sources(kept_run: Path, tmp_path: Path) -> None:
    p = run("seq2seq-average", f"run={tmp_path}", cwd=tmp_path)
    assert p.returncode != 0 and "no kept checkpoints" in p.stderr.decode() and "keep_checkpoints" in p.stderr.decode()
    p = run("seq2seq-average", f"run={kept_run}", f"checkpoints=[{kept_run / 'best.pt'}]", cwd=tmp_path)
    assert p.returncode != 0 and "either run=FOLDER" in p.stderr.decode()
    p = run("seq2seq-average", f"checkpoints=[{kept_run / 'best.pt'}]", cwd=tmp_path)
    assert p.returncode != 0 and "output=FILE is required" in p.stderr.decode()
    p = run("seq2seq-average", "run=/nonexistent/run", cwd=tmp_path)
    assert p.returncode != 0 and "is not a folder" in p.stderr.decode()
