"""The console scripts end to end on a tiny toy corpus, and their errors on bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq import cli
from seq2seq.config import SCHEMAS
from seq2seq.usage import USAGE, check_arguments, schema_options

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "data.root={root}",
    "trainer.epochs=2",
    "trainer.batch_size=32",
    "trainer.progress=false",
    "model.embed_size=16",
    "model.hidden_size=32",
]


def run(cmd: str, *args: str, stdin: str | bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BIN / cmd), *args], input=data, capture_output=True, cwd=cwd, env=env, timeout=300)


def text(p: subprocess.CompletedProcess) -> str:
    return p.stdout.decode() + p.stderr.decode()


@pytest.fixture(scope="module")
def compared(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    args = [a.format(root=toy_root) for a in TINY]  # model.* is shared by both models
    p = run("seq2seq-compare", *args, f"hydra.run.dir={out}", cwd=out)
    assert p.returncode == 0, text(p)
    assert "| attention |" in p.stdout.decode()
    return out


def test_compare_writes_the_report(compared: Path) -> None:
    report = json.loads((compared / "comparison.json").read_text())
    assert report["data"] == "toy"
    assert "tok:zh" in report["bleu_signature"]
    for name in ("fixed_context", "attention"):
        m = report["models"][name]
        assert (compared / name / "best.pt").exists() and (compared / name / "last.pt").exists()
        assert m["params"] > 0 and m["train_seconds"] > 0
        assert {"bleu", "chrf", "bleu_by_src_len"} <= set(m)
        assert sum(r["sentences"] for r in m["bleu_by_src_len"]) == 20
    assert report["models"]["fixed_context"].get("alignment_accuracy") is None
    assert report["models"]["attention"]["params"] > report["models"]["fixed_context"]["params"]
    for name in ("comparison.md", "bleu_by_length.png", "attention_heatmap.png", "training_curves.png"):
        assert (compared / name).stat().st_size > 0, name


def test_train_cli(toy_root: Path, tmp_path: Path) -> None:
    args = [a.format(root=toy_root) for a in TINY]
    p = run("seq2seq-train", "model=fixed_context", *args, "seed=3", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert p.returncode == 0, text(p)
    assert "best valid BLEU" in p.stdout.decode()
    assert {"best.pt", "last.pt", "metrics.csv", "config.yaml"} <= {f.name for f in tmp_path.iterdir()}
    assert "decoder: cho" in (tmp_path / "config.yaml").read_text()


def test_eval_cli(compared: Path, toy_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    ckpt = compared / "attention" / "best.pt"
    p = run("seq2seq-eval", f"checkpoint={ckpt}", "data=toy", f"data.root={toy_root}", "split=test", f"output={out}")
    assert p.returncode == 0, text(p)
    assert "BLEU" in p.stdout.decode() and "tok:zh" in p.stdout.decode()
    report = json.loads(out.read_text())
    assert report["split"] == "test" and report["sentences"] == 20
    assert len(out.with_suffix(".hyp").read_text().splitlines()) == 20
    compared_report = json.loads((compared / "comparison.json").read_text())["models"]["attention"]
    for key in ("bleu", "chrf", "alignment_accuracy", "bleu_by_src_len"):  # compare and eval agree
        assert report[key] == compared_report[key], key


def test_eval_defaults_to_the_datas_own_test_split(compared: Path, toy_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    ckpt = compared / "attention" / "best.pt"
    p = run("seq2seq-eval", f"checkpoint={ckpt}", f"data.root={toy_root}", "data.test=valid", f"output={out}")
    assert p.returncode == 0, text(p)
    assert json.loads(out.read_text())["split"] == "valid"  # like Multi30k's test2016 or Tatoeba's valid


def test_translate_pipe_keeps_line_count_and_order(compared: Path) -> None:
    ckpt = compared / "attention" / "best.pt"
    lines = "Tom chase Jerry\n\nMary see a big dog in the park yesterday\n???? \x01 zebra\n"
    p = run("seq2seq-translate", f"checkpoint={ckpt}", stdin=lines)
    assert p.returncode == 0, text(p)
    out = p.stdout.decode().split("\n")
    assert len(out) == 5 and out[-1] == ""  # 4 lines, each ended by a newline
    assert out[1] == ""  # an empty line stays empty
    assert all(out[i] for i in (0, 2, 3))


def test_translate_pipe_matches_one_sentence_at_a_time(compared: Path) -> None:
    ckpt = f"checkpoint={compared / 'attention' / 'best.pt'}"
    lines = ["Tom chase Jerry", "Mary see a big dog in the park yesterday", "Jerry like Tom", "Lily find a red book"]
    together = (
        run("seq2seq-translate", ckpt, "batch_size=2", stdin="\n".join(lines) + "\n").stdout.decode().splitlines()
    )
    alone = [run("seq2seq-translate", ckpt, stdin=line + "\n").stdout.decode().strip() for line in lines]
    assert together == alone


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_one_clear_line(compared: Path) -> None:
    p = run("seq2seq-translate", f"checkpoint={compared / 'attention' / 'best.pt'}", "device=cuda", stdin="Tom\n")
    assert p.returncode != 0
    assert "torch sees no CUDA device" in p.stderr.decode() and "Traceback" not in p.stderr.decode()


def test_translate_file_mode(compared: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("Tom chase Jerry\nJerry see Tom\n", encoding="utf-8")
    dst = tmp_path / "out.txt"
    p = run("seq2seq-translate", f"checkpoint={compared / 'attention' / 'best.pt'}", f"input={src}", f"output={dst}")
    assert p.returncode == 0, text(p)
    assert len(dst.read_text(encoding="utf-8").splitlines()) == 2


def test_translate_reports_invalid_utf8_with_line_number(compared: Path) -> None:
    p = run("seq2seq-translate", f"checkpoint={compared / 'attention' / 'best.pt'}", stdin=b"fine\nbad \xff\n")
    assert p.returncode != 0
    assert "<stdin>:2: invalid UTF-8" in p.stderr.decode()


def test_missing_checkpoint_is_one_clear_line(tmp_path: Path) -> None:
    p = run("seq2seq-translate", f"checkpoint={tmp_path / 'nope.pt'}", stdin="Tom chase Jerry\n")
    assert p.returncode != 0
    assert p.stderr.decode().strip() == f"error: {tmp_path / 'nope.pt'}: checkpoint not found"


def test_foreign_checkpoint_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"garbage")
    p = run("seq2seq-eval", f"checkpoint={bad}")
    assert p.returncode != 0
    assert "not a readable checkpoint" in p.stderr.decode() and "Traceback" not in p.stderr.decode()


def test_missing_corpus_file_names_it(tmp_path: Path) -> None:
    p = run("seq2seq-train", f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert p.returncode != 0
    assert "train.en: file not found" in p.stderr.decode() and "Traceback" not in p.stderr.decode()


def test_mismatched_corpus_names_both_files(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "train.en").write_text("a\nb\n")
    (root / "train.zh").write_text("x\n")
    p = run("seq2seq-train", f"data.root={root}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert p.returncode != 0
    assert "train.en has 2 lines but" in p.stderr.decode()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochz=3", "epochz"),
        ("trainer.epochs=many", "trainer.epochs"),
        ("model=transformerz", "model=transformerz is not a config (did you mean model=transformer?)"),
        ("model.decoder=lstm", "is not valid: choose one of bahdanau, luong, transformer, cho, sutskever"),
        ("model.rnn=rnn", "model.rnn='rnn' is not valid: choose one of gru, lstm"),
        ("model.encoder=self_attention model.self_attention.heads=3", "not divisible by model.self_attention.heads=3"),
        ("model/attention=bilinear", "bilinear"),
        ("data.bleu_tokenize=foo", "data.bleu_tokenize='foo' is not valid"),
        ("model/attention=dot model.hidden_size=33", "dot attention needs query size == key size"),
        ("search.beam=0", "need beam >= 1"),
        ("trainer.lr_schedule=cosine", "trainer.lr_schedule='cosine' is not valid"),
        ("trainer.lr_anneal=0", "trainer.lr_anneal=0.0 must lie in (0, 1]"),
    ],
)
def test_bad_override_is_named(override: str, message: str, tmp_path: Path) -> None:
    p = run("seq2seq-train", *override.split(), f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert p.returncode != 0
    assert message in p.stderr.decode() + p.stdout.decode()
    assert "Traceback" not in p.stderr.decode()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("models.attention.hiden_size=3", "Could not override 'models.attention.hiden_size'"),
        ("+models.attention.hiden_size=3", "models.attention: Key 'hiden_size' not in 'ModelConfig'"),
        ("model.attention.score=dott", "model.attention.score='dott' is not valid"),
    ],
)
def test_compare_names_a_bad_per_model_override(override: str, message: str, tmp_path: Path) -> None:
    p = run("seq2seq-compare", override, f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert p.returncode != 0
    assert message in p.stderr.decode()


def test_translate_json_lines_with_beam_and_nbest(compared: Path) -> None:
    ckpt = f"checkpoint={compared / 'attention' / 'best.pt'}"
    p = run("seq2seq-translate", ckpt, "beam=3", "nbest=2", "format=json", stdin="Tom chase Jerry\n\nJerry see Tom\n")
    assert p.returncode == 0, text(p)
    rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert len(rows) == 3 and rows[1] == {}
    assert len(rows[0]["nbest"]) == 2 and rows[0]["nbest"][0]["text"] == rows[0]["text"]
    assert len(rows[2]["attention"]) == len(rows[2]["tokens"])


def test_eval_with_beam_says_which_search(compared: Path, toy_root: Path) -> None:
    ckpt = compared / "attention" / "best.pt"
    p = run("seq2seq-eval", f"checkpoint={ckpt}", f"data.root={toy_root}", "beam=3", "length_penalty=0.6")
    assert p.returncode == 0, text(p)
    assert "beam 3, length penalty gnmt α=0.6" in p.stdout.decode()
    report = json.loads((compared / "attention" / "eval-toy-test-best-beam3-gnmt0.6.json").read_text())
    assert report["search"] == "beam 3, length penalty gnmt α=0.6"


def test_multirun_writes_one_folder_per_model_and_gather_reports_them(toy_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    p = run(
        "seq2seq-train", "-m", "model=attention,luong", "model/attention=dot",
        f"data.root={toy_root}", "trainer.max_steps=2", "trainer.progress=false", "model.hidden_size=32",
        "model.embed_size=16", f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, text(p)
    runs = sorted(c.parent for c in sweep.rglob("best.pt"))
    assert len(runs) == 2 and all(r.parent == sweep for r in runs)  # "model/attention=" makes no sub-folder
    decoders = sorted((d / "config.yaml").read_text().split("decoder: ")[1].split()[0] for d in runs)
    assert decoders == ["bahdanau", "luong"]
    assert all((d / "best.pt").exists() for d in runs)

    out = tmp_path / "gathered"
    p = run("seq2seq-gather", f"runs={sweep}", f"hydra.run.dir={out}", cwd=tmp_path)  # one folder: no brackets
    assert p.returncode == 0, text(p)
    report = json.loads((out / "comparison.json").read_text())
    assert sorted(report["models"]) == ["bahdanau/dot", "luong/dot"]  # named by model
    assert runs[0].name.startswith("0-") and "model:attention" in runs[0].name and not set("=,") & set(runs[0].name)
    e = run("seq2seq-eval", f"checkpoint={runs[0] / 'best.pt'}", f"output={tmp_path / 'e.json'}")
    assert e.returncode == 0, text(e)  # a sweep folder's path goes straight into checkpoint=
    alone = json.loads((tmp_path / "e.json").read_text())
    assert report["models"]["bahdanau/dot"]["alignment_accuracy"] == alone["alignment_accuracy"]
    assert report["models"]["bahdanau/dot"]["bleu"] == alone["bleu"]
    assert all(m["params"] > 0 and m["steps"] == 2 for m in report["models"].values())
    assert "luong/dot decoder" in p.stdout.decode()
    for name in ("comparison.md", "bleu_by_length.png", "attention_heatmap.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0, name


def test_gather_names_a_folder_without_runs_and_leaves_no_empty_report_folder(tmp_path: Path) -> None:
    p = run("seq2seq-gather", f"runs=[{tmp_path}]", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert p.returncode != 0
    assert f"runs: no trained run (best.pt + last.pt) in {tmp_path}" in p.stderr.decode()
    assert not (tmp_path / "out").exists()  # Hydra made it; the failed command removed it


@pytest.mark.parametrize("command", ["seq2seq-eval", "seq2seq-translate", "seq2seq-gather", "seq2seq-average"])
def test_help_shows_the_commands_own_options_only(command: str, tmp_path: Path) -> None:
    p = run(command, "--help", cwd=tmp_path)
    assert p.returncode == 0, text(p)
    shown = p.stdout.decode()
    assert shown.startswith(command + ":")  # what it does, then how to call it
    assert "model/attention" not in shown and "trainer:" not in shown and "lr_schedule" not in shown
    own = {"seq2seq-eval": "checkpoint=???", "seq2seq-translate": "format=text",
           "seq2seq-gather": "runs=???", "seq2seq-average": "last=5"}  # fmt: skip
    assert own[command] in shown


def test_train_help_lists_the_training_groups(tmp_path: Path) -> None:
    shown = run("seq2seq-train", "--help", cwd=tmp_path).stdout.decode()
    assert "model/attention=  [additive], cosine, dot, general, scaled_dot" in shown and "lr_schedule" in shown


@pytest.mark.parametrize(
    ("command", "example"),
    [
        ("seq2seq-translate", "seq2seq-translate checkpoint=runs/demo/attention/best.pt"),
        ("seq2seq-eval", "seq2seq-eval checkpoint=runs/demo/attention/best.pt"),
        ("seq2seq-gather", "seq2seq-gather 'runs=[runs/sweep/"),
    ],
)
def test_a_missing_mandatory_option_is_one_line_with_an_example(command: str, example: str, tmp_path: Path) -> None:
    p = run(command, f"hydra.run.dir={tmp_path / 'out'}", stdin="Tom\n", cwd=tmp_path)
    assert p.returncode != 0
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "is required, e.g. " + example in lines[0]


def test_an_option_no_schema_has_is_refused_even_with_plus(toy_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    p = run("seq2seq-train", f"data.root={toy_root}", "+trainer.epoch=3", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert p.returncode != 0
    assert p.stderr.decode().strip() == (
        "error: trainer.epoch is not an option of seq2seq-train (did you mean trainer.epochs?); "
        "`seq2seq-train --help` lists them"
    )
    assert not run_dir.exists()  # nothing trained, no config.yaml saved with the misspelled key
    p = run("seq2seq-eval", "checkpoint=x.pt", "+beem=5", cwd=tmp_path)
    assert "beem is not an option of seq2seq-eval (did you mean beam?)" in p.stderr.decode()


def test_each_checkpoint_and_search_keeps_its_own_eval_report(compared: Path, toy_root: Path) -> None:
    run_dir = compared / "attention"
    for checkpoint in ("best.pt", "last.pt"):
        p = run("seq2seq-eval", f"checkpoint={run_dir / checkpoint}", f"data.root={toy_root}")
        assert p.returncode == 0, text(p)
    p = run("seq2seq-eval", f"checkpoint={run_dir / 'best.pt'}", f"data.root={toy_root}", "beam=2", "min_len=1")
    assert p.returncode == 0, text(p)
    reports = {f.name: json.loads(f.read_text()) for f in run_dir.glob("eval-toy-test-*.json")}
    assert {"eval-toy-test-best-greedy.json", "eval-toy-test-last-greedy.json",
            "eval-toy-test-best-beam2-gnmt1.0-min1.json"} <= set(reports)  # fmt: skip
    assert reports["eval-toy-test-last-greedy.json"]["checkpoint"].endswith("last.pt")


def test_demo_table_script_writes_the_reports_figures_into_the_readme(compared: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- demo-table:begin -->\nold\n<!-- demo-table:end -->\nafter\n", encoding="utf-8")
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo_table.py"), str(compared), "--readme", str(readme)],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, text(p)
    new = readme.read_text(encoding="utf-8")
    report = json.loads((compared / "comparison.json").read_text())
    attention = report["models"]["attention"]
    assert new.startswith("intro\n<!-- demo-table:begin -->\n| model |")
    assert new.endswith("<!-- demo-table:end -->\nafter\n")
    assert "old" not in new and f"| attention (Bahdanau, additive) | {attention['bleu']:.2f} |" in new
    assert f"| 41+ | 4 | {report['models']['fixed_context']['bleu_by_src_len'][-1]['bleu']:.2f} |" in new
    assert report["bleu_signature"] in new


def test_the_readme_holds_a_demo_table_between_its_markers() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    inside = readme.split("<!-- demo-table:begin -->")[1].split("<!-- demo-table:end -->")[0]
    assert "| attention (Bahdanau, additive) |" in inside and "| fixed_context (Cho) |" in inside


def test_translate_with_closed_stdin_is_one_clear_line(compared: Path) -> None:
    command = f"{BIN / 'seq2seq-translate'} checkpoint={compared / 'attention' / 'best.pt'} <&-"
    p = subprocess.run(["bash", "-c", command], capture_output=True, timeout=120)
    assert p.returncode != 0
    assert p.stderr.decode().strip() == "error: standard input is closed: pipe sentences in, or give input=FILE"


def test_gather_reports_significance_seed_spread_and_encoder_self_attention(toy_root: Path, tmp_path: Path) -> None:
    common = [
        f"data.root={toy_root}", "trainer.max_steps=20", "trainer.batch_size=32", "trainer.progress=false",
        "trainer.threads=1", "model.hidden_size=32", "model.embed_size=16",
    ]  # fmt: skip
    runs = {"seed1": ["seed=1"], "seed2": ["seed=2"], "tf": ["model=transformer", "model.decoder_layers=2"]}
    for name, extra in runs.items():
        p = run("seq2seq-train", *common, *extra, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert p.returncode == 0, text(p)
    out = tmp_path / "report"
    folders = ",".join(str(tmp_path / name) for name in runs)
    p = run("seq2seq-gather", f"runs=[{folders}]", f"hydra.run.dir={out}", cwd=tmp_path)
    assert p.returncode == 0, text(p)
    report = json.loads((out / "comparison.json").read_text())
    first, *others = report["models"]
    assert "significance" not in report["models"][first] and report["significance"]["baseline"] == first
    assert "bs:1000|seed:12345" in report["significance"]["signature"]
    for name in others:
        sig = report["models"][name]["significance"]
        assert sig["delta_bleu"] == pytest.approx(
            report["models"][name]["bleu"] - report["models"][first]["bleu"], abs=0.02
        )
        assert sig["ci95"][0] <= sig["ci95"][1] and 0.0 <= sig["p_value"] <= 1.0
    (group,) = report["seeds"]  # the two runs that differ only in seed
    assert group["seeds"] == [1, 2] and len(group["models"]) == 2
    bleus = [report["models"][n]["bleu"] for n in group["models"]]
    assert group["bleu_mean"] == pytest.approx(sum(bleus) / 2, abs=0.01)
    assert group["bleu_sd"] == pytest.approx(abs(bleus[0] - bleus[1]) / 2**0.5, abs=0.01)
    (tf,) = report["self_attention"]
    assert report["models"][tf]["attention"] == "multi-head scaled_dot"
    assert "encoder self-attention, layer 2 of 2" in report["self_attention"][tf]
    markdown = (out / "comparison.md").read_text()
    assert "ΔBLEU" in markdown and "differ only in seed" in markdown and "encoder_self_attention.png" in markdown
    assert (out / "encoder_self_attention.png").stat().st_size > 0


ENTRY_POINTS = {"train": cli.train, "eval": cli.evaluate, "translate": cli.translate, "compare": cli.compare,
                "gather": cli.gather, "average": cli.average, "serve": cli.serve, "prepare": cli.prepare,
                "export": cli.export, "shortlist": cli.shortlist}  # fmt: skip


def call(command: str, *args: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console script ``seq2seq-<command>`` in this process."""
    monkeypatch.setattr(sys, "argv", [f"seq2seq-{command}", *args])
    ENTRY_POINTS[command]()


