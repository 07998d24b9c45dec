"""seq2seq-export: a trained Transformer, exported to CTranslate2, translates as seq2seq does,
token for token; what CTranslate2 cannot run and what would overwrite files are refused in one line."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

try:
    import ctranslate2
except ImportError:  # missing, or a build that does not load here
    pytest.skip(
        "seq2seq-export's extra, CTranslate2, is not importable (pip install 'seq2seq-attention[export]')",
        allow_module_level=True,
    )
import sentencepiece as spm  # noqa: E402
from serving import BIN, PAIRS  # noqa: E402

from seq2seq import Translator, train  # noqa: E402
from seq2seq.checkpoint import load_model, make_checkpoint, save_atomic  # noqa: E402
from seq2seq.config import AttentionConfig, ModelConfig  # noqa: E402
from seq2seq.constants import BOS_ID, PAD_ID  # noqa: E402
from seq2seq.data.batching import collate  # noqa: E402
from seq2seq.device import cpu_has_bf16  # noqa: E402
from seq2seq.errors import CheckpointError, ConfigError, CorpusError  # noqa: E402
from seq2seq.export import export_ctranslate2  # noqa: E402
from seq2seq.models.seq2seq import build_model  # noqa: E402
from seq2seq.shortlist import Shortlist, write_shortlist  # noqa: E402

# the training sources, then unseen ones: new combinations, a lone word, a repeat, an unknown word
SOURCES = [s for s, _ in PAIRS] + ["Tom chase Mary", "Jerry", "Mary see Jerry Tom", "Tom Tom like", "xyz Tom"]
TINY = [
    "trainer.epochs=400", "trainer.max_steps=60", "trainer.batch_size=10", "trainer.lr=0.005",
    "trainer.lr_schedule=constant", "trainer.label_smoothing=0", "trainer.progress=false", "trainer.threads=1",
    "data.tokenizer.cache_dir=", "model.hidden_size=32", "model.dropout=0.0", "model.self_attention.heads=2",
    "model.self_attention.ff_size=64", "model.self_attention.max_positions=64",
]  # fmt: skip
VARIANTS = {  # what CTranslate2 has to get right, in two models
    "pre-norm, sinusoidal, tied, word pieces": [],
    "post-norm, learned positions, untied, unigram pieces": [
        "model.self_attention.norm=post", "model.self_attention.positions=learned", "model.tie_embeddings=false",
        "model.encoder_layers=1", "model.alignment_layer=2", "data.tokenizer.model_type=unigram",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each variant's Transformer, overfit on :data:`PAIRS` (about 3 s each): its last.pt."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    data = root / "data"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.en").write_text("".join(s + "\n" for s, _ in PAIRS), encoding="utf-8")
        (data / f"{split}.zh").write_text("".join(t + "\n" for _, t in PAIRS), encoding="utf-8")
    found = {}
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        args = [f"data.root={data}", "data.name=tiny", f"data.store_dir={root / 'store'}", *TINY, *overrides]
        found[name] = train("toy", "transformer", args, run_dir=root / f"run{i}").last
    return found


def ctranslate2_translator(folder: Path) -> ctranslate2.Translator:
    return ctranslate2.Translator(str(folder), device="cpu", intra_threads=1, inter_threads=1)


def pieces(folder: Path, side: str, lines: list[str]) -> list[list[str]]:
    """``lines`` as the pieces of the export's own ``source.model`` or ``target.model``."""
    return spm.SentencePieceProcessor(model_file=str(folder / f"{side}.model")).encode(lines, out_type=str)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ctranslate2_greedy_output_equals_seq2seqs_token_for_token_in_float32(
    variant: str, trained: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = trained[variant]
    folder = export_ctranslate2(checkpoint, tmp_path / "ct2", quantization="float32")
    ours = Translator.from_checkpoint(checkpoint, device="cpu").translate(SOURCES)
    theirs = ctranslate2_translator(folder).translate_batch(
        pieces(folder, "source", SOURCES), beam_size=1, min_decoding_length=0, return_attention=True
    )  # seq2seq's min_len=0
    target = spm.SentencePieceProcessor(model_file=str(folder / "target.model"))
    for source, mine, their in zip(SOURCES, ours, theirs, strict=True):
        best = their.hypotheses[0]
        assert best == mine.tokens, source
        assert [target.piece_to_id(p) for p in best] == mine.token_ids
        assert target.decode_pieces(best) == mine.text
        # the alignment layer's heads averaged, as seq2seq's; CTranslate2 leaves out the source's </s>
        assert torch.allclose(torch.tensor(their.attention[0]), mine.attention[:, :-1], atol=1e-4), source
    assert len({tuple(t.tokens) for t in ours}) > len(PAIRS) // 2  # they do not all translate alike


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_output_log_probability_equals_seq2seqs(variant: str, trained: dict[str, Path], tmp_path: Path) -> None:
    """Teacher forcing on given targets, every token's log-probability (EOS included): the whole
    network, not only its argmax. PAD and BOS, which seq2seq's search never writes, have no
    probability in the export, so seq2seq's are left out of its softmax too."""
    checkpoint = trained[variant]
    folder = export_ctranslate2(checkpoint, tmp_path / "ct2")
    targets = [t for _, t in PAIRS[:4]] + ["汤姆 喜欢 汤姆 汤姆", "玛丽"]
    sources = SOURCES[: len(targets) - 1] + ["xyz Tom"]
    scored = ctranslate2_translator(folder).score_batch(
        pieces(folder, "source", sources), pieces(folder, "target", targets)
    )
    loaded = load_model(checkpoint)
    batch = collate(loaded.src_tokenizer.encode_batch(sources), loaded.tgt_tokenizer.encode_batch(targets))
    with torch.no_grad():
        logits, _ = loaded.model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V)
    logits[..., [PAD_ID, BOS_ID]] = float("-inf")
    log_probs = torch.log_softmax(logits, dim=-1).gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1)  # (B, T)
    for i, result in enumerate(scored):
        n = len(result.log_probs)
        assert n == int((batch.tgt_out[i] != PAD_ID).sum())
        assert torch.allclose(torch.tensor(result.log_probs), log_probs[i, :n], atol=1e-4), targets[i]


