from __future__ import annotations

from pathlib import Path

import pytest

from seq2seq.data.toy import generate
from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer


@pytest.fixture(scope="module")
def pairs() -> list:
    return generate(300, seed=11)


def test_word_tokenizer_round_trip_and_one_token_per_word(pairs: list) -> None:
    tok = Tokenizer.train([p.tgt for p in pairs], 1000, "word", "identity")
    for p in pairs[:50]:
        ids = tok.encode(p.tgt)
        assert len(ids) == len(p.tgt.split())
        assert tok.decode(ids) == p.tgt  # the full-width comma survives with "identity"


def test_unigram_round_trip(pairs: list) -> None:
    tok = Tokenizer.train([p.src for p in pairs], 60, "unigram")
    for p in pairs[:50]:
        assert tok.decode(tok.encode(p.src)) == p.src


def test_special_ids_and_serialisation(pairs: list) -> None:
    tok = Tokenizer.train([p.src for p in pairs], 1000, "word", "identity")
    assert (tok.sp.pad_id(), tok.sp.unk_id(), tok.sp.bos_id(), tok.sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    again = Tokenizer(tok.model_proto)
    assert again.encode("Tom chase Jerry") == tok.encode("Tom chase Jerry")
    assert tok.decode([BOS_ID, *tok.encode("Tom chase Jerry"), EOS_ID, PAD_ID]) == "Tom chase Jerry"


def test_unknown_words_map_to_unk(pairs: list) -> None:
    tok = Tokenizer.train([p.src for p in pairs], 1000, "word", "identity")
    assert tok.encode("Tom zebra") == [tok.encode("Tom")[0], UNK_ID]


def test_same_data_same_tokenizer(pairs: list) -> None:
    a = Tokenizer.train([p.src for p in pairs], 80, "unigram")
    b = Tokenizer.train([p.src for p in pairs], 80, "unigram")
    assert a.model_proto == b.model_proto


def test_bad_model_type() -> None:
    with pytest.raises(ValueError, match="unigram"):
        Tokenizer.train(["a b"], 10, "wordpiece")


def test_cache_hit_and_miss(pairs: list, tmp_path: Path) -> None:
    sents = [p.src for p in pairs]
    first, hit1 = Tokenizer.train_cached(sents, 60, "unigram", "nmt_nfkc", tmp_path)
    again, hit2 = Tokenizer.train_cached(sents, 60, "unigram", "nmt_nfkc", tmp_path)
    other, hit3 = Tokenizer.train_cached(sents, 70, "unigram", "nmt_nfkc", tmp_path)
    changed, hit4 = Tokenizer.train_cached(sents[:-1], 60, "unigram", "nmt_nfkc", tmp_path)
    assert (hit1, hit2, hit3, hit4) == (False, True, False, False)
    assert again.model_proto == first.model_proto
    assert len(list(tmp_path.glob("*.model"))) == 3


def test_damaged_cache_entry_is_retrained(pairs: list, tmp_path: Path) -> None:
    sents = [p.src for p in pairs]
    Tokenizer.train_cached(sents, 60, "unigram", "nmt_nfkc", tmp_path)
    (entry,) = tmp_path.glob("*.model")
    entry.write_bytes(b"garbage")
    tok, hit = Tokenizer.train_cached(sents, 60, "unigram", "nmt_nfkc", tmp_path)
    assert not hit and tok.decode(tok.encode("Tom chase Jerry")) == "Tom chase Jerry"
