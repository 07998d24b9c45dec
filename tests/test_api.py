"""The Python API: the same configs and functions as the commands, typed results, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_cli import run, text

from seq2seq import EvalReport, TrainResult, Translation, Translator, evaluate, train
from seq2seq.checkpoint import read_checkpoint
from seq2seq.errors import ConfigError

TINY = ["trainer.max_steps=3", "trainer.progress=false", "model.embed_size=16", "model.hidden_size=32", "seed=5"]
TINY.append("trainer.threads=1")  # the same thread count in this process and the command's: the same sums


@pytest.fixture(scope="module")
def api_run(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("api") / "run"
    threads = torch.get_num_threads()
    try:
        return train(data="toy", model="luong", overrides=[f"data.root={toy_root}", *TINY], run_dir=out)
    finally:
        torch.set_num_threads(threads)


def test_train_through_the_api_equals_the_command(api_run: TrainResult, toy_root: Path, tmp_path: Path) -> None:
    p = run("seq2seq-train", "data=toy", "model=luong", f"data.root={toy_root}", *TINY, f"hydra.run.dir={tmp_path}")
    assert p.returncode == 0, text(p)
    by_api, by_cli = read_checkpoint(api_run.last), read_checkpoint(tmp_path / "last.pt")
    assert by_api["config"] == by_cli["config"]  # one config system: the same composed config
    for name, tensor in by_api["model"].items():
        assert torch.equal(tensor, by_cli["model"][name]), name
    assert api_run.state.step == 3 and api_run.metrics[-1]["step"] == 3 and api_run.params > 0


def test_translator_translates_in_input_order_with_attention_rows_summing_to_one(api_run: TrainResult) -> None:
    t = Translator.from_checkpoint(api_run.best, beam=3, nbest=2)
    sentences = ["Tom chase Jerry", "", "Mary see a big dog in the park yesterday"]
    out = t.translate(sentences)
    assert [o.source for o in out] == sentences and all(isinstance(o, Translation) for o in out)
    assert out[1].text == "" and out[1].tokens == []  # a blank sentence: an empty translation
    for o in (out[0], out[2]):
        assert o.attention.shape == (len(o.tokens), len(o.source_tokens)) and o.source_tokens[-1] == "</s>"
        assert torch.allclose(o.attention.sum(dim=1), torch.ones(len(o.tokens)), atol=1e-5)
        assert len(o.nbest) == 2 and o.nbest[0][0] == o.text
    alone = t.translate([sentences[2]])[0]  # batch-mates change nothing but float rounding (padded widths)
    assert alone.text == out[2].text and alone.score == pytest.approx(out[2].score, rel=1e-6, abs=1e-5)


def test_translator_matches_the_translate_command(api_run: TrainResult) -> None:
    lines = ["Tom chase Jerry", "Jerry like Tom", "Lily find a red book"]
    p = run("seq2seq-translate", f"checkpoint={api_run.best}", "beam=4", stdin="\n".join(lines) + "\n")
    assert p.returncode == 0, text(p)
    api = [o.text for o in Translator.from_checkpoint(api_run.best, beam=4).translate(lines)]
    assert api == p.stdout.decode().splitlines()


def test_bad_api_input_is_a_clear_error(api_run: TrainResult, toy_root: Path) -> None:
    with pytest.raises(ConfigError, match="beem"):
        Translator.from_checkpoint(api_run.best, beem=5)
    with pytest.raises(ConfigError, match="need beam >= 1"):
        Translator.from_checkpoint(api_run.best, beam=0)
    with pytest.raises(TypeError, match="list of sentences"):
        Translator.from_checkpoint(api_run.best).translate("Tom chase Jerry")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="trainer.epoch is not an option of seq2seq-train"):
        train(overrides=[f"data.root={toy_root}", "+trainer.epoch=3"], run_dir=toy_root / "never")
    with pytest.raises(ConfigError, match="seq2seq-train"):
        train(model="transformerz", run_dir=toy_root / "never")
    with pytest.raises(ConfigError, match="beem"):
        evaluate(api_run.best, beem=5)
    assert not (toy_root / "never").exists()


def test_evaluate_returns_the_report_the_command_writes(api_run: TrainResult, toy_root: Path) -> None:
    report = evaluate(api_run.best, split="valid", beam=2, overrides=[f"data.root={toy_root}"])
    assert isinstance(report, EvalReport)
    assert report.split == "valid" and report.sentences == 20 and report.search.startswith("beam 2")
    assert Path(report.output).name == "eval-toy-valid-best-beam2-gnmt1.0.json"  # type: ignore[arg-type]
    p = run("seq2seq-eval", f"checkpoint={api_run.best}", f"data.root={toy_root}", "split=valid", "beam=2")
    assert p.returncode == 0, text(p)
    assert f"BLEU {report.bleu:.2f}" in p.stdout.decode() and report.alignment_accuracy is not None


def test_translator_continues_a_prefix_and_refuses_a_count_mismatch(api_run: TrainResult) -> None:
    t = Translator.from_checkpoint(api_run.best, beam=2)
    sentences = ["Tom chase Jerry", "Jerry like Tom"]
    free = t.translate(sentences)
    start = free[1].text.split()[0]  # the model's own first word: fixing it changes nothing
    steered = t.translate(sentences, prefixes=["玛丽", start])
    assert steered[0].text.startswith("玛丽") and steered[0].attention.shape[0] == len(steered[0].tokens)
    assert steered[1].text == free[1].text
    with pytest.raises(ValueError, match="1 prefixes for 2 sentences"):
        t.translate(sentences, prefixes=["玛丽"])
    with pytest.raises(ValueError, match=r"prefix 'Spike 玛丽': '▁Spike' is not in the target vocabulary"):
        t.translate(sentences, prefixes=["Spike 玛丽", ""])  # forced as UNK it would come out as ⁇
