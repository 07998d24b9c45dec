"""The toy corpus: deterministic, lengths as promised, and gold links that point at the right words."""

from __future__ import annotations

from pathlib import Path

from seq2seq.data.corpus import load_split
from seq2seq.data.toy import LENGTH_BUCKETS, NAMES, VERBS, generate, lexicon, write_corpus


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    assert generate(50, seed=3) == generate(50, seed=3)
    assert generate(50, seed=3) != generate(50, seed=4)


def test_every_alignment_link_joins_a_word_and_its_translation() -> None:
    lex = lexicon()
    for pair in generate(500, seed=5):
        src, tgt = pair.src.split(), pair.tgt.split()
        for i, j in pair.alignment:
            assert tgt[j] in lex[src[i]], (pair.src, pair.tgt, src[i], tgt[j])


def test_every_content_word_is_aligned() -> None:
    for pair in generate(300, seed=6):
        aligned_src = {i for i, _ in pair.alignment}
        for i, word in enumerate(pair.src.split()):
            if word != "the":  # "the cat" -> 猫: Chinese has no article
                assert i in aligned_src, (pair.src, word)


def test_lengths_cover_every_bucket_evenly() -> None:
    pairs = generate(500, seed=7)
    for lo, hi in LENGTH_BUCKETS:
        n = sum(lo <= len(p.src.split()) <= hi for p in pairs)
        assert n == 100, (lo, hi, n)


def test_the_lecture_note_example_is_in_the_language() -> None:
    # "Tom chase Jerry" -> "汤姆 追逐 杰瑞": name verb name, word for word
    three = [p for p in generate(1000, seed=1, buckets=((3, 3),)) if p.src.split()[1] == "chase"]
    assert three
    for p in three:
        subj, _, obj = p.src.split()
        if subj in NAMES and obj in NAMES:
            assert p.tgt == f"{NAMES[subj]} 追逐 {NAMES[obj]}"
            assert p.alignment == ((0, 0), (1, 1), (2, 2))


def test_place_and_time_move_before_the_verb() -> None:
    # e.g. "Tom chase Jerry in the garden yesterday" -> "汤姆 昨天 在 花园 里 追逐 杰瑞"
    checked = 0
    for p in generate(2000, seed=8, buckets=((5, 15),)):
        src, tgt = p.src.split(), p.tgt.split()
        if "，" in tgt or "which" in src or "in" not in src or src[-1] not in ("yesterday", "today"):
            continue
        verb = VERBS[next(w for w in src if w in VERBS)]
        time = {"yesterday": "昨天", "today": "今天"}[src[-1]]
        assert tgt.index(time) < tgt.index("在") < tgt.index("里") < tgt.index(verb), p
        checked += 1
    assert checked > 10


def test_written_splits_are_disjoint_and_readable(tmp_path: Path) -> None:
    counts = write_corpus(tmp_path, {"train": 200, "valid": 30, "test": 30}, seed=2)
    assert counts == {"train": 200, "valid": 30, "test": 30}
    splits = {s: load_split(tmp_path, s, "en", "zh") for s in counts}
    assert all(c.alignments is not None and len(c.alignments) == len(c) for c in splits.values())
    train = set(splits["train"].src)
    assert not train & set(splits["valid"].src)
    assert not train & set(splits["test"].src)
    assert not set(splits["valid"].src) & set(splits["test"].src)