def test_the_folder_holds_the_model_both_tokenizers_and_a_record_without_absolute_paths(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = next(iter(trained.values()))
    folder = export_ctranslate2(checkpoint, tmp_path / "out" / "ct2")  # the parent is made
    names = {p.name for p in folder.iterdir()}
    assert {"model.bin", "config.json", "source.model", "target.model", "export.json"} <= names
    loaded = load_model(checkpoint)
    assert (folder / "source.model").read_bytes() == loaded.src_tokenizer.model_proto
    assert (folder / "target.model").read_bytes() == loaded.tgt_tokenizer.model_proto
    vocabulary = json.loads((folder / "target_vocabulary.json").read_text(encoding="utf-8"))
    assert vocabulary[:4] == ["<blank>", "<unk>", "<s>", "</s>"]  # seq2seq's ids: pad=0 unk=1 bos=2 eos=3
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["add_source_eos"] is True and config["decoder_start_token"] == "<s>"
    text = (folder / "export.json").read_text(encoding="utf-8")
    record = json.loads(text)
    assert record["checkpoint"] == "last.pt" and record["quantization"] == "float32"
    assert record["format"] == "ctranslate2" and len(record["checkpoint_sha256"]) == 64
    assert str(tmp_path) not in text and "/tmp" not in text
    assert sorted(p.name for p in folder.parent.iterdir()) == ["ct2"]  # no temporary folder left


def test_an_int8_export_is_smaller_loads_and_translates_the_training_sentences_alike(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = trained["post-norm, learned positions, untied, unigram pieces"]
    full = export_ctranslate2(checkpoint, tmp_path / "fp32", quantization="float32")
    int8 = export_ctranslate2(checkpoint, tmp_path / "int8", quantization="int8")
    assert (int8 / "model.bin").stat().st_size < 0.6 * (full / "model.bin").stat().st_size
    sources = [s for s, _ in PAIRS]  # learned by heart: wide margins, which int8's rounding does not cross
    expected = [r.hypotheses[0] for r in ctranslate2_translator(full).translate_batch(pieces(full, "source", sources))]
    found = ctranslate2_translator(int8).translate_batch(pieces(int8, "source", sources), beam_size=5)
    assert [r.hypotheses[0] for r in found] == expected
    assert json.loads((int8 / "export.json").read_text(encoding="utf-8"))["quantization"] == "int8"


def test_a_shortlist_goes_into_the_model_as_its_vocabulary_map(trained: dict[str, Path], tmp_path: Path) -> None:
    """``shortlist=`` writes vmap.txt: CTranslate2 with ``use_vmap=True`` writes only its pieces,
    and with a map that lists every piece translates as without one; a foreign piece is refused
    before anything is written."""
    checkpoint = trained["pre-norm, sinusoidal, tied, word pieces"]
    loaded = load_model(checkpoint)
    src, tgt = loaded.src_tokenizer, loaded.tgt_tokenizer
    every = Shortlist(torch.arange(len(tgt)).expand(len(src), -1).clone(), torch.empty(0, dtype=torch.long))
    write_shortlist(every, tmp_path / "every.txt", src, tgt)
    folder = export_ctranslate2(checkpoint, tmp_path / "ct2", shortlist=tmp_path / "every.txt")
    assert (folder / "vmap.txt").is_file()
    assert "vmap.txt" in json.loads((folder / "export.json").read_text(encoding="utf-8"))["files"]
    translator = ctranslate2_translator(folder)
    sources = pieces(folder, "source", SOURCES)
    plain = [r.hypotheses[0] for r in translator.translate_batch(sources, beam_size=3)]
    assert [r.hypotheses[0] for r in translator.translate_batch(sources, beam_size=3, use_vmap=True)] == plain
    narrow = Shortlist(torch.full((len(src), 1), -1), torch.tensor(tgt.sp.encode("汤姆", out_type=int)))
    write_shortlist(narrow, tmp_path / "narrow.txt", src, tgt)
    folder = export_ctranslate2(checkpoint, tmp_path / "ct2", shortlist=tmp_path / "narrow.txt", force=True)
    written = ctranslate2_translator(folder).translate_batch(sources, beam_size=3, use_vmap=True)
    allowed = set(tgt.pieces("汤姆")) | {"<unk>"}
    assert all(set(r.hypotheses[0]) <= allowed for r in written)
    (tmp_path / "foreign.txt").write_text("nosuchpiece\t▁汤姆\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="foreign.txt:1: 'nosuchpiece' is not in the model's source vocabulary"):
        export_ctranslate2(checkpoint, tmp_path / "refused", shortlist=tmp_path / "foreign.txt")
    assert not (tmp_path / "refused").exists()


def untrained_checkpoint(folder: Path, model: ModelConfig, tokenizers_from: Path) -> Path:
    """A checkpoint of ``model`` (untrained) with the tokenizers of another checkpoint."""
    loaded = load_model(tokenizers_from)
    src, tgt = loaded.src_tokenizer, loaded.tgt_tokenizer
    net = build_model(model, len(src), len(tgt))
    path = folder / "model.pt"
    save_atomic(make_checkpoint(net, src, tgt, {"model": dataclasses.asdict(model), "data": {}}), path)
    return path


TRANSFORMER = {"decoder": "transformer", "encoder": "self_attention", "hidden_size": 32}
ONLY = "CTranslate2 runs Transformers only (model=transformer)"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (ModelConfig(decoder="bahdanau"), f"{ONLY}; this model has a bahdanau decoder"),
        (ModelConfig(decoder="cho", rnn="lstm"), f"{ONLY}; this model has a cho decoder"),
        (
            ModelConfig(decoder="transformer", encoder="rnn", hidden_size=32),
            f"{ONLY}; this model's Transformer decoder reads an RNN encoder (model.encoder=rnn)",
        ),
        (
            ModelConfig(**TRANSFORMER, attention=AttentionConfig(normalizer="sparsemax")),  # type: ignore[arg-type]
            "CTranslate2's attention is softmax; this model's cross-attention is model.attention.normalizer=sparsemax",
        ),
    ],
    ids=["bahdanau", "cho", "rnn-encoder", "sparsemax"],
)
def test_what_ctranslate2_cannot_run_is_refused_in_one_line_before_writing(
    model: ModelConfig, message: str, trained: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = untrained_checkpoint(tmp_path, model, next(iter(trained.values())))
    with pytest.raises(CheckpointError) as refused:
        export_ctranslate2(checkpoint, tmp_path / "ct2")
    assert str(refused.value) == f"{checkpoint}: cannot export: {message}"
    assert "\n" not in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no folder, no temporary


def test_an_output_with_files_is_refused_and_force_replaces_only_an_earlier_export(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = next(iter(trained.values()))
    (tmp_path / "empty").mkdir()
    export_ctranslate2(checkpoint, tmp_path / "empty")  # an empty folder is no one's work
    assert (tmp_path / "empty" / "model.bin").is_file()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me\n")
    with pytest.raises(ConfigError, match=r"mine already holds files; give force=true to replace it"):
        export_ctranslate2(checkpoint, foreign)
    with pytest.raises(ConfigError, match=r"holds files that seq2seq-export did not write \(no export.json\)"):
        export_ctranslate2(checkpoint, foreign, force=True)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    earlier = export_ctranslate2(checkpoint, tmp_path / "ct2", quantization="int8")
    with pytest.raises(ConfigError, match=r"ct2 already holds files"):
        export_ctranslate2(checkpoint, earlier, quantization="float32")
    export_ctranslate2(checkpoint, earlier, quantization="float32", force=True)
    assert json.loads((earlier / "export.json").read_text())["quantization"] == "float32"
    with pytest.raises(ConfigError, match=r"holds the checkpoint; write the export elsewhere"):
        export_ctranslate2(checkpoint, checkpoint.parent, force=True)
    with pytest.raises(ConfigError, match=r"is a file; give a folder"):
        export_ctranslate2(checkpoint, foreign / "notes.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2", "empty", "mine"]  # no temporary left


def test_a_failed_export_leaves_no_half_folder_and_the_earlier_export_whole(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = next(iter(trained.values()))
    earlier = export_ctranslate2(checkpoint, tmp_path / "ct2", quantization="int8")
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("seq2seq.export.sync", full_disk)  # after model.bin and the tokenizers are written
    for output, force in ((tmp_path / "new", False), (earlier, True)):
        with pytest.raises(OSError, match="No space left"):
            export_ctranslate2(checkpoint, output, quantization="float32", force=force)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2"]
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before


def test_seq2seq_export_end_to_end(trained: dict[str, Path], tmp_path: Path) -> None:
    checkpoint = next(iter(trained.values()))
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}

    def export(*args: str) -> subprocess.CompletedProcess:
        command = [str(BIN / "seq2seq-export"), f"checkpoint={checkpoint}", "output=ct2", *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)

    done = export("quantization=int8")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"exported {checkpoint} -> ct2/ (CTranslate2, int8, ")
    assert "model.bin" in done.stdout and "source.model" in done.stdout and "target.model" in done.stdout
    translated = ctranslate2_translator(tmp_path / "ct2").translate_batch(
        pieces(tmp_path / "ct2", "source", ["Tom chase Jerry"])
    )
    target = spm.SentencePieceProcessor(model_file=str(tmp_path / "ct2" / "target.model"))
    assert target.decode_pieces(translated[0].hypotheses[0]) == "汤姆 追逐 杰瑞"
    again = export("quantization=int4")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr == (
        "error: quantization='int4' is not valid: choose one of float32, int8, int16, float16, bfloat16, "
        "int8_float32, int8_float16, int8_bfloat16\n"
    )
    again = export()
    assert again.returncode == 1
    assert again.stderr == "error: output=ct2 already holds files; give force=true to replace it, or another folder\n"


def test_without_ctranslate2_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ctranslate2'] = None\n"
        "from seq2seq import cli\n"
        "sys.argv = ['seq2seq-export', 'checkpoint=x.pt', 'output=out']\n"
        "cli.export()\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 1
    assert p.stderr == "error: seq2seq-export needs CTranslate2: pip install 'seq2seq-attention[export]'\n"


def test_the_decoding_benchmark_has_ctranslate2_rows_beside_seq2seqs(trained: dict[str, Path], tmp_path: Path) -> None:
    """benchmarks/decode.py on a trained Transformer: seq2seq's fp32 rows and CTranslate2's float32
    and int8 rows, greedy and beam 5, with BLEU (speed is measured, never asserted)."""
    (tmp_path / "src.en").write_text("".join(s + "\n" for s, _ in PAIRS), encoding="utf-8")
    (tmp_path / "ref.zh").write_text("".join(t + "\n" for _, t in PAIRS), encoding="utf-8")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "decode.py"
    checkpoint = next(iter(trained.values()))
    command = [
        sys.executable, str(script), "--checkpoint", str(checkpoint), "--src", str(tmp_path / "src.en"),
        "--ref", str(tmp_path / "ref.zh"), "--ctranslate2", "float32,int8", "--threads", "1", "--batch-size", "4",
    ]  # fmt: skip
    loaded = load_model(checkpoint)
    every = Shortlist(torch.arange(len(loaded.tgt_tokenizer)).expand(len(loaded.src_tokenizer), -1).clone(),
                      torch.empty(0, dtype=torch.long))  # fmt: skip
    write_shortlist(every, tmp_path / "vmap.txt", loaded.src_tokenizer, loaded.tgt_tokenizer)
    command += ["--shortlist", str(tmp_path / "vmap.txt")]  # + rows with it, each system's
    systems = [("seq2seq", "fp32"), ("CTranslate2", "float32"), ("CTranslate2", "int8")]
    systems += [("seq2seq", "fp32 +shortlist"), ("CTranslate2", "float32 +vmap"), ("CTranslate2", "int8 +vmap")]
    if cpu_has_bf16():  # and a row under bf16 autocast where the CPU has bf16 instructions
        command += ["--precision", "fp32,bf16"]
        systems.append(("seq2seq", "bf16"))
    p = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {tuple(cell.strip() for cell in line.split("|")[1:4]): line.split("|") for line in p.stdout.splitlines()}
    for search in ("greedy", "beam 5"):
        for system in systems:
            assert (search, *system) in rows, p.stdout
    assert rows["greedy", "seq2seq", "fp32"][-2] == rows["greedy", "CTranslate2", "float32"][-2]  # the same BLEU
    assert rows["greedy", "seq2seq", "fp32"][-2] == rows["greedy", "seq2seq", "fp32 +shortlist"][-2]  # every piece
    assert rows["greedy", "seq2seq", "fp32"][-3].strip() == "1.00x"
