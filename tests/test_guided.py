"""Guided alignment: word links to piece links, the gold attention of a batch, the loss by hand,
links in the corpus store, and training that learns to look where the gold links say."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from test_training import tiny_config

from seq2seq.config import TrainConfig, check_train
from seq2seq.data.batching import collate
from seq2seq.data.links import gold_weights, piece_links
from seq2seq.data.prepare import prepare_data
from seq2seq.errors import ConfigError, CorpusError
from seq2seq.loss import alignment_loss, batch_loss
from seq2seq.tokenizer import word_index
from seq2seq.training import train_run

SRC = ["▁Tom", "▁ch", "ase", "▁Jerry"]  # words 0, 1 (two pieces), 2
TGT = ["▁汤姆", "▁追", "逐", "▁杰瑞"]  # words 0, 1 (two pieces), 2


def test_word_links_become_every_pair_of_their_pieces() -> None:
    flat = piece_links(SRC, TGT, [(0, 0), (1, 1), (2, 2), (2, 2)], "x.align:1")
    pairs = sorted(zip(flat[::2], flat[1::2], strict=True))
    assert pairs == [(0, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 3)]
    with pytest.raises(CorpusError, match=r"x.align:1: link 3-0 is outside the sentence pair \(3 x 3 words\)"):
        piece_links(SRC, TGT, [(3, 0)], "x.align:1")
    assert word_index(SRC) == [0, 1, 1, 2]


def test_gold_rows_are_uniform_over_linked_source_pieces_and_empty_elsewhere() -> None:
    flat = piece_links(SRC, TGT, [(0, 0), (1, 1)], "")  # 杰瑞 has no link
    gold = gold_weights([flat], src_len=5, tgt_len=5)  # 4 pieces + EOS on each side
    expected = torch.zeros(1, 5, 5)
    expected[0, 0, 0] = 1.0
    expected[0, 1, 1:3] = expected[0, 2, 1:3] = 0.5
    assert torch.equal(gold, expected)  # rows 3 (杰瑞, no link) and 4 (EOS) are zero


def test_alignment_loss_by_hand_and_its_gradient_reaches_the_attention() -> None:
    weights = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]])
    gold = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]])
    expected = -(torch.log(torch.tensor(0.5)) + 0.5 * torch.log(torch.tensor(0.8)) + 0.5 * torch.log(torch.tensor(0.1)))
    assert alignment_loss(weights, gold).item() == pytest.approx(expected.item(), rel=1e-6)
    assert alignment_loss(torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[1.0, 0.0]]])).item() == pytest.approx(
        -torch.log(torch.tensor(1e-9)).item(), rel=1e-5
    )  # an exact zero (sparsemax) on a gold link is clamped, not infinite


def test_the_guided_term_is_the_loss_difference_and_trains_the_score(toy_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy_root)
    cfg.data.store_dir = str(tmp_path / "store")
    data = prepare_data(cfg.data, links=True)
    assert prepare_data(cfg.data).links is None  # only guided training reads the links
    assert data.links is not None and len(data.links) == len(data.src_ids)
    from seq2seq.models.seq2seq import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model, len(data.src_tokenizer), len(data.tgt_tokenizer)).eval()
    index = list(range(8))
    batch = collate([data.src_ids[i] for i in index], [data.tgt_ids[i] for i in index], [data.links[i] for i in index])
    plain, guided = batch_loss(model, batch), batch_loss(model, batch, guided=0.5)
    _, weights = model(batch.src, batch.src_mask, batch.tgt_in)
    assert (guided - plain).item() == pytest.approx(0.5 * alignment_loss(weights, batch.gold).item(), rel=1e-5)
    model.zero_grad()
    alignment_loss(model(batch.src, batch.src_mask, batch.tgt_in)[1], batch.gold).backward()
    score = [p for n, p in model.named_parameters() if "attention" in n]
    assert score and all(p.grad is not None and p.grad.abs().sum() > 0 for p in score)


def test_the_store_holds_each_pairs_piece_links(toy_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy_root)
    cfg.data.store_dir = str(tmp_path / "store")
    data = prepare_data(cfg.data, links=True)
    gold = (toy_root / "train.align").read_text(encoding="utf-8").splitlines()
    from seq2seq.data.corpus import parse_links

    for i in (0, 5, len(data.src_ids) - 1):  # the toy keeps every pair, in file order
        src = data.src_tokenizer.id_to_piece(data.src_ids[i])
        tgt = data.tgt_tokenizer.id_to_piece(data.tgt_ids[i])
        assert data.links[i] == piece_links(src, tgt, parse_links(gold[i], ""), "")  # type: ignore[index]


def corpus_copy(toy_root: Path, to: Path) -> Path:
    shutil.copytree(toy_root, to)
    return to


def test_a_bad_alignment_file_is_a_clear_error(toy_root: Path, tmp_path: Path) -> None:
    root = corpus_copy(toy_root, tmp_path / "toy")
    lines = (root / "train.align").read_text(encoding="utf-8").splitlines()
    cfg = tiny_config(root)
    cfg.data.store_dir = str(tmp_path / "store")
    (root / "train.align").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"train.align has 299 lines but .*train.en has more"):
        prepare_data(cfg.data, links=True)
    (root / "train.align").write_text("\n".join(lines + ["0-0"]) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"train.align has 301 lines but .*train.en has 300"):
        prepare_data(cfg.data, links=True)
    (root / "train.align").write_text("\n".join(["0-x", *lines[1:]]) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"train.align:1: '0-x' is not an i-j alignment link"):
        prepare_data(cfg.data, links=True)
    assert prepare_data(cfg.data).links is None  # without guidance the file is not read
    (root / "train.align").unlink()
    with pytest.raises(CorpusError, match=r"guided_alignment needs gold links: .*train.align: file not found"):
        train_run(tiny_config(root, guided_alignment=1.0), tmp_path / "run")


def test_links_follow_their_lines_past_a_left_out_empty_pair(toy_root: Path, tmp_path: Path) -> None:
    root = corpus_copy(toy_root, tmp_path / "toy")
    for name in ("train.en", "train.zh"):
        lines = (root / name).read_text(encoding="utf-8").splitlines()
        (root / name).write_text("\n".join(["", *lines[1:]]) + "\n", encoding="utf-8")  # pair 1 left out
    cfg = tiny_config(root)
    cfg.data.store_dir = str(tmp_path / "store")
    data = prepare_data(cfg.data, links=True)
    gold = (root / "train.align").read_text(encoding="utf-8").splitlines()
    from seq2seq.data.corpus import parse_links

    assert len(data.src_ids) == 299
    src, tgt = (
        tok.id_to_piece(ids[0]) for tok, ids in ((data.src_tokenizer, data.src_ids), (data.tgt_tokenizer, data.tgt_ids))
    )
    assert data.links[0] == piece_links(src, tgt, parse_links(gold[1], ""), "")  # type: ignore[index]


def test_an_unknown_word_keeps_its_place_in_the_word_numbering(toy_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy_root)
    cfg.data.store_dir = str(tmp_path / "store")
    src_tok = prepare_data(cfg.data).src_tokenizer
    pieces = src_tok.pieces("Tom zebraxyz Jerry")  # a word model: the unknown word is one piece, with its ▁
    assert word_index(pieces) == [0, 1, 2]
    assert word_index(src_tok.id_to_piece(src_tok.encode_batch(["Tom zebraxyz Jerry"])[0])) == [0, 0, 1]  # why not ids


def test_guided_alignment_is_refused_for_a_fixed_context_and_a_negative_weight() -> None:
    cfg = tiny_config(Path("toy"), guided_alignment=1.0)
    cfg.model.decoder = "cho"
    with pytest.raises(ConfigError, match="model.decoder=cho has none"):
        check_train(cfg)
    with pytest.raises(ConfigError, match=r"guided_alignment=-1.0 must be a weight >= 0"):
        check_train(tiny_config(Path("toy"), guided_alignment=-1.0))
    sparse = tiny_config(Path("toy"), guided_alignment=1.0)
    sparse.model.attention.normalizer = "sparsemax"
    with pytest.raises(ConfigError, match="normalizer=sparsemax: a gold link on a weight of exactly zero"):
        check_train(sparse)
    assert TrainConfig().trainer.guided_alignment == 0.0  # off by default


def test_guidance_teaches_attention_where_to_look(toy_root: Path, tmp_path: Path) -> None:
    def accuracy(weight: float) -> float:
        cfg = tiny_config(toy_root, epochs=6, lr=0.01, threads=1, guided_alignment=weight)
        cfg.data.store_dir = str(tmp_path / "store")
        return train_run(cfg, tmp_path / f"run{weight}").state.history[-1]["valid_alignment_accuracy"]

    plain, guided = accuracy(0.0), accuracy(1.0)
    assert guided > plain + 0.1, (plain, guided)  # measured: 0.06 -> 0.30 after 60 updates


def test_symmetrisation_of_two_directions_by_hand() -> None:
    sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))
    from align import grow_diag_final_and, symmetrize

    forward = {(0, 0), (1, 1), (2, 3)}  # source -> target
    reverse = {(0, 0), (1, 1), (1, 2), (3, 3)}  # target -> source, as source-target links
    # intersection {0-0, 1-1}; grown: 1-2 (next to 1-1, target 2 unaligned), then 2-3 (diagonal to
    # 1-2, source 2 unaligned), then 3-3 (next to 2-3, source 3 unaligned)
    assert grow_diag_final_and(forward, reverse) == {(0, 0), (1, 1), (1, 2), (2, 3), (3, 3)}
    # far from the intersection, a union link is added only when both its words are unaligned
    assert grow_diag_final_and({(0, 0), (3, 5)}, {(0, 0), (3, 6)}) == {(0, 0), (3, 5)}  # not also 3-6
    assert symmetrize(["0-0 1-1 2-3"], ["0-0 1-1 1-2 3-3"], "intersect") == ["0-0 1-1"]
    assert symmetrize(["0-0 5-5"], ["0-0 5-6"], "grow-diag-final-and") == ["0-0 5-5"]