@pytest.mark.parametrize(
    ("command", "args", "line"),
    [
        ("train", ["data=toy", "trainer.max_step=20"],
         "trainer.max_step is not an option of seq2seq-train (did you mean trainer.max_steps?); "
         "`seq2seq-train --help` lists them"),
        ("train", ["model=atention"],
         "model=atention is not a config (did you mean model=attention?): "
         "choose one of attention, fixed_context, luong, sutskever, transformer"),
        ("train", ["data=toyy"],
         "data=toyy is not a config (did you mean data=toy?): choose one of multi30k, tatoeba_cmn, toy"),
        ("train", ["-m", "model=attention,luongg"],
         "model=luongg is not a config (did you mean model=luong?): "
         "choose one of attention, fixed_context, luong, sutskever, transformer"),
        ("train", ["model/atention=dot"],
         "model/atention= is not a config group of seq2seq-train (did you mean model/attention=dot?); "
         "its groups: data, model, model/attention, trainer"),
        ("compare", ["model=luong"], "model= is not a config group of seq2seq-compare; its groups: data, trainer"),
        ("train", ["--epochs", "5"], "--epochs is not how options are given: write key=value, e.g. trainer.epochs=5"),
        ("train", ["--max-steps=20"],
         "--max-steps is not how options are given: write key=value, e.g. trainer.max_steps=20"),
        ("train", ["trainer.epochs", "5"],
         "trainer.epochs is not how options are given: write key=value, e.g. trainer.epochs=5"),
        ("eval", ["checkpoint=x.pt", "--beam", "5"],
         "--beam is not how options are given: write key=value, e.g. beam=5"),
        ("train", ["--verbose"],
         "--verbose is not an option: options are key=value (`seq2seq-train --help` lists them)"),
        ("translate", ["checkpoint=x.pt", "Tom chases Jerry"],
         "'Tom chases Jerry' is not an option: seq2seq-translate reads sentences from standard input, "
         "e.g. echo 'Tom chases Jerry' | seq2seq-translate checkpoint=FILE, or input=FILE; on a terminal it prompts"),
        ("translate", ["checkpoint=x.pt", "Tom", "chases", "Jerry"],
         "'Tom chases Jerry' is not an option: seq2seq-translate reads sentences from standard input, "
         "e.g. echo 'Tom chases Jerry' | seq2seq-translate checkpoint=FILE, or input=FILE; on a terminal it prompts"),
        ("train", ["-m", "--cfg", "job"], "--cfg and --multirun do not go together: give one of them"),
    ],
)  # fmt: skip
def test_a_wrong_argument_is_one_line_before_hydra_runs(
    command: str, args: list[str], line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as stopped:
        call(command, *args, monkeypatch=monkeypatch)
    assert stopped.value.code == "error: " + line  # sys.exit(text): text on stderr, exit status 1


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "model=attention,luong", "model/attention=dot,general", "hydra.sweep.dir=x"],
        ["--cfg", "job", "+trainer.extra=1", "~search", "hydra.run.dir=x", "hydra/job_logging=none"],
        ["-m", "model=glob(*)", "data=choice(toy,multi30k)", "seed=range(1,3)"],
        ["--config-name", "example", "model.rnn=lstm"],
        ["--info", "defaults", "trainer=real"],
        ["--hydra-help"],
        ["-sc", "install=bash"],
    ],
)
def test_what_hydra_reads_passes_the_check(args: list[str]) -> None:
    check_arguments("train", args, cli.hydra_flags())


