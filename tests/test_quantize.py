"""int8 decoding (quantize=int8): the linear and RNN layers become int8, the fp32 model is left as it
was, trained models translate as in fp32, every architecture runs, and what cannot run is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from serving import BIN, PAIRS, train_tiny
from torch import nn

from seq2seq import Translator, train
from seq2seq.checkpoint import load_model
from seq2seq.decoding import Decoding
from seq2seq.errors import ConfigError
from seq2seq.quantization import QUANTIZED, quantize_int8

SOURCES = [s for s, _ in PAIRS]
OLD = Path(__file__).parent / "data" / "old_checkpoints"


@pytest.fixture(scope="module")
def gru(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("int8-gru"))


@pytest.fixture(scope="module")
def lstm(gru: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Luong LSTM (input feeding, general score) on the same pairs."""
    result = train(
        "toy",
        "luong",
        [
            f"data.root={gru.parent.parent / 'data'}", "data.name=tiny", "trainer.epochs=400",
            "trainer.max_steps=150", "trainer.batch_size=10", "trainer.lr=0.01", "trainer.progress=false",
            "trainer.threads=1", "model.embed_size=16", "model.hidden_size=32", "model.dropout=0.0", "model.rnn=lstm",
        ],
        run_dir=tmp_path_factory.mktemp("int8-lstm") / "run",
    )  # fmt: skip
    return result.last


def float_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if type(m) in QUANTIZED]


@pytest.mark.parametrize("which", ["gru", "lstm"])
@pytest.mark.parametrize("beam", [1, 3])
def test_a_trained_model_translates_in_int8_as_in_fp32(which: str, beam: int, request: pytest.FixtureRequest) -> None:
    checkpoint = request.getfixturevalue(which)
    fp32 = Translator.from_checkpoint(checkpoint, device="cpu", beam=beam)
    int8 = Translator.from_checkpoint(checkpoint, device="cpu", beam=beam, quantize="int8")
    assert float_layers(fp32.loaded.model) and not float_layers(int8.loaded.model)
    assert int8.loaded.quantize == "int8" and fp32.loaded.quantize == "none"
    for a, b in zip(fp32.translate(SOURCES), int8.translate(SOURCES), strict=True):
        assert b.text == a.text == dict(PAIRS)[a.source]  # the tiny model learned its pairs, in int8 too
        assert b.score == pytest.approx(a.score, abs=0.05)
        assert (b.attention - a.attention).abs().max() < 0.05


def test_quantizing_leaves_the_fp32_model_as_it_was(gru: Path) -> None:
    loaded = load_model(gru)
    before = float_layers(loaded.model)
    quantized = quantize_int8(loaded.model)
    assert float_layers(loaded.model) == before and not float_layers(quantized)
    assert not quantized.training


@pytest.mark.parametrize("name", ["bahdanau_gru", "cho", "luong_lstm_general", "sutskever_tied", "transformer"])
def test_every_architecture_decodes_in_int8(name: str) -> None:
    translator = Translator.from_checkpoint(OLD / f"{name}.pt", device="cpu", beam=2, quantize="int8", max_len_b=3)
    assert not float_layers(translator.loaded.model)
    out = translator.translate(["Tom chase Jerry", "John visit Lily"])
    assert all(t.attention.shape == (len(t.tokens), len(t.source_tokens)) for t in out)


def test_what_cannot_decode_in_int8_is_refused(monkeypatch: pytest.MonkeyPatch, gru: Path) -> None:
    with pytest.raises(ConfigError, match="give device=cpu and precision=fp32"):
        Decoding({}, 8, "cuda", "fp32", "int8")
    with pytest.raises(ConfigError, match="quantize='int4' is not valid: choose one of none, int8"):
        Decoding({}, 8, "cpu", "fp32", "int4")
    monkeypatch.setattr("seq2seq.quantization.ENGINES", ("no-such-engine",))
    with pytest.raises(ConfigError, match="no quantized CPU backend"):
        Translator.from_checkpoint(gru, device="cpu", quantize="int8")


def test_eval_in_int8_writes_its_own_report(gru: Path) -> None:
    data = gru.parent.parent / "data"
    for quantize in ("none", "int8"):
        proc = subprocess.run(
            [str(BIN / "seq2seq-eval"), f"checkpoint={gru}", f"data.root={data}", "device=cpu", f"quantize={quantize}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    reports = {r.name.endswith("-int8.json"): r for r in gru.parent.glob("eval-*.json")}  # one each, apart
    assert len(reports) == 2 and len(list(gru.parent.glob("eval-*.json"))) == 2
    assert [json.loads(reports[int8].read_text())["bleu"] for int8 in (False, True)] == [100.0, 100.0]
    refused = subprocess.run(
        [str(BIN / "seq2seq-eval"), f"checkpoint={gru}", "quantize=int8", "precision=bf16", "device=cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 1 and "int8 decoding runs in fp32" in refused.stderr
