"""Ensembles: the mean of the models' log-probabilities at every step, searched like one model;
loading several checkpoints (shared tokenizers only) in eval, translate, serve and the Translator."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
import torch
from test_average import kept_run  # noqa: F401  (a fixture: a tiny toy run with two kept checkpoints)
from test_cli import run, text
from test_search import SRC, model_of, sequence_log_prob

from seq2seq.checkpoint import load_model, read_checkpoint, save_atomic
from seq2seq.config import EvalConfig, SearchConfig, check_eval
from seq2seq.data.batching import collate
from seq2seq.errors import CheckpointError, ConfigError
from seq2seq.models.ensemble import Ensemble
from seq2seq.search import beam_search, greedy_search, length_penalty
from seq2seq.serve import model_names
from seq2seq.tokenizer import UNK_ID
from seq2seq.translator import Translator


def test_one_step_is_the_mean_of_the_models_log_probabilities() -> None:
    a, b = model_of("luong-lstm", seed=0), model_of("transformer", seed=1)  # any two decoders
    ensemble = Ensemble([a, b])
    batch = collate(SRC)
    prev = torch.full((len(SRC),), 2)  # BOS
    with torch.no_grad():
        memory = ensemble.encode(batch.src, batch.src_mask)
        mean, _, weights = ensemble.decoder.step(prev, ensemble.decoder.init_state(memory), memory)
        by_hand, shown = [], []
        for m in (a, b):
            mm = m.encode(batch.src, batch.src_mask)
            logits, _, w = m.decoder.step(prev, m.decoder.init_state(mm), mm)
            by_hand.append(torch.log_softmax(logits, dim=-1))
            shown.append(w)
    assert torch.allclose(mean, (by_hand[0] + by_hand[1]) / 2, atol=1e-6)
    assert torch.allclose(weights, (shown[0] + shown[1]) / 2, atol=1e-6)  # both attend: the mean
    assert torch.allclose(weights.sum(dim=1), torch.ones(len(SRC)), atol=1e-5)


def test_a_fixed_context_models_uniform_weights_are_left_out_of_the_shown_attention() -> None:
    attending, fixed = model_of("bahdanau", seed=0), model_of("cho", seed=1)
    batch = collate(SRC)
    cfg = SearchConfig(beam=3)
    (hyp, *_), *_ = beam_search(Ensemble([fixed, attending]), batch.src, batch.src_mask, cfg)
    _, weights = attending(*[t[:1] for t in (batch.src, batch.src_mask)], collate([SRC[0]], [hyp.tokens]).tgt_in)
    assert torch.allclose(hyp.weights, weights[0, : len(hyp.tokens)], atol=1e-5)


def test_an_ensemble_of_a_model_with_itself_decodes_as_the_model() -> None:
    model = model_of("luong-lstm")
    twice = Ensemble([model, model_of("luong-lstm")])  # the same weights, built twice
    batch = collate(SRC)
    for cfg in (SearchConfig(), SearchConfig(beam=4, nbest=3)):
        alone = beam_search(model, batch.src, batch.src_mask, cfg) if cfg.beam > 1 else None
        together = beam_search(twice, batch.src, batch.src_mask, cfg) if cfg.beam > 1 else None
        if cfg.beam == 1:
            alone = [[h] for h in greedy_search(model, batch.src, batch.src_mask, cfg)]
            together = [[h] for h in greedy_search(twice, batch.src, batch.src_mask, cfg)]
        for x, y in zip(alone, together, strict=True):  # type: ignore[arg-type]
            assert [h.tokens for h in x] == [h.tokens for h in y]
            for hx, hy in zip(x, y, strict=True):
                assert hx.score == pytest.approx(hy.score, abs=1e-5)
                assert torch.allclose(hx.weights, hy.weights, atol=1e-6)


def test_a_wide_beam_over_an_ensemble_finds_the_exhaustive_best() -> None:
    vocab, max_len, src = 6, 3, [4, 5, 4]
    ensemble = Ensemble([model_of("bahdanau", vocab, 0), model_of("transformer", vocab, 1), model_of("cho", vocab, 2)])
    candidates = [list(seq) for n in range(max_len + 1) for seq in itertools.product([UNK_ID, 4, 5], repeat=n)]
    scored = [(sequence_log_prob(ensemble, src, c) / length_penalty(len(c) + 1, 1.0, "gnmt"), c) for c in candidates]
    best_score, best = max(scored)
    batch = collate([src])
    cfg = SearchConfig(beam=64, max_len_a=0, max_len_b=max_len, nbest=3)
    (hyps,) = beam_search(ensemble, batch.src, batch.src_mask, cfg)
    assert hyps[0].tokens == best and hyps[0].norm_score == pytest.approx(best_score, abs=1e-5)
    assert [h.tokens for h in hyps] == [c for _, c in sorted(scored, reverse=True)[:3]]


def test_checkpoint_lists_load_as_an_ensemble_and_translate(kept_run: Path) -> None:  # noqa: F811
    files = [kept_run / "step00000020.pt", kept_run / "step00000030.pt"]
    loaded = load_model(files)
    assert isinstance(loaded.model, Ensemble) and loaded.paths == [str(f) for f in files]
    assert loaded.attends and len(loaded.configs) == 2
    assert load_model([files[0]]).paths == [str(files[0])]  # a list of one is the model itself
    translator = Translator.from_checkpoint(files, device="cpu", beam=3)
    (t,) = translator.translate(["Tom chase Jerry"])
    assert t.tokens and torch.allclose(t.attention.sum(dim=1), torch.ones(len(t.tokens)), atol=1e-5)
    maps = translator.attention_maps(t)  # the first model's, every layer
    assert len(maps.cross) == 1 and maps.cross[0].shape == (1, len(t.tokens), len(t.source_tokens))


def test_models_with_other_tokenizers_are_refused(kept_run: Path, tmp_path: Path) -> None:  # noqa: F811
    ckpt = read_checkpoint(kept_run / "best.pt")
    for key, side in (("src_tokenizer", "source"), ("tgt_tokenizer", "target")):
        other = {**ckpt, key: b"another vocabulary"}
        other["tokenizer_sha256"] = {**ckpt["tokenizer_sha256"], key: hashlib.sha256(b"another vocabulary").hexdigest()}
        save_atomic(other, tmp_path / "other.pt")
        with pytest.raises(CheckpointError, match=rf"other.pt: its {side} tokenizer is not that of .*best.pt"):
            load_model([kept_run / "best.pt", tmp_path / "other.pt"])


def test_checkpoint_options_take_a_file_or_a_list_of_different_files() -> None:
    assert check_eval(EvalConfig(checkpoint="a.pt")).checkpoint == "a.pt"
    assert list(check_eval(EvalConfig(checkpoint=["a.pt", "b.pt"])).checkpoint) == ["a.pt", "b.pt"]
    bad_values = ((["a.pt", "a.pt"], "names a file twice"), ([], "is not a checkpoint"), (3, "is not a checkpoint"))
    for bad, message in bad_values:
        with pytest.raises(ConfigError, match=message):
            check_eval(EvalConfig(checkpoint=bad))
    assert model_names([["runs/m/best.pt", "runs/m/step00000900.pt"], ["runs/other/best.pt"]]) == [
        "m (ensemble of 2)",
        "other",
    ]


def test_eval_and_translate_take_an_ensemble_on_the_command_line(kept_run: Path, tmp_path: Path) -> None:  # noqa: F811
    files = f"[{kept_run / 'step00000020.pt'},{kept_run / 'step00000030.pt'}]"
    out = tmp_path / "report.json"
    result = run("seq2seq-eval", f"checkpoint={files}", f"output={out}", "beam=2")
    assert result.returncode == 0, text(result)
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["checkpoint"] == f"{kept_run / 'step00000020.pt'} + {kept_run / 'step00000030.pt'}"
    assert "alignment_accuracy" in report and report["sentences"] > 0
    result = run("seq2seq-translate", f"checkpoint={files}", "format=json", stdin="Tom chase Jerry\n")
    assert result.returncode == 0, text(result)
    assert json.loads(result.stdout)["tokens"]
    twice = run("seq2seq-eval", f"checkpoint=[{kept_run / 'best.pt'},{kept_run / 'best.pt'}]")
    assert twice.returncode != 0 and "names a file twice" in text(twice)


def test_models_of_other_languages_or_a_file_twice_are_refused(kept_run: Path, tmp_path: Path) -> None:  # noqa: F811
    ckpt = read_checkpoint(kept_run / "best.pt")
    data = {**ckpt["config"]["data"], "src_lang": ckpt["config"]["data"]["tgt_lang"], "tgt_lang": "en"}
    save_atomic({**ckpt, "config": {**ckpt["config"], "data": data}}, tmp_path / "back.pt")
    with pytest.raises(CheckpointError, match=r"back.pt: translates zh->en, .*best.pt en->zh"):
        load_model([kept_run / "best.pt", tmp_path / "back.pt"])
    with pytest.raises(CheckpointError, match="names a file twice"):
        Translator.from_checkpoint([kept_run / "best.pt", kept_run / "best.pt"], device="cpu")


def test_two_runs_best_files_get_reports_of_their_own() -> None:
    from seq2seq.evaluation import report_path

    def path(files: list[str]) -> Path:
        return report_path(check_eval(EvalConfig(checkpoint=files)), "toy", "test")

    a, b = path(["runs/a/best.pt", "runs/b/best.pt"]), path(["runs/a/best.pt", "runs/c/best.pt"])
    assert a.parent == Path("runs/a") and a != b and a.name.startswith("eval-toy-test-ensemble2-")
    assert path(["runs/a/best.pt"]).name == "eval-toy-test-best-greedy.json"
