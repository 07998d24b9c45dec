"""Checkpoint averaging: kept per-validation checkpoints, the mean of their weights, the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from test_cli import run, text
from test_training import tiny_config

from seq2seq.checkpoint import average_checkpoints, kept_checkpoints, load_model, read_checkpoint, save_atomic
from seq2seq.errors import CheckpointError
from seq2seq.training import train_run
from seq2seq.translator import translate_sentences

SAME = {"threads": 1}  # runs compared bit for bit: a thread count that follows the load would change the sums


@pytest.fixture(scope="module")
def kept_run(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kept") / "run"
    train_run(tiny_config(toy_root, **SAME, epochs=3, keep_checkpoints=2), out)  # 10 updates per epoch
    return out


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_keep_checkpoints_keeps_the_newest_n_validations(kept_run: Path, toy_root: Path, tmp_path: Path) -> None:
    assert [p.name for p in kept_checkpoints(kept_run)] == ["step00000020.pt", "step00000030.pt"]
    assert "train_state" not in read_checkpoint(kept_run / "step00000030.pt")  # weights, tokenizers, config
    assert same_weights(kept_run / "step00000030.pt", kept_run / "last.pt")
    two_epochs = train_run(tiny_config(toy_root, **SAME, epochs=2), tmp_path / "two")  # the same run, to step 20
    assert same_weights(kept_run / "step00000020.pt", two_epochs.last)


def test_kept_checkpoints_of_a_resumed_run_equal_the_uninterrupted_runs(
    kept_run: Path, toy_root: Path, tmp_path: Path
) -> None:
    split = tmp_path / "split"
    train_run(tiny_config(toy_root, **SAME, epochs=3, keep_checkpoints=2, max_steps=13), split)  # "killed" at step 13
    assert [p.name for p in kept_checkpoints(split)] == ["step00000010.pt", "step00000013.pt"]
    # a kill between keeping a checkpoint and saving last.pt leaves one from past the resumed step
    shutil.copy(split / "step00000013.pt", split / "step00000017.pt")
    shutil.copy(split / "step00000013.pt", split / "averaged.pt")  # an average made before training went on
    (split / "step_notes.pt").write_bytes(b"a user's file, not a kept checkpoint")
    train_run(tiny_config(toy_root, **SAME, epochs=3, keep_checkpoints=2), split)
    assert [p.name for p in kept_checkpoints(split)] == ["step00000020.pt", "step00000030.pt"]
    for name in ("step00000020.pt", "step00000030.pt"):
        assert same_weights(split / name, kept_run / name), name
    assert not (split / "averaged.pt").exists() and (split / "step_notes.pt").exists()


def test_a_fresh_start_in_a_used_folder_drops_the_old_runs_kept_checkpoints(toy_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_run(tiny_config(toy_root, epochs=3, keep_checkpoints=5), run_dir)
    train_run(tiny_config(toy_root, epochs=1, keep_checkpoints=5, resume=False), run_dir)
    assert [p.name for p in kept_checkpoints(run_dir)] == ["step00000010.pt"]


def test_average_is_the_elementwise_mean_of_float_tensors(kept_run: Path) -> None:
    a, b = (read_checkpoint(p)["model"] for p in kept_checkpoints(kept_run))
    avg = average_checkpoints(kept_checkpoints(kept_run))
    assert "train_state" not in avg
    assert avg["averaged_from"] == [str(kept_run / "step00000020.pt"), str(kept_run / "step00000030.pt")]
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
    for k, weights in {"long": torch.tensor([1.0, 2.0, 3.0]), "int": torch.tensor([1, 2])}.items():
        save_atomic({**base, "model": {"w": weights, "count": torch.tensor(1)}}, tmp_path / f"{k}.pt")
    with pytest.raises(CheckpointError, match=r"w is torch.float32 \(3,\), not torch.float32 \(2,\)"):
        average_checkpoints([files[0], tmp_path / "long.pt"])
    with pytest.raises(CheckpointError, match=r"w is torch.int64 \(2,\), not torch.float32 \(2,\)"):
        average_checkpoints([files[0], tmp_path / "int.pt"])


def test_an_averaged_checkpoint_loads_and_translates(kept_run: Path, tmp_path: Path) -> None:
    save_atomic(average_checkpoints(kept_checkpoints(kept_run)), tmp_path / "avg.pt")
    loaded = load_model(tmp_path / "avg.pt")
    kept = [read_checkpoint(p)["model"] for p in kept_checkpoints(kept_run)]
    for name, tensor in loaded.model.state_dict().items():  # the loaded model holds the mean
        assert torch.allclose(tensor, sum(k[name].double() for k in kept).float() / len(kept)), name
    sentences = ["Tom chase Jerry", "Jerry see Tom"]
    hyps = translate_sentences(loaded.model, loaded.src_tokenizer, loaded.tgt_tokenizer, sentences, batch_size=8)
    assert [h.source for h in hyps] == sentences
    for h in hyps:  # where each output token looked: a distribution over the source tokens
        assert torch.allclose(h.attention.sum(dim=1), torch.ones(len(h.tokens)), atol=1e-5)


def test_averaging_other_models_or_tokenizers_is_refused(kept_run: Path, toy_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy_root, max_steps=1)
    cfg.model.hidden_size = 24
    wider = train_run(cfg, tmp_path / "wider")
    with pytest.raises(CheckpointError, match="holds another model"):
        average_checkpoints([kept_run / "best.pt", wider.best])
    ckpt = read_checkpoint(kept_run / "best.pt")
    checksums = {**ckpt["tokenizer_sha256"], "tgt_tokenizer": hashlib.sha256(b"other").hexdigest()}
    save_atomic({**ckpt, "tgt_tokenizer": b"other", "tokenizer_sha256": checksums}, tmp_path / "tok.pt")  # intact
    with pytest.raises(CheckpointError, match="other tokenizers"):
        average_checkpoints([kept_run / "best.pt", tmp_path / "tok.pt"])
    with pytest.raises(CheckpointError, match="no checkpoints"):
        average_checkpoints([])


def test_average_cli_writes_the_mean_of_a_runs_last_checkpoints(kept_run: Path, tmp_path: Path) -> None:
    p = run("seq2seq-average", f"run={kept_run}", "last=2", f"output={tmp_path / 'avg.pt'}", cwd=tmp_path)
    assert p.returncode == 0, text(p)
    assert "averaged 2 checkpoints (step00000020.pt, step00000030.pt)" in p.stdout.decode()
    expected = [str(kept_run / "step00000020.pt"), str(kept_run / "step00000030.pt")]
    assert read_checkpoint(tmp_path / "avg.pt")["averaged_from"] == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["last=3"], "last=3 but only 2 kept checkpoints"),
        (["last=0"], "last=0 must be >= 1"),
        ([], "last=5 but only 2 kept checkpoints"),  # the default, 5, is more than the run kept
    ],
)
def test_average_cli_names_what_is_wrong(kept_run: Path, tmp_path: Path, args: list[str], message: str) -> None:
    p = run("seq2seq-average", f"run={kept_run}", *args, f"output={tmp_path / 'x.pt'}", cwd=tmp_path)
    assert p.returncode != 0
    assert message in p.stderr.decode()
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


def test_gather_evaluates_the_averaged_checkpoint_where_a_run_has_one(
    kept_run: Path, toy_root: Path, tmp_path: Path
) -> None:
    kept = shutil.copytree(kept_run, tmp_path / "runs" / "kept")  # the shared run stays as it was
    plain = train_run(tiny_config(toy_root, max_steps=3), tmp_path / "runs" / "plain").best.parent
    p = run("seq2seq-average", f"run={kept}", "last=2", cwd=tmp_path)
    assert p.returncode == 0, text(p)
    out = tmp_path / "gathered"
    runs = f"runs=[{tmp_path / 'runs'}]"
    p = run("seq2seq-gather", runs, "checkpoints=[averaged.pt,best.pt]", f"hydra.run.dir={out}", cwd=tmp_path)
    assert p.returncode == 0, text(p)
    models = json.loads((out / "comparison.json").read_text())["models"]
    assert {n: Path(m["checkpoint"]) for n, m in models.items()} == {
        "kept": kept / "averaged.pt",
        "plain": plain / "best.pt",
    }
    assert "Checkpoints evaluated: kept: `averaged.pt`, plain: `best.pt`" in (out / "comparison.md").read_text()
    for bad, message in [
        ("[nope.pt]", "holds none of checkpoints=['nope.pt']"),
        ("[]", "give file names"),
        (f"[{kept / 'best.pt'}]", "give file names"),
    ]:
        p = run("seq2seq-gather", runs, f"checkpoints={bad}", f"hydra.run.dir={tmp_path / 'x'}", cwd=tmp_path)
        assert p.returncode != 0 and message in p.stderr.decode(), bad
        assert not (tmp_path / "x" / "comparison.json").exists()
