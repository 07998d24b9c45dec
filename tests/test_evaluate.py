"""Metrics: BLEU by length, piece-to-word mapping, alignment accuracy on hand-made weights, and
the paired bootstrap against sacreBLEU's own command."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq.errors import ConfigError
from seq2seq.evaluation import (
    alignment_accuracy,
    bleu_by_length,
    bleu_tokenizer,
    corpus_scores,
    length_buckets,
    paired_bootstrap,
)
from seq2seq.tokenizer import word_index

WORDS = "the a cat dog sat ran on under mat house big small red blue saw ate fish bird tree".split()


def test_bleu_tokenizer_choice() -> None:
    assert bleu_tokenizer("auto", "zh") == "zh"
    assert bleu_tokenizer("auto", "en") == "13a"
    assert bleu_tokenizer("intl", "zh") == "intl"


def test_corpus_scores_perfect_and_signature() -> None:
    refs = ["汤姆 追逐 杰瑞", "玛丽 看见 汤姆"]
    scores = corpus_scores(refs, refs, "zh")
    assert scores["bleu"] == 100.0 and scores["chrf"] == 100.0
    assert "tok:zh" in scores["bleu_signature"]


def test_bleu_by_length_buckets() -> None:
    srcs = ["a b c", "a b c d e f g h i j k l"]
    refs = ["x y z w", "p q r s t u"]
    hyps = ["x y z w", "nothing alike here at all"]
    rows = bleu_by_length(srcs, hyps, refs, "13a", buckets=((1, 10), (11, 20), (21, 30)))
    assert rows == [
        {"bucket": "1-10", "sentences": 1, "bleu": 100.0},
        {"bucket": "11-20", "sentences": 1, "bleu": 0.0},
    ]


def test_word_index_groups_pieces() -> None:
    assert word_index(["▁Tom", "▁ch", "ase", "▁Jerry", "</s>"]) == [0, 1, 1, 2, 2]


def test_alignment_accuracy_by_hand() -> None:
    # source words: Tom chase Jerry (+EOS column); target words: 汤姆 追逐 杰瑞
    weights = torch.tensor(
        [
            [0.8, 0.1, 0.1],  # 汤姆 -> Tom      (gold 0): hit
            [0.1, 0.2, 0.7],  # 追逐 -> Jerry    (gold 1): miss
            [0.0, 0.1, 0.9],  # 杰瑞 -> Jerry    (gold 2): hit
        ]
    )
    acc = alignment_accuracy(
        [weights], [["▁Tom", "▁chase", "▁Jerry"]], [["▁汤姆", "▁追逐", "▁杰瑞"]], [[(0, 0), (1, 1), (2, 2)]]
    )
    assert abs(acc - 2 / 3) < 1e-9


def test_alignment_accuracy_sums_pieces_of_a_source_word() -> None:
    # "chase" is two pieces with 0.3 + 0.3 = 0.6 > 0.4 on "Tom"
    weights = torch.tensor([[0.4, 0.3, 0.3]])
    acc = alignment_accuracy([weights], [["▁Tom", "▁ch", "ase"]], [["▁追逐"]], [[(1, 0)]])
    assert acc == 1.0


def test_unaligned_target_words_are_not_counted() -> None:
    weights = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    acc = alignment_accuracy([weights], [["▁a", "▁b"]], [["▁x", "▁，"]], [[(0, 0)]])
    assert acc == 1.0


def test_length_buckets_from_upper_bounds() -> None:
    assert length_buckets([10, 15, 20]) == ((1, 10), (11, 15), (16, 20), (21, 10_000))
    for bad in ([], [10, 5], [0, 10], [10, 10]):
        with pytest.raises(ConfigError, match="data.length_buckets"):
            length_buckets(bad)


def test_heatmap_example_is_long_but_readable() -> None:
    from seq2seq.report import pick_example

    toy = ["a " * 5, "a " * 40, "a " * 20, "a " * 25]
    assert pick_example(toy) == 2  # the first of 18-28 words
    short = ["a " * n for n in (3, 4, 5, 9, 4, 3, 6, 5, 4, 3)]
    assert pick_example(short) == 3  # none of 18+ words: the longest tenth
    assert pick_example(["a " * 60, "a " * 35]) == 1  # all too long: the closest to 28


def test_paired_bootstrap_equals_the_sacrebleu_command(tmp_path: Path) -> None:
    rng = random.Random(0)
    refs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(120)]

    def noisy(keep: float) -> list[str]:
        return [" ".join(w for w in r.split() if rng.random() < keep) or "x" for r in refs]

    systems = {"base": noisy(0.7), "better": noisy(0.9), "same": noisy(0.7)}
    for name, lines in [("refs", refs), *systems.items()]:
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ours = paired_bootstrap(systems, refs, "13a")
    command = [str(Path(sys.executable).parent / "sacrebleu"), str(tmp_path / "refs.txt"), "-i"]
    command += [str(tmp_path / f"{name}.txt") for name in systems]
    command += ["-m", "bleu", "-tok", "13a", "--paired-bs", "--paired-bs-n", "1000", "-f", "json"]
    theirs = json.loads(subprocess.run(command, capture_output=True, check=True, timeout=120).stdout)
    assert ours["baseline_mean"] == pytest.approx(theirs[0]["BLEU"]["mean"], abs=0.005)
    assert ours["baseline_ci"] == pytest.approx(theirs[0]["BLEU"]["ci"], abs=0.005)
    for name, row in zip(["better", "same"], theirs[1:], strict=True):
        mine = ours["systems"][name]
        assert mine["p_value"] == pytest.approx(row["BLEU"]["p_value"], abs=5e-5)
        assert mine["mean"] == pytest.approx(row["BLEU"]["mean"], abs=0.005)
        assert mine["ci"] == pytest.approx(row["BLEU"]["ci"], abs=0.005)
        assert mine["delta_bleu"] == pytest.approx(row["BLEU"]["score"] - theirs[0]["BLEU"]["score"], abs=0.005)
    better, same = ours["systems"]["better"], ours["systems"]["same"]
    assert better["p_value"] < 0.01 and better["ci95"][0] > 0  # clearly better: the interval leaves out 0
    assert same["p_value"] > 0.05 and same["ci95"][0] < 0 < same["ci95"][1]  # alike: it holds 0
    assert paired_bootstrap({"alone": refs}, refs, "13a") == {}
