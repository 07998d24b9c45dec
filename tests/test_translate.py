"""The translator's display: terminal heatmap (double-width aware), the prompt's commands, the one
JSON shape of a translation, and the command's one-line errors."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image as plt_image
import numpy as np
import pytest
import torch

from seq2seq.checkpoint import Loaded
from seq2seq.config import ModelConfig, SearchConfig
from seq2seq.errors import ConfigError
from seq2seq.models.seq2seq import build_model
from seq2seq.plots import plot_attention
from seq2seq.prompt import Session
from seq2seq.terminal import heatmap, looked_at, shade, width
from seq2seq.tokenizer import Tokenizer
from seq2seq.translator import Translation, Translator, finite

BIN = Path(sys.executable).parent
OLD_CHECKPOINT = Path(__file__).parent / "data" / "old_checkpoints" / "bahdanau_gru.pt"


def example() -> Translation:
    weights = torch.tensor([[0.9, 0.05, 0.05, 0.0], [0.1, 0.8, 0.1, 0.0], [0.0, 0.1, 0.7, 0.2]])
    return Translation(
        source="Tom chase Jerry",
        text="汤姆 追逐 杰瑞",
        tokens=["▁汤姆", "▁追逐", "▁杰瑞"],
        source_tokens=["▁Tom", "▁chase", "▁Jerry", "</s>"],
        attention=weights,
        score=-0.5,
        nbest=[("汤姆 追逐 杰瑞", -0.3), ("汤姆 追逐 汤姆", -2.0)],
    )


def test_width_counts_wide_characters_twice() -> None:
    assert width("Tom") == 3
    assert width("汤姆") == 4
    assert width("，") == 2


def test_heatmap_columns_line_up_with_double_width_rows() -> None:
    lines = heatmap(example(), max_cols=200)
    assert lines[0].split() == ["Tom", "chase", "Jerry", "</s>"]
    assert {width(line) for line in lines} == {width(lines[0])}  # every row as wide as the header
    row = lines[1]  # 汤姆: most weight on "Tom", drawn with the darkest shade under it
    assert row.startswith("汤姆 ") and "███" in row
    start = width(lines[0].split("Tom")[0])
    assert row[start - 2 : start - 2 + 3] == "███"  # the row label is 2 characters / 4 columns wide


def test_heatmap_numbers_columns_when_too_wide() -> None:
    lines = heatmap(example(), max_cols=20)
    assert lines[0].split() == ["0", "1", "2", "3"]
    assert lines[-1].split() == ["0:Tom", "1:chase", "2:Jerry", "3:</s>"]


def test_looked_at_names_the_most_attended_word() -> None:
    lines = looked_at(example())
    assert [line.split()[-2] for line in lines] == ["Tom", "chase", "Jerry"]
    assert lines[0].split()[-1] == "(0.90)"


def test_json_holds_words_nbest_and_attention() -> None:
    obj = json.loads(json.dumps(example().to_dict(), ensure_ascii=False))
    assert obj["source"] == "Tom chase Jerry" and obj["text"] == "汤姆 追逐 杰瑞"
    assert [h["text"] for h in obj["nbest"]] == ["汤姆 追逐 杰瑞", "汤姆 追逐 汤姆"]
    assert [h["score"] for h in obj["nbest"]] == [-0.3, -2.0]
    assert obj["tokens"] == ["汤姆", "追逐", "杰瑞"]  # words: no "▁"
    assert obj["source_tokens"] == ["Tom", "chase", "Jerry", "</s>"]
    assert len(obj["attention"]) == 3 and len(obj["attention"][0]) == 4
    bare = example().to_dict(attention=False)
    assert "attention" not in bare and bare["tokens"] == obj["tokens"]


def test_json_numbers_that_overflowed_are_null() -> None:
    t = example()
    t.score = math.nan
    t.attention[0, 0] = math.inf
    obj = t.to_dict()
    assert obj["score"] is None and obj["attention"][0][0] is None
    json.loads(json.dumps(obj, allow_nan=False))  # valid JSON, no NaN


def test_translate_with_stdout_closed_is_one_clear_line() -> None:
    command = f"echo 'Tom chase Jerry' | {BIN / 'seq2seq-translate'} checkpoint={OLD_CHECKPOINT} device=cpu >&-"
    p = subprocess.run(["bash", "-c", command], capture_output=True, timeout=120)
    assert p.returncode == 1
    assert p.stderr.decode().strip() == (
        "error: standard output is closed: give output=FILE, or send it to a file or pipe"
    )


@pytest.fixture()
def session() -> Session:
    sentences = ["Tom chase Jerry", "Jerry see Tom", "Mary like Tom"]
    src = Tokenizer.train(sentences, 100, "word", "identity")
    tgt = Tokenizer.train(["汤姆 追逐 杰瑞", "杰瑞 看见 汤姆", "玛丽 喜欢 汤姆"], 100, "word", "identity")
    torch.manual_seed(0)
    model = build_model(ModelConfig(embed_size=8, hidden_size=16, dropout=0.0), len(src), len(tgt)).eval()
    return Session(Translator(Loaded(model, src, tgt, {})), out=io.StringIO())


def output(s: Session) -> str:
    return s.out.getvalue()  # type: ignore[attr-defined]


def test_commands_change_the_search(session: Session) -> None:
    assert session.command(":beam 4")
    assert session.search.beam == 4
    assert session.command(":nbest 3")
    assert session.search.nbest == 3
    assert session.command(":lp 0.6")
    assert session.search.length_penalty == 0.6
    assert "beam 4, length penalty gnmt α=0.6, nbest 3" in output(session)
    assert session.command(":beam 2")  # nbest follows the beam down
    assert (session.search.beam, session.search.nbest) == (2, 2)
    assert not session.command(":quit")


def test_bad_commands_say_so_and_change_nothing(session: Session) -> None:
    session.command(":beam many")
    session.command(":beam 0")
    session.command(":attn maybe")
    session.command(":frobnicate")
    text = output(session)
    assert "bad value for :beam: 'many'" in text
    assert "need beam >= 1" in text
    assert "bad value for :attn" in text
    assert "unknown command :frobnicate" in text
    assert session.search.beam == 1 and session.show_attention


def test_translation_shows_nbest_heatmap_and_survives_odd_input(session: Session, tmp_path: Path) -> None:
    session.command(":nbest 2")
    session.translate("Tom chase Jerry")
    text = output(session)
    assert "  1. " in text and "  2. " in text
    assert "<- " in text  # where the model looked
    for odd in ["zebra \x01 \x1b[31m", "Tom " * 500, "，。！"]:
        session.translate(odd)
    session.command(":attn off")
    session.translate("Tom")
    session.command(f":save {tmp_path / 'h.png'}")
    assert (tmp_path / "h.png").stat().st_size > 0


def test_figure_labels_are_numbered_when_cjk_glyphs_cannot_show() -> None:
    from seq2seq.plots import _labels

    assert _labels(["▁汤姆", "▁Tom", "</s>"], readable=True) == ["汤姆", "Tom", "</s>"]
    assert _labels(["▁汤姆", "▁Tom", "</s>"], readable=False) == ["0:汤姆", "Tom", "</s>"]


def test_a_failed_save_says_so_and_the_session_goes_on(session: Session, tmp_path: Path) -> None:
    session.translate("Tom chase Jerry")
    assert session.command(f":save {tmp_path / 'no' / 'such' / 'dir' / 'x.png'}")  # True: the prompt goes on
    assert "could not save" in output(session)
    session.command(":beam 3")
    assert session.search.beam == 3  # settings kept


def test_a_line_of_spaces_does_not_end_the_prompt(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    typed = iter(["   ", "Tom chase Jerry", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    session.run()
    assert session.last is not None and session.last.source == "Tom chase Jerry"
    assert next(typed, "all read") == "all read"  # it stopped at the empty line, not at the spaces


def test_bf16_decoding_is_refused_without_bf16_instructions_and_runs_with_them(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seq2seq import device as device_module

    loaded = session.translator.loaded
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: False)
    with pytest.raises(ConfigError, match=r"precision=bf16: this CPU .* has no bf16 instructions"):
        Translator(loaded, precision="bf16")
    with pytest.raises(ConfigError, match="precision='bf8' is not valid: choose one of fp32, bf16, fp16"):
        Translator(loaded, precision="bf8")
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: True)  # torch emulates bf16 on any CPU
    fp32 = Translator(loaded).translate(["Tom chase Jerry", "Mary like Tom"])
    bf16 = Translator(loaded, precision="bf16").translate(["Tom chase Jerry", "Mary like Tom"])
    for a, b in zip(fp32, bf16, strict=True):
        assert b.attention.dtype == torch.float32 and b.attention.shape[1] == a.attention.shape[1]
        torch.testing.assert_close(b.attention.sum(dim=1), torch.ones(b.attention.size(0)), atol=2e-2, rtol=0)


@pytest.fixture()
def transformer_session() -> Session:
    sentences = ["Tom chase Jerry", "Jerry see Tom", "Mary like Tom"]
    src = Tokenizer.train(sentences, 100, "word", "identity")
    tgt = Tokenizer.train(["汤姆 追逐 杰瑞", "杰瑞 看见 汤姆", "玛丽 喜欢 汤姆"], 100, "word", "identity")
    cfg = ModelConfig(
        decoder="transformer", encoder="self_attention", hidden_size=16, encoder_layers=2, decoder_layers=3, dropout=0.0
    )
    torch.manual_seed(0)
    model = build_model(cfg, len(src), len(tgt)).eval()
    return Session(Translator(Loaded(model, src, tgt, {}), SearchConfig(min_len=3)), out=io.StringIO())


def test_self_and_cross_attention_maps_are_drawn_and_saved(transformer_session: Session, tmp_path: Path) -> None:
    s = transformer_session
    s.translate("Tom chase Jerry")
    t = s.last
    assert t is not None and len(t.tokens) >= 3
    s.out = io.StringIO()
    s.command(":self enc 2")
    lines = output(s).splitlines()
    assert lines[0] == "encoder self-attention, layer 2, mean of 4 heads"
    assert lines[1].split() == ["Tom", "chase", "Jerry", "</s>"] and len(lines) == 2 + 4  # source x source
    s.command(":self dec 1 3")
    assert "decoder self-attention, layer 1, head 3" in output(s)
    assert s.shown is not None and s.shown.columns == ["<s>", *t.tokens[:-1]] and s.shown.rows == t.tokens
    s.command(":cross 3")
    assert s.shown.title == "cross-attention, layer 3, mean of 4 heads"
    s.command(f":save {tmp_path / 'cross.png'}")
    assert (tmp_path / "cross.png").stat().st_size > 0

    maps = s.translator.attention_maps(t)
    assert [m.shape for m in maps.encoder] == [(4, 4, 4)] * 2  # (h, S, S)
    assert all(torch.all(m.triu(diagonal=1) == 0) for m in maps.decoder)  # never the future
    assert torch.allclose(maps.cross[1].mean(0), t.attention, atol=1e-5)  # what the search reported
    line = json.loads(json.dumps(t.to_dict(layers=maps)))
    assert [len(layer) for layer in line["layers"]["encoder"]] == [4, 4]
    assert len(line["layers"]["decoder"]) == 3 and len(line["layers"]["cross"][0]) == len(t.tokens)


def test_maps_that_are_not_there_are_named(transformer_session: Session, session: Session) -> None:
    transformer_session.command(":self enc 1")
    assert "translate a sentence first" in output(transformer_session)
    transformer_session.translate("Tom chase Jerry")
    for command, message in [
        (":self enc 3", "the encoder has 2 layers: give 1 to 2"),
        (":cross 1 5", "layer 1 has 4 heads: give 1 to 4, or none for the mean"),
        (":self up 1", "usage: :self enc|dec LAYER [HEAD]"),
        (":cross", "usage:"),
        (":self dec x", "usage:"),
    ]:
        transformer_session.command(command)
        assert message in output(transformer_session), command
    session.translate("Tom chase Jerry")  # the RNN model: one cross-attention layer with one head
    session.command(":self enc 1")
    session.command(":self dec 1")
    assert "this model's encoder is an RNN" in output(session)
    assert "this model's decoder is an RNN" in output(session)
    session.command(":cross 1")
    assert "cross-attention, layer 1\n" in output(session)


def test_prefix_translates_the_last_sentence_again_from_the_words_given(session: Session) -> None:
    session.command(":prefix 玛丽")
    assert "translate a sentence first, then :prefix WORDS" in output(session)
    session.translate("Tom chase Jerry")
    free = session.last
    session.command(":prefix 玛丽 喜欢")
    assert session.last is not None and session.last.text.startswith("玛丽 喜欢")
    assert session.last.source == "Tom chase Jerry" and session.last.attention.shape[0] == len(session.last.tokens)
    session.command(":prefix")  # nothing fixed: the free translation again
    assert free is not None and session.last.text == free.text
    session.command(":prefix Spike")  # a word the model cannot write: said, and the session goes on
    assert "'▁Spike' is not in the target vocabulary" in output(session) and session.last.text == free.text


def test_an_exact_zero_is_drawn_apart_from_a_small_weight(tmp_path: Path) -> None:
    assert [shade(w) for w in (0.0, 1e-6, 0.19, 0.2, 0.5, 1.0, float("nan"))] == [" ", "·", "·", "░", "▒", "█", "?"]
    assert [finite(w) for w in (0.0, 1.234e-7, 0.00004, 0.12345)] == [0.0, 1.2e-07, 4e-05, 0.1235]
    weights = torch.tensor([[0.0, 1e-4, 0.9999]])  # a sparse row beside a softmax-like tiny weight
    path = tmp_path / "map.png"
    plot_attention([("sparse", ["a", "b", "c"], ["x"], weights)], path)
    image = plt_image.imread(path)  # (H, W, 4) in [0, 1]
    row = image[image.shape[0] // 2]  # the map's one row, across the figure
    colours = {tuple(np.round(px[:3], 2)) for px in row}
    assert (1.0, 1.0, 1.0) in colours  # the exact zero: white
    assert any(0.85 < px[0] < 0.97 and px[2] > 0.97 for px in row[:, :3])  # the tiny weight: a light blue
