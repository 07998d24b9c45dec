"""Config checks that need no model: resume through the schema, unknown options, sweep folder
names, the toy corpus a training run writes for itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from seq2seq.config import (
    LENGTH_BUCKET_EDGES,
    DataConfig,
    DecodingConfig,
    EvalConfig,
    GatherConfig,
    ModelConfig,
    SelfAttentionConfig,
    ServeConfig,
    TrainConfig,
    TrainerConfig,
    TranslateConfig,
    check_gather,
    check_model,
    check_trainer,
    folder_name,
    resume_mismatch,
    run_folders,
    unknown_options,
    with_defaults,
)
from seq2seq.data.prepare import ensure_toy_corpus
from seq2seq.errors import ConfigError


def saved_config(**changes: object) -> dict:
    cfg = OmegaConf.structured(TrainConfig)
    cfg.data.name, cfg.data.root = "toy", "data/toy"
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def test_resume_must_keep_what_changes_the_updates_and_may_change_the_budget() -> None:
    now = saved_config()
    must_keep = [("seed", 2), ("model.hidden_size", 64), ("trainer.lr", 0.01), ("search.beam", 2)]
    must_keep += [("data.tokenizer.model_type", "bpe"), ("data.max_len", 50), ("trainer.lr_anneal", 0.5)]
    for key, value in must_keep:
        assert resume_mismatch(saved_config(**{key: value}), now) == key
    may_change = [("trainer.epochs", 20), ("trainer.max_minutes", 5.0), ("trainer.threads", 1)]
    may_change += [("data.valid", "dev"), ("data.tokenizer.cache_dir", ""), ("trainer.keep_checkpoints", 3)]
    for key, value in may_change:
        assert resume_mismatch(saved_config(**{key: value}), now) is None, key


def test_an_older_saved_config_resumes_with_defaults_and_without_keys_no_schema_has() -> None:
    old = saved_config()
    del old["trainer"]["lr_anneal"]  # written before the option existed
    del old["model"]["param_init"]
    old["trainer"]["epoch"] = 3  # a misspelled +trainer.epoch=3 that an older version let through
    filled = with_defaults(old)
    assert filled is not None and "epoch" not in filled["trainer"]
    assert resume_mismatch(filled, saved_config()) is None
    assert with_defaults({**old, "seed": "not a number"}) is None  # does not fit the schema: refused


def test_unknown_options_are_found_at_every_level() -> None:
    cfg = OmegaConf.create(saved_config())  # as Hydra's +key=value leaves it: a key beside the schema's
    cfg.trainer.epoch = 3
    cfg.model.attention.scoer = "dot"
    cfg.extra = 1
    found = [key for key, _ in unknown_options(cfg, TrainConfig)]
    assert sorted(found) == ["extra", "model.attention.scoer", "trainer.epoch"]


def test_sweep_folder_names_parse_as_an_override_value() -> None:
    name = folder_name("model/attention:dot+model:luong+data.length_buckets:[10,20]+x:é")
    assert name == "model.attention:dot+model:luong+data.length_buckets:_10_20_+x:_"
    parsed = OverridesParser.create().parse_override(f"checkpoint=runs/sweep/0-{name}/best.pt")
    assert parsed.value() == f"runs/sweep/0-{name}/best.pt"


def test_gather_takes_one_folder_or_a_list() -> None:
    assert run_folders("runs/sweep") == ["runs/sweep"]
    assert run_folders(OmegaConf.create(["a", "b"])) == ["a", "b"]
    with pytest.raises(ConfigError, match="runs=\\[runs/a,runs/b\\]"):
        run_folders(OmegaConf.create([]))


@pytest.mark.parametrize(("src", "tgt"), [("en", "zh"), ("zh", "en")])
def test_training_on_toy_writes_the_corpus_with_its_own_language_names(
    src: str, tgt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ensure_toy_corpus(OmegaConf.structured(DataConfig(name="toy", root="data/toy", src_lang=src, tgt_lang=tgt)))
    english = (tmp_path / "data" / "toy" / "train.en").read_text(encoding="utf-8").splitlines()
    chinese = (tmp_path / "data" / "toy" / "train.zh").read_text(encoding="utf-8").splitlines()
    assert len(english) == len(chinese) == 20_000
    assert english[0].isascii() and not chinese[0].isascii()  # whichever way the model translates
    elsewhere = OmegaConf.structured(DataConfig(name="toy", root="other", src_lang=src, tgt_lang=tgt))
    ensure_toy_corpus(elsewhere)  # another root: a missing corpus stays missing (and an error later)
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("batch_size", 0, "trainer.batch_size=0 must be >= 1"),
        ("batch_size", -5, "trainer.batch_size=-5 must be >= 1"),
        ("epochs", 0, "trainer.epochs=0 must be >= 1"),
        ("max_tokens", -1, "trainer.max_tokens=-1 must be >= 0"),
        ("label_smoothing", -0.5, r"trainer.label_smoothing=-0.5 must lie in \[0, 1\)"),
        ("label_smoothing", 1.5, r"trainer.label_smoothing=1.5 must lie in \[0, 1\)"),
        ("lr", -1.0, r"trainer.lr=-1.0 must lie in \(0, 1\]"),
        ("lr", float("nan"), r"trainer.lr=nan must lie in \(0, 1\]"),
        ("lr", 1e38, r"trainer.lr=1e\+38 must lie in \(0, 1\]"),
        ("min_lr", 0.5, r"trainer.min_lr=0.5 must lie in \[0, trainer.lr=0.001\]"),
        ("grad_clip", float("nan"), "trainer.grad_clip=nan must be >= 0"),
        ("lr_shrink", 0.0, r"trainer.lr_shrink=0.0 must lie in \(0, 1\]"),
        ("accumulate", 0, "trainer.accumulate=0 must be >= 1"),
        ("max_bad_updates", 0, "trainer.max_bad_updates=0 must be >= 1"),
        ("precision", "fp8", "trainer.precision='fp8' is not valid: choose one of fp32, bf16, fp16"),
        ("early_stop_metric", "bleu", "choose one of valid_bleu, valid_loss"),
    ],
)
def test_trainer_values_are_checked_before_anything_runs(key: str, value: object, message: str) -> None:
    cfg = OmegaConf.structured(TrainerConfig)
    cfg[key] = value
    with pytest.raises(ConfigError, match=message):
        check_trainer(cfg)
    check_trainer(OmegaConf.structured(TrainerConfig))  # the defaults pass


def test_tensorboard_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import seq2seq.board as board

    monkeypatch.setattr(board.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'seq2seq-attention\[tensorboard\]'"):
        board.check_tensorboard()


@pytest.mark.parametrize(
    ("settings", "message"),
    [  # the checks the model constructors trust, each with its own message
        ({"decoder": "transformer", "decoder_layers": 2, "alignment_layer": 3}, "the decoder has 2 layers"),
        (
            {"decoder": "sutskever", "tie_embeddings": True, "embed_size": 32},
            "needs model.embed_size == model.hidden_size",
        ),
        ({"decoder": "transformer", "self_attention": SelfAttentionConfig(heads=3)}, "not divisible"),
        ({"decoder": "luong", "hidden_size": 17, "attention": {"score": "dot"}}, "needs query size == key size"),
        ({"bidirectional": True, "bridge": "copy", "hidden_size": 17}, "model.bridge=copy needs the summary C"),
        ({"attention": {"score": "mlp"}}, "model.attention.score='mlp' is not valid: choose one of dot, "),
        ({"self_attention": SelfAttentionConfig(norm="sandwich")}, "choose one of pre, post"),
        ({"decoder": "rnn"}, "choose one of bahdanau, luong, transformer, cho, sutskever"),
    ],
)
def test_every_width_layer_and_choice_a_model_relies_on_is_checked_here(settings: dict, message: str) -> None:
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), settings)
    with pytest.raises(ConfigError, match=message):
        check_model(cfg)


def test_the_decoding_commands_share_one_section_and_keep_their_defaults() -> None:
    shared = ("beam", "batch_size", "device", "precision")
    for schema in (EvalConfig, TranslateConfig, GatherConfig, ServeConfig):
        assert issubclass(schema, DecodingConfig) and all(hasattr(schema, key) for key in shared), schema
        assert (schema.device, schema.precision, schema.beam) == ("auto", "fp32", 1)
    assert (EvalConfig.batch_size, GatherConfig.batch_size) == (128, 128)
    assert (TranslateConfig.batch_size, ServeConfig.batch_size) == (64, 64)
    assert DataConfig().length_buckets == list(LENGTH_BUCKET_EDGES)


def test_gather_takes_a_precision_and_checks_it() -> None:
    cfg = OmegaConf.structured(GatherConfig(runs="runs/sweep"))
    assert check_gather(cfg).precision == "fp32"
    cfg.precision = "fp8"
    with pytest.raises(ConfigError, match="precision='fp8' is not valid: choose one of fp32, bf16, fp16"):
        check_gather(cfg)
