"""Training: checkpoints, resume equals the uninterrupted run, metrics, self-contained checkpoints."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seq2seq.checkpoint import load_model, read_checkpoint, save_atomic
from seq2seq.config import TrainConfig
from seq2seq.data.prepare import prepare_data
from seq2seq.errors import CheckpointError, ConfigError
from seq2seq.training import Trainer, train_run
from seq2seq.translator import translate_sentences


def tiny_config(root: Path, **trainer: object) -> TrainConfig:
    cfg = OmegaConf.structured(TrainConfig)
    cfg.data = OmegaConf.merge(
        cfg.data,
        {"name": "toy", "root": str(root), "tokenizer": {"model_type": "word", "normalization": "identity"}},
    )
    cfg.model.embed_size, cfg.model.hidden_size, cfg.model.dropout = 16, 32, 0.1
    cfg.trainer = OmegaConf.merge(
        cfg.trainer, {"epochs": 2, "batch_size": 32, "progress": False, "valid_max_sentences": 10, **trainer}
    )
    return cfg  # type: ignore[return-value]


def test_train_writes_checkpoints_metrics_and_config(toy_root: Path, tmp_path: Path) -> None:
    result = train_run(tiny_config(toy_root), tmp_path / "run")
    run = tmp_path / "run"
    assert result.best.exists() and result.last.exists()
    assert (run / "config.yaml").read_text().count("hidden_size: 32") == 1
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,train_loss,valid_loss,valid_bleu")
    assert len(rows) == 3  # header + 2 epochs
    assert result.state.epoch == 2 and result.state.step == 2 * 10  # 300 pairs / 32 = 10 batches


def test_resume_after_interruption_equals_uninterrupted_run(toy_root: Path, tmp_path: Path) -> None:
    whole = train_run(tiny_config(toy_root), tmp_path / "whole")
    # "killed" after 13 updates (in the middle of epoch 2), then the same command again
    train_run(tiny_config(toy_root, max_steps=13), tmp_path / "split")
    resumed = train_run(tiny_config(toy_root), tmp_path / "split")
    assert resumed.state.step == whole.state.step
    a = read_checkpoint(whole.last)["model"]
    b = read_checkpoint(resumed.last)["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_anneal_decays_linearly_to_min_lr_and_a_killed_run_resumes_exactly(
    toy_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def config() -> TrainConfig:  # 4 epochs of 10 batches; the last half of the 40 updates decays
        return tiny_config(toy_root, epochs=4, lr=0.01, min_lr=1e-5, lr_schedule="anneal", lr_anneal=0.5)

    whole = train_run(config(), tmp_path / "whole")
    # the lr of each epoch's last update: step s of 40 has 0.01 up to s = 20, then 1e-5 + (0.01 - 1e-5) * (40 - s) / 20
    at_step = [0.01, 0.01, 1e-5 + (0.01 - 1e-5) * 11 / 20, 1e-5 + (0.01 - 1e-5) * 1 / 20]
    assert [row["lr"] for row in whole.state.history] == pytest.approx(at_step)

    # killed (not stopped by max_steps, which would shorten the budget) in the middle of epoch 2
    original, calls = Trainer.train_step, []

    def dying(self: Trainer, index: list[int]) -> tuple[float, int]:
        calls.append(1)
        if len(calls) > 13:
            raise KeyboardInterrupt
        return original(self, index)

    monkeypatch.setattr(Trainer, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        train_run(config(), tmp_path / "split")
    monkeypatch.undo()
    resumed = train_run(config(), tmp_path / "split")  # from the end of epoch 1
    assert resumed.state.step == whole.state.step == 40
    a, b = read_checkpoint(whole.last)["model"], read_checkpoint(resumed.last)["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_plateau_halves_the_lr_when_the_valid_loss_stops_falling(toy_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy_root, lr=0.01, lr_schedule="plateau", lr_patience=1, min_lr=0.003)
    trainer = Trainer(cfg, tmp_path, prepare_data(cfg.data))
    lrs = []
    for valid_loss in (3.0, 2.0, 2.5, 2.1, 1.9, 2.0, 2.0, 2.0, 2.0):
        trainer.schedule(valid_loss)
        lrs.append(trainer.state.lr)
    # patience 1: the second epoch in a row without a new best halves the lr, down to min_lr
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.003, 0.003, 0.003])  # 0.0025 < min_lr
    assert all(group["lr"] == trainer.state.lr for group in trainer.optimizer.param_groups)


def test_checkpoint_translates_after_the_corpus_is_deleted(toy_root: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(toy_root, corpus)
    result = train_run(tiny_config(corpus, epochs=1), tmp_path / "run")
    loaded = load_model(result.best)
    before = translate_sentences(loaded.model, loaded.src_tokenizer, loaded.tgt_tokenizer, ["Tom chase Jerry"])
    shutil.rmtree(corpus)
    loaded = load_model(result.best)
    out = translate_sentences(loaded.model, loaded.src_tokenizer, loaded.tgt_tokenizer, ["Tom chase Jerry"])
    assert out[0].text == before[0].text and out[0].tokens and out[0].score == before[0].score
    assert out[0].attention.shape == (len(out[0].tokens), len(out[0].source_tokens))


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(path)


def test_truncated_checkpoint_gives_a_clear_error(toy_root: Path, tmp_path: Path) -> None:
    result = train_run(tiny_config(toy_root, epochs=1), tmp_path / "run")
    data = result.best.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model(cut)


def test_empty_checkpoint_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(path)


def test_resume_refuses_a_changed_learning_rate(toy_root: Path, tmp_path: Path) -> None:
    train_run(tiny_config(toy_root, max_steps=3), tmp_path / "run")
    before = (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(CheckpointError, match="another trainer.lr"):
        train_run(tiny_config(toy_root, lr=0.5), tmp_path / "run")
    assert (tmp_path / "run" / "config.yaml").read_text() == before  # still describes last.pt


def test_resume_accepts_a_run_saved_before_newer_options(toy_root: Path, tmp_path: Path) -> None:
    train_run(tiny_config(toy_root, max_steps=2), tmp_path / "run")
    last = tmp_path / "run" / "last.pt"
    ckpt = read_checkpoint(last)
    for option in ("param_init", "input_feeding"):  # absent from checkpoints written before them
        del ckpt["config"]["model"][option]
    del ckpt["config"]["trainer"]["lr_anneal"]
    save_atomic(ckpt, last)
    result = train_run(tiny_config(toy_root, max_steps=4), tmp_path / "run")
    assert result.state.step == 4
    ckpt = read_checkpoint(last)
    ckpt["config"]["model"]["param_init"] = 0.1  # a real difference is still refused
    save_atomic(ckpt, last)
    with pytest.raises(CheckpointError, match="another model"):
        train_run(tiny_config(toy_root, max_steps=6), tmp_path / "run")


def test_checkpoints_are_readable_like_any_file(toy_root: Path, tmp_path: Path) -> None:
    result = train_run(tiny_config(toy_root, max_steps=2), tmp_path / "run")
    umask = os.umask(0)
    os.umask(umask)
    assert result.best.stat().st_mode & 0o777 == 0o666 & ~umask


def test_foreign_checkpoint_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not a seq2seq checkpoint"):
        read_checkpoint(path)


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("code ran",))


def test_checkpoint_holding_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "seq2seq-checkpoint", "version": 1, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refused: the file carries code") as refused:
        read_checkpoint(path)
    assert "weights_only=False" not in str(refused.value)  # no advice to run the code


def test_max_tokens_that_cannot_hold_the_longest_pair_is_refused(toy_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy_root, max_tokens=3)
    with pytest.raises(
        ConfigError, match=r"trainer.max_tokens=3 holds no batch of the longest training pair \((\d+) tokens\)"
    ):
        Trainer(cfg, tmp_path / "run", prepare_data(cfg.data))
    assert not (tmp_path / "run").exists()


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    save_atomic({"a": 1}, path)
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        save_atomic({"a": lambda: 0}, path)  # lambdas cannot be pickled
    assert torch.load(path, weights_only=True) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/corpora beside the checkout")
def test_a_small_model_overfits_50_multi30k_pairs(tmp_path: Path) -> None:
    root = tmp_path / "m30k"
    root.mkdir()
    for lang in ("de", "en"):
        lines = (SHARED / "multi30k" / f"train.{lang}").read_text(encoding="utf-8").splitlines()[:50]
        for split in ("train", "valid"):  # validate on the training pairs: the point is memorising them
            (root / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = OmegaConf.structured(TrainConfig)
    cfg.data = OmegaConf.merge(
        cfg.data,
        {
            "name": "multi30k", "root": str(root), "src_lang": "de", "tgt_lang": "en",
            "tokenizer": {"model_type": "bpe", "src_vocab_size": 400, "tgt_vocab_size": 400, "cache_dir": ""},
        },
    )  # fmt: skip
    cfg.model.embed_size, cfg.model.hidden_size, cfg.model.dropout = 64, 128, 0.0
    cfg.trainer = OmegaConf.merge(
        cfg.trainer,
        {"epochs": 40, "batch_size": 25, "lr": 0.01, "progress": False, "device": "cpu", "threads": 1},
    )
    result = train_run(cfg, tmp_path / "run")  # type: ignore[arg-type]
    assert result.state.best_bleu > 90, result.state.history[-3:]


def test_a_damaged_file_is_not_called_code_and_gets_no_advice_to_load_it_unsafely(tmp_path: Path) -> None:
    path = tmp_path / "damaged.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as refused:
        read_checkpoint(path)
    assert "carries code" not in str(refused.value) and "weights_only" not in str(refused.value)


def test_a_transformer_warms_up_resumes_exactly_and_draws_its_attention_examples(
    toy_root: Path, tmp_path: Path
) -> None:
    def config(**more: object) -> TrainConfig:
        settings = {"lr": 0.005, "lr_schedule": "inverse_sqrt", "warmup_steps": 8, "adam_beta2": 0.98}
        cfg = tiny_config(toy_root, **{**settings, "attention_examples": [0, 3], "threads": 1, **more})
        cfg.model = OmegaConf.merge(
            cfg.model, {"encoder": "self_attention", "decoder": "transformer", "decoder_layers": 2, "dropout": 0.0}
        )
        return cfg

    whole = train_run(config(), tmp_path / "whole")
    # each epoch's last update: steps 10 and 20 of warm-up 8, lr * sqrt(8 / step)
    assert [row["lr"] for row in whole.state.history] == pytest.approx(
        [0.005 * (8 / 10) ** 0.5, 0.005 * (8 / 20) ** 0.5]
    )
    assert all(0.0 <= row["valid_alignment_accuracy"] <= 1.0 for row in whole.state.history)  # toy: gold links
    pictures = sorted(p.name for p in (tmp_path / "whole" / "attention").glob("*.png"))
    assert pictures == ["step00000010-0.png", "step00000010-3.png", "step00000020-0.png", "step00000020-3.png"]
    data = sorted((tmp_path / "whole" / "attention").glob("*.json"))  # beside each picture, its numbers
    assert [p.stem for p in data] == [Path(p).stem for p in pictures]
    example = json.loads(data[-1].read_text(encoding="utf-8"))
    assert (example["step"], example["sentence"]) == (20, 3)
    assert len(example["attention"]) == len(example["tokens"])
    assert all(len(row) == len(example["source_tokens"]) for row in example["attention"])

    train_run(config(max_steps=13), tmp_path / "split")  # stopped in the middle of epoch 2, then run again
    resumed = train_run(config(), tmp_path / "split")
    a, b = read_checkpoint(whole.last)["model"], read_checkpoint(resumed.last)["model"]
    assert resumed.state.step == 20 and all(torch.equal(a[name], b[name]) for name in a)

    with pytest.raises(ConfigError, match=r"trainer.attention_examples=\[10\]: the valid split has 10 sentences"):
        Trainer(config(attention_examples=[10]), tmp_path / "x", prepare_data(config().data, 10))
