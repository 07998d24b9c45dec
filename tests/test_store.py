"""The prepared corpus store: ids read back equal the tokenizers' own encoding, a store is made once
and reused, a stale or damaged one is prepared anew, the lock lets one of several processes
prepare it, the tokenizers' sample is uniform, the streaming reader's errors, weighted corpora."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from seq2seq.config import DataConfig, TrainConfig, check_train
from seq2seq.data.corpus import PairStream, read_parallel
from seq2seq.data.prepare import prepare_data, prepare_store
from seq2seq.data.store import Store, StoreLock, TokenIds, sample_sentences, store_key
from seq2seq.errors import ConfigError, CorpusError
from seq2seq.training import Trainer

EN = "tom jerry mary sees chases likes the cat dog big small red old".split()
ZH = "汤姆 杰瑞 玛丽 看见 追逐 喜欢 这 猫 狗 大 小 红 老".split()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def sentences(seed: int, n: int, words: list[str], low: int = 2, high: int = 8) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, int(rng.integers(low, high + 1)))) for _ in range(n)]


def write_pairs(root: Path, name: str, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    root.mkdir(parents=True, exist_ok=True)
    src, tgt = sentences(seed, n, EN), sentences(seed + 1, n, ZH)
    write_lines(root / f"{name}.en", src)
    write_lines(root / f"{name}.zh", tgt)
    return src, tgt


def data_config(root: Path, store: Path, **settings: Any) -> Any:
    """A checked-looking DataConfig: word pieces, 100-piece vocabularies, no tokenizer cache."""
    tok = {"model_type": "word", "normalization": "identity", "src_vocab_size": 100, "tgt_vocab_size": 100}
    tok |= {"cache_dir": "", **settings.pop("tokenizer", {})}
    given = {"name": "tiny", "root": str(root), "store_dir": str(store), "tokenizer": tok, **settings}
    return OmegaConf.merge(OmegaConf.structured(DataConfig), given)


def assert_encodes(store: Store, src: list[str], tgt: list[str]) -> None:
    """Every pair read back from the store is the store's tokenizers' encoding of its text."""
    src_tok, tgt_tok = store.tokenizers
    assert len(store.src) == len(store.tgt) == len(src) == store.info.pairs
    for i, (s, t) in enumerate(zip(src, tgt, strict=True)):
        assert store.src[i] == src_tok.encode(s), i
        assert store.tgt[i] == tgt_tok.encode(t), i
        assert store.src.lengths[i] == len(src_tok.encode(s)) and store.tgt.lengths[i] == len(tgt_tok.encode(t))
    assert store.info.tokens == (int(store.src.lengths.sum()), int(store.tgt.lengths.sum()))


def folders(store_dir: Path) -> list[str]:
    return sorted(p.name for p in store_dir.iterdir() if p.is_dir())


# ---------------------------------------------------------------- round trip


def test_the_stores_ids_are_the_tokenizers_encoding_of_every_kept_pair(tmp_path: Path) -> None:
    src, tgt = sentences(0, 50, EN), sentences(1, 50, ZH)
    src[9] = " ".join(["tom"] * 20)  # line 10: 20 tokens, over max_len=10
    tgt[19] = ""  # line 20: an empty target
    src[29] = "   "  # line 30: a blank source
    write_lines(tmp_path / "train.en", src)
    write_lines(tmp_path / "train.zh", tgt)
    store = prepare_store(data_config(tmp_path, tmp_path / "store", max_len=10))
    kept = [i for i in range(50) if i not in (9, 19, 29)]
    assert_encodes(store, [src[i] for i in kept], [tgt[i] for i in kept])
    assert store.info.made and store.info.pairs == 47
    assert store.src.flat.dtype == store.tgt.flat.dtype == np.uint16  # 100 pieces fit in 2 bytes
    assert store.src.lengths.dtype == np.uint16
    assert store.corpora == [{"name": "train", "start": 0, "pairs": 47}]
    assert f"{tmp_path / 'train.en'}: left out 2 pairs with an empty side (first: line 20)" in store.notes
    assert "train: kept 47 of 48 pairs: 1 longer than 10 tokens" in store.notes
    on_disk = sum(p.stat().st_size for p in store.info.folder.iterdir())
    assert store.info.bytes == on_disk and (store.info.folder / "src.ids").stat().st_size == 2 * store.info.tokens[0]


def test_a_line_of_more_pieces_than_two_bytes_count_is_left_out_not_a_crash(tmp_path: Path) -> None:
    # 5,000 characters (under the 10,000 limit) that NFKC expands 18-fold: over 65,535 pieces,
    # more than a uint16 length holds (before the fix: OverflowError from numpy, a traceback)
    src, tgt = sentences(0, 20, EN), sentences(1, 20, ZH)
    src[3], src[4] = "\ufdfa" * 5000, "\ufdfa"  # the short one puts its characters in the sample
    write_lines(tmp_path / "train.en", src)
    write_lines(tmp_path / "train.zh", tgt)
    nfkc = {"model_type": "char", "normalization": "nmt_nfkc"}
    store = prepare_store(data_config(tmp_path, tmp_path / "store", tokenizer=nfkc))
    assert len(store.tokenizers[0].encode(src[3])) > 65_535
    assert store.info.pairs == 19
    assert "train: kept 19 of 20 pairs: 1 longer than 65535 tokens" in store.notes
    assert_encodes(store, src[:3] + src[4:], tgt[:3] + tgt[4:])


def test_token_ids_from_lists_round_trip() -> None:
    seqs = [[5, 6, 7], [], [9], [4, 4, 4, 4, 70000]]
    ids = TokenIds.from_lists(seqs)
    assert len(ids) == 4 and [ids[i] for i in range(4)] == seqs
    assert ids.lengths.tolist() == [3, 0, 1, 5] and ids.offsets.tolist() == [0, 3, 3, 4, 9]
    assert len(TokenIds.from_lists([])) == 0


# ---------------------------------------------------------------- reuse, stale, damaged


def test_a_second_opening_reuses_the_store_and_other_settings_make_another(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, tgt = write_pairs(tmp_path, "train", 40)
    store_dir = tmp_path / "store"
    caplog.set_level(logging.INFO, logger="seq2seq")
    first = prepare_store(data_config(tmp_path, store_dir))
    assert first.info.made and "prepared 40 pairs" in caplog.text
    caplog.clear()
    again = prepare_store(data_config(tmp_path, store_dir, valid="dev", name="other"))  # not in the ids: same store
    assert not again.info.made and again.info.folder == first.info.folder
    assert "reused (40 pairs)" in caplog.text and "prepared" not in caplog.text
    assert_encodes(again, src, tgt)
    assert np.array_equal(again.src.flat, first.src.flat) and np.array_equal(again.tgt.flat, first.tgt.flat)
    smaller = prepare_store(data_config(tmp_path, store_dir, tokenizer={"src_vocab_size": 10}))
    capped = prepare_store(data_config(tmp_path, store_dir, max_len=5))
    assert smaller.info.made and capped.info.made
    assert len({first.info.folder, smaller.info.folder, capped.info.folder}) == 3
    assert len(folders(store_dir)) == 3
    assert len(smaller.tokenizers[0]) < len(first.tokenizers[0])


@pytest.mark.parametrize("touch_only", [False, True])
def test_a_changed_corpus_file_makes_the_store_stale_and_it_is_prepared_anew(
    touch_only: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, tgt = write_pairs(tmp_path, "train", 40)
    data = data_config(tmp_path, tmp_path / "store")
    old = prepare_store(data)
    if not touch_only:
        src = sentences(7, 40, EN[::2])  # other sentences, same line count
        write_lines(tmp_path / "train.en", src)
    stat = (tmp_path / "train.en").stat()
    os.utime(tmp_path / "train.en", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    caplog.set_level(logging.INFO, logger="seq2seq")
    new = prepare_store(data)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "stale" in warnings[0] and "train.en changed" in warnings[0]
    assert new.info.made and new.info.folder == old.info.folder
    assert_encodes(new, src, tgt)
    assert not prepare_store(data).info.made  # sound again
    assert folders(tmp_path / "store") == [new.info.folder.name]


def truncate_src_ids(folder: Path) -> None:
    path = folder / "src.ids"
    os.truncate(path, path.stat().st_size - 2)


def flip_a_length(folder: Path) -> None:
    path = folder / "src.len"
    raw = bytearray(path.read_bytes())
    raw[4] ^= 0x01
    path.write_bytes(bytes(raw))


def corrupt_meta(folder: Path) -> None:
    path = folder / "meta.json"
    path.write_text(path.read_text()[:-20])


def remove_a_tokenizer(folder: Path) -> None:
    (folder / "tgt.model").unlink()


@pytest.mark.parametrize("damage", [truncate_src_ids, flip_a_length, corrupt_meta, remove_a_tokenizer])
def test_a_damaged_store_is_never_used_but_prepared_anew(
    damage: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, tgt = write_pairs(tmp_path, "train", 40)
    data = data_config(tmp_path, tmp_path / "store")
    folder = prepare_store(data).info.folder
    damage(folder)
    caplog.set_level(logging.INFO, logger="seq2seq")
    store = prepare_store(data)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0], warnings
    assert store.info.made and store.info.folder == folder
    assert_encodes(store, src, tgt)
    caplog.clear()
    assert not prepare_store(data).info.made and "reused" in caplog.text  # sound again


# ---------------------------------------------------------------- the lock

PREPARE = """
import hashlib, json, logging, sys
from omegaconf import OmegaConf
from seq2seq.data.prepare import prepare_store
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s", force=True)
store = prepare_store(OmegaConf.create(sys.argv[1]))
digest = hashlib.sha256(store.src.flat.tobytes() + store.tgt.flat.tobytes() + store.src.lengths.tobytes())
print(json.dumps({"made": store.info.made, "ids": digest.hexdigest(), "pairs": store.info.pairs}))
"""


def test_two_processes_preparing_one_store_at_once_make_it_once(tmp_path: Path) -> None:
    write_pairs(tmp_path, "train", 300)
    data = data_config(tmp_path, tmp_path / "store")
    folder = tmp_path / "store" / store_key(data, [(tmp_path / "train.en", tmp_path / "train.zh")])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", PREPARE, OmegaConf.to_yaml(data)]
    with StoreLock(folder):  # held here until both processes wait on it: they then race for it
        procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(2)]
        for p in procs:
            assert p.stderr is not None
            while "waiting for another process preparing" not in (line := p.stderr.readline().decode()):
                assert line, "the process ended before it waited for the lock"
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
    results = [json.loads(out) for out, _ in outs]
    assert sorted(r["made"] for r in results) == [False, True]  # one prepared it, the other mapped it
    assert results[0]["ids"] == results[1]["ids"] and results[0]["pairs"] == 300
    reuser = outs[[r["made"] for r in results].index(False)][1].decode()
    assert "reused (300 pairs)" in reuser and "prepared" not in reuser.replace("another process preparing", "")
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name, folder.name + ".lock"]  # no temporaries
    assert_encodes(prepare_store(data), *(read_parallel(tmp_path / "train.en", tmp_path / "train.zh").src,
                                          read_parallel(tmp_path / "train.en", tmp_path / "train.zh").tgt))  # fmt: skip


# ---------------------------------------------------------------- the tokenizers' sample


def test_a_sample_of_a_small_corpus_is_all_of_it_in_file_order(tmp_path: Path) -> None:
    src, tgt = write_pairs(tmp_path, "train", 30)
    stream = PairStream(tmp_path / "train.en", tmp_path / "train.zh")
    assert sample_sentences(stream, 30, seed=1) == (src, tgt)
    assert sample_sentences(stream, 1000, seed=2) == (src, tgt)


def test_a_sample_of_a_large_corpus_is_seeded_and_uniform(tmp_path: Path) -> None:
    n, size = 10_000, 1_000
    write_lines(tmp_path / "big.en", [f"s{i}" for i in range(n)])
    write_lines(tmp_path / "big.zh", [f"t{i}" for i in range(n)])
    stream = PairStream(tmp_path / "big.en", tmp_path / "big.zh")
    src, tgt = sample_sentences(stream, size, seed=3)
    index = np.array([int(s[1:]) for s in src])
    assert len(src) == len(tgt) == size and len(set(index.tolist())) == size  # without replacement
    assert [f"t{i}" for i in index] == tgt  # the sides stay paired
    assert index.min() >= 0 and index.max() < n
    assert sample_sentences(stream, size, seed=3) == (src, tgt)
    assert sample_sentences(stream, size, seed=4) != (src, tgt)
    # Uniform without replacement: the mean index has mean 4,999.5 and standard deviation
    # sqrt((n^2 - 1) / 12 / size * (n - size) / (n - 1)) = 86.6; 450 is over five of them. A
    # reservoir that kept its first fill would put 1,000 indices below 1,000, uniform ~100 (sd 9.5).
    assert abs(index.mean() - (n - 1) / 2) < 450
    assert 50 < int((index < size).sum()) < 150
    assert 425 < int((index < n // 2).sum()) < 575  # binomial-like, sd 15
    assert index.tolist() != sorted(index.tolist())  # shuffled: SentencePiece reads no file order


# ---------------------------------------------------------------- the streaming reader's errors

BAD_CORPORA = [
    (b"one\ntwo\nthree\n", b"1\n2\n", r"train\.en has 3 lines but .*train\.zh has 2: the files must be aligned"),
    (b"one\ntwo\n", b"1\n2\n3\n4\n", r"train\.en has 2 lines but .*train\.zh has 4"),
    (b"fine\nalso fine\nbad \xff byte\n", b"1\n2\n3\n", r"train\.en:3: invalid UTF-8 \(byte 0xff\)"),
    (b"one\nhalf\rhalf\nthree\n", b"1\n2\n3\n", r"train\.en:2: a carriage return \(CR\) inside the line"),
    (b"one\ntwo\n", b"1\nbad\x00byte\n", r"train\.zh:2: a NUL byte inside the line"),
    (b"one\n" + b"x" * 1_000_000, b"1\n2\n", r"train\.en:2: line has over 40,003 characters \(limit 10,000\)"),
    (b"one\n" + b"x" * 20_000 + b"\n", b"1\n2\n", r"train\.en:2: line has 20,000 characters \(limit 10,000\)"),
]


@pytest.mark.parametrize(("src", "tgt", "message"), BAD_CORPORA)
def test_the_streaming_reader_and_prepare_give_read_parallels_one_line_errors(
    src: bytes, tgt: bytes, message: str, tmp_path: Path
) -> None:
    (tmp_path / "train.en").write_bytes(src)
    (tmp_path / "train.zh").write_bytes(tgt)
    with pytest.raises(CorpusError, match=message) as streamed:
        list(PairStream(tmp_path / "train.en", tmp_path / "train.zh", drop_empty=True))
    with pytest.raises(CorpusError) as read:
        read_parallel(tmp_path / "train.en", tmp_path / "train.zh")
    assert str(streamed.value) == str(read.value) and "\n" not in str(read.value)
    with pytest.raises(CorpusError, match=message):
        prepare_store(data_config(tmp_path, tmp_path / "store"))
    assert folders(tmp_path / "store") == []  # nothing half made is left


def test_an_empty_line_is_an_error_without_drop_empty_and_left_out_by_prepare(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.en", ["one", "", "three"])
    write_lines(tmp_path / "train.zh", ["1", "2", "3"])
    with pytest.raises(CorpusError, match=r"train\.en:2: empty line \(every line must hold a sentence\)"):
        list(PairStream(tmp_path / "train.en", tmp_path / "train.zh"))
    store = prepare_store(data_config(tmp_path, tmp_path / "store"))
    assert store.info.pairs == 2
    assert any("left out 1 pairs with an empty side (first: line 2)" in n for n in store.notes)


# ---------------------------------------------------------------- weighted corpora


def weighted(root: Path, store: Path, **settings: Any) -> Any:
    write_pairs(root, "a", 60, seed=0)
    write_pairs(root, "b", 30, seed=10)
    write_pairs(root, "valid", 8, seed=20)
    return data_config(root, store, train=["a", "b"], train_weights=[1, 3], **settings)


def test_weighted_corpora_keep_their_ranges_and_an_epoch_draws_them_one_to_three(tmp_path: Path) -> None:
    data = weighted(tmp_path, tmp_path / "store")
    store = prepare_store(data)
    assert store.corpora == [{"name": "a", "start": 0, "pairs": 60}, {"name": "b", "start": 60, "pairs": 30}]
    for name, (start, end) in (("a", (0, 60)), ("b", (60, 90))):
        corpus = read_parallel(tmp_path / f"{name}.en", tmp_path / f"{name}.zh")
        assert [store.src[i] for i in range(start, end)] == [store.tokenizers[0].encode(s) for s in corpus.src]
    prepared = prepare_data(data)
    assert prepared.corpora == [60, 30] and prepared.weights == [1.0, 3.0]
    cfg = OmegaConf.structured(TrainConfig)
    cfg.data = data
    cfg.model.embed_size, cfg.model.hidden_size = 8, 16
    cfg.trainer.batch_size, cfg.trainer.progress, cfg.trainer.threads = 8, False, 1
    trainer = Trainer(cfg, tmp_path / "run", prepared)
    batches = trainer.epoch_batches(0)
    drawn = np.concatenate(batches)
    # 90 pairs an epoch: a gives 90 / 4 = 22.5 (22, and the one rounding leaves), b 67.5 -> 67:
    # every pair of b twice and 7 a third time, 23 of a's 60 once each
    assert len(drawn) == 90 and int((drawn < 60).sum()) == 23 and int((drawn >= 60).sum()) == 67
    assert len(set(drawn[drawn < 60].tolist())) == 23
    assert sorted(np.bincount(drawn[drawn >= 60] - 60, minlength=30).tolist()) == [2] * 23 + [3] * 7
    again = Trainer(cfg, tmp_path / "run", prepare_data(data))  # what a resumed run builds
    for epoch in (0, 1):
        assert [b.tolist() for b in again.epoch_batches(epoch)] == [b.tolist() for b in trainer.epoch_batches(epoch)]
    assert [b.tolist() for b in trainer.epoch_batches(1)] != [b.tolist() for b in batches]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"train_weights": [1]}, r"data\.train_weights=\[1\.0\] gives 1 weights for 2 training corpora \(a, b\)"),
        ({"train_weights": [1, 0]}, r"data\.train_weights=\[1\.0, 0\.0\]: every weight must be a finite number > 0"),
        ({"train_weights": [1, -2]}, r"every weight must be a finite number > 0"),
        ({"train": ["a", "a"], "train_weights": []}, r"data\.train=\['a', 'a'\] names a corpus twice"),
        ({"train": ["a", "x/b"], "train_weights": []}, r"give a split name \(train\) or a list of them"),
    ],
)
def test_bad_weighted_corpora_settings_are_one_clear_config_error(settings: dict, message: str, tmp_path: Path) -> None:
    cfg = OmegaConf.structured(TrainConfig)
    cfg.data = OmegaConf.merge(weighted(tmp_path, tmp_path / "store"), settings)
    with pytest.raises(ConfigError, match=message):
        check_train(cfg)
    assert not (tmp_path / "store").exists()  # refused before anything is read or written


# ---------------------------------------------------------------- what a review found


def test_a_missing_corpus_file_is_an_error_and_the_store_is_kept(tmp_path: Path) -> None:
    write_pairs(tmp_path / "c", "train", 30)
    data = data_config(tmp_path / "c", tmp_path / "s")
    folder = prepare_store(data).info.folder
    (tmp_path / "c" / "train.en").rename(tmp_path / "c" / "moved.en")  # an unmounted disk, say
    with pytest.raises(CorpusError, match=r"train\.en: file not found \(the corpus store .* was prepared from it\)"):
        prepare_store(data)
    assert folder.is_dir()  # hours of preparing are not thrown away
    (tmp_path / "c" / "moved.en").rename(tmp_path / "c" / "train.en")
    assert not prepare_store(data).info.made


def test_a_failed_preparation_leaves_no_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seq2seq.data.store as store

    write_pairs(tmp_path / "c", "train", 30)

    def full_disk(*args: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "append", full_disk)
    with pytest.raises(OSError, match="No space left"):
        prepare_store(data_config(tmp_path / "c", tmp_path / "s"))
    assert [p.name for p in (tmp_path / "s").iterdir() if p.is_dir()] == []


def test_a_corpus_with_no_pair_under_max_len_is_one_clear_error(tmp_path: Path) -> None:
    write_pairs(tmp_path / "c", "train", 30)
    write_lines(tmp_path / "c" / "long.en", [" ".join(["tom"] * 12)] * 5)
    write_lines(tmp_path / "c" / "long.zh", [" ".join(["汤姆"] * 12)] * 5)
    data = data_config(tmp_path / "c", tmp_path / "s", train=["train", "long"], max_len=10)
    with pytest.raises(CorpusError, match="long: none of its 5 pairs has at most 10 tokens a side"):
        prepare_store(data)


@pytest.mark.parametrize(("override", "message"), [("seed", "seed=-1 must be >= 0"), ("inf", "finite number > 0")])
def test_a_negative_seed_and_an_infinite_weight_are_config_errors(override: str, message: str, tmp_path: Path) -> None:
    cfg = OmegaConf.structured(TrainConfig)
    cfg.data = data_config(tmp_path, tmp_path / "s", train=["a", "b"])
    if override == "seed":
        cfg.seed = -1
    else:
        cfg.data.train_weights = [1.0, float("inf")]
    with pytest.raises(ConfigError, match=message):
        check_train(cfg)


def test_the_toy_corpus_is_not_written_under_a_list_of_training_corpora(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = data_config(Path("data/toy"), tmp_path / "s", train=["train", "extra"])
    data.name = "toy"
    with pytest.raises(CorpusError, match=r"train\.en: file not found"):
        prepare_store(data)
    assert not Path("data/toy").exists() or not any(Path("data/toy").iterdir())