def test_a_wrong_argument_ends_the_command_with_one_line_and_status_1(tmp_path: Path) -> None:
    p = run("seq2seq-train", "data=toy", "trainer.max_step=20", cwd=tmp_path)
    assert p.returncode == 1 and p.stdout == b""
    assert p.stderr.decode() == (
        "error: trainer.max_step is not an option of seq2seq-train (did you mean trainer.max_steps?); "
        "`seq2seq-train --help` lists them\n"
    )
    p = run("seq2seq-translate", "checkpoint=x.pt", "Tom chases Jerry", cwd=tmp_path)
    assert p.returncode == 1 and len(p.stderr.decode().splitlines()) == 1


def test_hydra_flags_still_work(tmp_path: Path) -> None:
    p = run("seq2seq-train", "--cfg", "job", "trainer.epochs=3", "+trainer.extra=1", "~search", cwd=tmp_path)
    assert p.returncode == 0, text(p)
    assert "  epochs: 3\n" in p.stdout.decode() and "extra: 1" in p.stdout.decode()
    p = run("seq2seq-train", "--hydra-help", cwd=tmp_path)
    assert p.returncode == 0 and "Hydra (" in p.stdout.decode() and "--multirun,-m" in p.stdout.decode()


@pytest.mark.parametrize("command", sorted(USAGE))
def test_help_says_what_the_command_does_its_options_groups_and_examples(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    call(command, "--help", monkeypatch=monkeypatch)
    shown = capsys.readouterr().out
    assert shown.startswith(f"seq2seq-{command}: {USAGE[command].does[:40]}")
    assert "Main options, KEY=VALUE" in shown and "Other options" in shown and "Examples:" in shown
    assert all(f"\n  {example}\n" in shown for example in USAGE[command].examples)
    assert "powered by Hydra" not in shown
    lines = shown.splitlines()
    if command in ("train", "compare"):
        assert "  trainer=          default, real, [toy], transformer" in lines
        assert any(line.startswith("  trainer.batch_size=64 ") and "sentences per batch" in line for line in lines)


def test_help_shows_the_values_the_overrides_give(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    call("train", "model=transformer", "trainer.epochs=7", "--help", monkeypatch=monkeypatch)
    shown = capsys.readouterr().out.splitlines()
    assert "  model=            attention, fixed_context, luong, sutskever, [transformer]" in shown
    assert any(line.startswith("  model.encoder=self_attention ") for line in shown)
    assert any(line.startswith("  trainer.epochs=7") for line in shown)


@pytest.mark.parametrize("command", sorted(USAGE))
def test_every_option_help_shows_is_an_option(command: str) -> None:
    assert set(SCHEMAS) == set(USAGE)
    assert set(USAGE[command].options.split()) - {"hydra.run.dir"} <= set(schema_options(command))


def test_prepare_makes_the_store_once_then_finds_it_and_a_bad_option_is_one_line(
    toy_root: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    args = ["data=toy", f"data.root={toy_root}", f"data.store_dir={store}", "data.tokenizer.cache_dir="]
    figures = r"300 pairs, [\d,]+ source \+ [\d,]+ target tokens, [\d,]+ bytes \([\d.]+ bytes a token, [\d.]+ a pair\)"
    first = run("seq2seq-prepare", *args, cwd=tmp_path)
    assert first.returncode == 0, text(first)
    (folder,) = [p for p in store.iterdir() if p.is_dir()]
    assert re.fullmatch(rf"prepared: {re.escape(str(folder))}\n{figures}, [\d.]+ s\n", first.stdout.decode())
    second = run("seq2seq-prepare", *args, cwd=tmp_path)
    assert second.returncode == 0, text(second)
    assert re.fullmatch(rf"already prepared: {re.escape(str(folder))}\n{figures}, [\d.]+ s\n", second.stdout.decode())
    assert [p for p in store.iterdir() if p.is_dir()] == [folder]
    for bad, line in [
        ("data.store_dri=x", "error: data.store_dri is not an option of seq2seq-prepare"),
        ("data.train_weights=[1,2]", "error: data.train_weights=[1.0, 2.0] gives 2 weights for 1 training corpora"),
        (f"data.root={tmp_path / 'nowhere'}", f"error: {tmp_path / 'nowhere' / 'train.en'}: file not found"),
    ]:
        p = run("seq2seq-prepare", *args, bad, cwd=tmp_path)
        assert p.returncode == 1 and p.stdout == b"", text(p)
        assert len(p.stderr.decode().splitlines()) == 1 and p.stderr.decode().startswith(line), text(p)
