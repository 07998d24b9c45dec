"""Subword regularisation (data.tokenizer.sampling_alpha): sampled segmentations of the stored pairs,
the same for the same seed, epoch and chunk, the same text, within the limit; an epoch's written to
mapped files and batched by their own lengths; training with it resumes exactly, and the checks
refuse what cannot sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from seq2seq.checkpoint import read_checkpoint
from seq2seq.config import check_train
from seq2seq.data.batching import bucket_batches
from seq2seq.data.corpus import load_split
from seq2seq.data.sampling import Resegmenter, resegmenter, sample_epoch
from seq2seq.data.store import TokenIds
from seq2seq.errors import ConfigError
from seq2seq.tokenizer import Tokenizer
from seq2seq.training import SAMPLED, train_run
from tests.test_training import tiny_config


@pytest.fixture(scope="module")
def texts(toy_root: Path) -> list[str]:
    return load_split(toy_root, "train", "en", "zh").src[:64]


def tokenizer(texts: list[str], model_type: str = "unigram") -> Tokenizer:
    return Tokenizer.train(texts, 60, model_type, "identity")


def sampling_config(root: Path, alpha: float = 0.3, **trainer: object):  # noqa: ANN201
    cfg = tiny_config(root, **trainer)
    cfg.data.tokenizer = OmegaConf.merge(
        cfg.data.tokenizer,
        {"model_type": "unigram", "src_vocab_size": 60, "tgt_vocab_size": 200, "sampling_alpha": alpha},
    )
    return cfg


def test_a_sampled_batch_spells_the_same_text_and_repeats_with_its_key(texts: list[str]) -> None:
    tok = tokenizer(texts)
    stored = [tok.encode(t) for t in texts]
    resegment = Resegmenter((tok, tok), 0.1, -1, 1000, seed=1)
    src, tgt = resegment(stored, stored, (0, 0))
    assert [tok.decode(r) for r in src] == [tok.decode(r) for r in stored]  # other pieces, the same text
    assert [tok.decode(r) for r in tgt] == [tok.decode(r) for r in stored]
    assert sum(a != b for a, b in zip(src, stored, strict=True)) > len(texts) // 4  # most are segmented anew
    assert src != tgt  # each side draws with its own seed
    assert resegment(stored, stored, (0, 0)) == (src, tgt)  # the same epoch and batch: the same ids
    assert resegment(stored, stored, (1, 0))[0] != src  # the next epoch: others
    assert resegment(stored, stored, (0, 1))[0] != src  # the next batch: others
    assert Resegmenter((tok, tok), 0.1, -1, 1000, seed=2)(stored, stored, (0, 0))[0] != src  # another seed
    assert sum(map(len, src)) > sum(map(len, stored))  # sampled pieces are shorter: more of them


def test_one_side_may_keep_its_stored_segmentation(texts: list[str]) -> None:
    tok = tokenizer(texts)
    stored = [tok.encode(t) for t in texts]
    both = Resegmenter((tok, tok), 0.1, -1, 1000, seed=1)(stored, stored, (0, 0))
    src_only = Resegmenter((tok, tok), 0.1, -1, 1000, seed=1, sides=(True, False))(stored, stored, (0, 0))
    tgt_only = Resegmenter((tok, tok), 0.1, -1, 1000, seed=1, sides=(False, True))(stored, stored, (0, 0))
    assert src_only == (both[0], stored) and tgt_only == (stored, both[1])


def test_bpe_dropout_segments_anew_and_a_sampled_side_over_the_limit_keeps_its_stored_ids(texts: list[str]) -> None:
    tok = tokenizer(texts, "bpe")
    stored = [tok.encode(t) for t in texts]
    free, _ = Resegmenter((tok, tok), 0.5, -1, 1000, seed=1)(stored, stored, (0, 0))
    assert [tok.decode(r) for r in free] == [tok.decode(r) for r in stored]
    assert sum(a != b for a, b in zip(free, stored, strict=True)) > len(texts) // 4
    limit = max(map(len, stored))
    capped, _ = Resegmenter((tok, tok), 0.5, -1, limit, seed=1)(stored, stored, (0, 0))
    for new, sampled, old in zip(capped, free, stored, strict=True):
        assert new == (sampled if len(sampled) <= limit else old)
    assert any(len(s) > limit for s in free)  # the cap was put to the test


def test_an_epoch_is_sampled_into_mapped_files_chunk_by_chunk(
    texts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("seq2seq.data.sampling.CHUNK", 24)  # 64 pairs: chunks of 24, 24 and 16
    tok = tokenizer(texts)
    stored = [tok.encode(t) for t in texts]
    ids = (TokenIds.from_lists(stored), TokenIds.from_lists(stored[::-1]))
    resegment = Resegmenter((tok, tok), 0.1, -1, 1000, seed=1)
    src, tgt = sample_epoch(ids, resegment, 3, tmp_path / "sampled")
    assert isinstance(src.flat, np.memmap) and src.flat.dtype == np.uint16  # on disk, as the store's ids
    expected = ([], [])
    for k, start in enumerate(range(0, 64, 24)):
        chunk = resegment(stored[start : start + 24], stored[::-1][start : start + 24], (3, k))
        expected[0].extend(chunk[0])
        expected[1].extend(chunk[1])
    assert [src[i] for i in range(64)] == expected[0] and [tgt[i] for i in range(64)] == expected[1]
    assert list(src.lengths) == [len(r) for r in expected[0]]
    again = sample_epoch(ids, resegment, 3, tmp_path / "sampled")  # the folder is replaced
    assert [again[0][i] for i in range(64)] == expected[0]
    # batches cut from the sampled lengths hold little padding, as those of the stored ones do
    batches = bucket_batches(src.lengths, 100, 120, np.random.default_rng(0), tgt.lengths)
    cells = sum(len(b) * max(max(src.lengths[b]), max(tgt.lengths[b])) for b in batches)
    real = sum(max(src.lengths[i], tgt.lengths[i]) for b in batches for i in b)
    assert real / cells > 0.85


def test_the_checks_refuse_what_cannot_sample(toy_root: Path) -> None:
    with pytest.raises(ConfigError, match="model_type=word: a word model has one segmentation"):
        check_train(OmegaConf.merge(tiny_config(toy_root), {"data": {"tokenizer": {"sampling_alpha": 0.1}}}))
    cases = {
        "must be >= 0": {"sampling_alpha": -0.1},
        "give n >= 1": {"sampling_nbest_size": 0},
        "BPE-dropout's rate": {"model_type": "bpe", "sampling_alpha": 1.0},
        "choose one of both, src, tgt": {"sampling_side": "source"},
    }
    for message, tok in cases.items():
        with pytest.raises(ConfigError, match=message):
            check_train(OmegaConf.merge(sampling_config(toy_root), {"data": {"tokenizer": tok}}))
    guided = OmegaConf.merge(sampling_config(toy_root), {"trainer": {"guided_alignment": 1.0}})
    with pytest.raises(ConfigError, match="gold links are stored on the best segmentation"):
        check_train(guided)
    assert resegmenter(check_train(tiny_config(toy_root)), (None, None)) is None  # type: ignore[arg-type]


def test_a_transformers_sampled_sides_stay_within_its_positions(toy_root: Path) -> None:
    cfg = sampling_config(toy_root)
    cfg.model.decoder, cfg.model.self_attention.max_positions, cfg.data.max_len = "transformer", 40, 100
    assert resegmenter(check_train(cfg), (None, None)).limit == 39  # type: ignore[arg-type,union-attr]


def test_training_with_sampled_segmentations_resumes_exactly_and_differs_from_the_stored_ones(
    toy_root: Path, tmp_path: Path
) -> None:
    whole = train_run(sampling_config(toy_root), tmp_path / "whole")
    train_run(sampling_config(toy_root, max_steps=13), tmp_path / "split")  # "killed" mid-epoch 2
    resumed = train_run(sampling_config(toy_root), tmp_path / "split")
    plain = train_run(sampling_config(toy_root, alpha=0.0), tmp_path / "plain")
    a, b, c = (read_checkpoint(r.last)["model"] for r in (whole, resumed, plain))
    assert resumed.state.step == whole.state.step == plain.state.step
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert any(not torch.equal(a[name], c[name]) for name in a)
    assert not (tmp_path / "whole" / SAMPLED).exists()  # the last epoch's segmentations are removed
    rows = [line.split(",") for line in (tmp_path / "whole" / "metrics.csv").read_text().splitlines()[1:]]
    plain_rows = [line.split(",") for line in (tmp_path / "plain" / "metrics.csv").read_text().splitlines()[1:]]
    assert float(rows[0][2]) != float(plain_rows[0][2])  # the loss of other segmentations
