"""seq2seq against fairseq (the real toolkit, installed beside it), side by side in one run.

    python benchmarks/peers.py                       # training and decoding, 2 rounds, alternating
    python benchmarks/peers.py --multi30k 300        # also the Multi30k recipe, 300 updates each
    python benchmarks/peers.py --multi30k 200 --no-reference   # the Multi30k recipe alone
    python benchmarks/peers.py --quick               # seq2seq alone, a few updates (the test suite's)
    python benchmarks/peers.py --json peers.json     # the same figures as JSON

What it does (the peers' reference configuration, ``../shared/peers/README.md``):

1. installs fairseq 0.12.2 with ``../shared/peers/install_peers.sh`` into ``--cache`` (default
   ``~/.cache/seq2seq-peers``, outside the checkout) when it is missing, and writes the peers'
   synthetic corpus there with their ``make_data.py`` (20k pairs, 2,000-word vocabularies);
2. trains each system ``--steps`` updates of 64 sentences (Adam 1e-3, no dropout, 2 threads),
   alternating systems for ``--rounds`` rounds, each in its own process: source+target words/s
   over the steady updates (after the first ``--skip``, from fairseq's log clock, which ticks in
   whole seconds, and seq2seq's own timer) and the process's peak RSS;
3. decodes the 500 test sentences with each system's trained model, batch 64, greedy and beam 5,
   every output forced to 16 words (as the peers' ``run_decode_fixed.sh``), with each toolkit's
   own decoding timer; seq2seq also with int8 weights (``--quantize none,int8``, the default);
4. with ``--multi30k N``: the README's Multi30k recipe against ``fairseq-train --arch lstm`` with
   the peers' Multi30k settings (joint BPE 8k pieces written by seq2seq's own SentencePiece model,
   so both read the same pieces), N updates each: target tokens/s.

seq2seq runs the same architecture as fairseq (``lstm-general``: bi-LSTM encoder 256 per
direction, LSTM decoder 512 with input feeding, Luong's general score, final encoder states as
the first decoder state) and the OpenNMT-py/JoeyNMT one (``gru-additive``). Figures are ratios to
fairseq measured in the same run: this machine is shared and noisy, so only ratios travel.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
BATCH = 64
FIXED_LEN = 16
ARCHS = {
    # the peers' two architectures, as seq2seq-train overrides
    "lstm-general": ["model=luong", "model/attention=general", "model.rnn=lstm", "model.bridge=copy"],
    "gru-additive": ["model=luong", "model/attention=additive", "model.rnn=gru", "model.bridge=linear"],
}
COMMON = [
    "model.embed_size=256", "model.hidden_size=512", "model.dropout=0.0", "model.input_feeding=true",
    "trainer.batch_size=64", "trainer.max_tokens=0", "trainer.lr=0.001", "trainer.grad_clip=0",
    "trainer.progress=false",
]  # fmt: skip
# The README's Multi30k recipe (docs/results.md) and fairseq's LSTM at the peers' Multi30k settings
M30K = [
    "data=multi30k", "data.tokenizer.joint=true", "trainer=real", "trainer.progress=false", "model=luong",
    "model.rnn=lstm", "model.bridge=copy", "model.hidden_size=512", "model.embed_size=256", "model.dropout=0.3",
    "model.param_init=0.1", "model.tie_embeddings=true", "trainer.max_tokens=2000", "trainer.lr_schedule=anneal",
    "trainer.lr_anneal=0.25",
]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# workers: one system's measurement in a process of its own (seq2seq's, in this interpreter)


def word_overrides(data: Path) -> list[str]:
    """The peers' corpus as a seq2seq data config: word level, identity normalisation."""
    return [
        "data=toy", "data.name=peers", f"data.root={data}", "data.src_lang=src", "data.tgt_lang=tgt",
        "data.tokenizer.src_vocab_size=4000", "data.tokenizer.tgt_vocab_size=4000", "data.tokenizer.cache_dir=",
        "data.bleu_tokenize=none",
    ]  # fmt: skip


def worker_train(args: argparse.Namespace) -> dict[str, Any]:
    """Train ``args.steps`` updates and time those after ``args.skip``; save the model for decoding."""
    import torch

    from seq2seq.api import compose_config, without_hydra
    from seq2seq.config import check_train
    from seq2seq.data.prepare import prepare_data
    from seq2seq.training import Trainer

    overrides = [*args.overrides, f"trainer.threads={args.threads}", f"trainer.precision={args.precision}"]
    cfg = check_train(without_hydra(compose_config("train", overrides)))
    data = prepare_data(cfg.data, 1)
    trainer = Trainer(cfg, Path(args.out), data)
    batches = [b for epoch in range(1, 100) for b in trainer.epoch_batches(epoch)][: args.steps]
    src_words = tgt_tokens = 0
    start = time.perf_counter()
    for i, index in enumerate(batches):
        if i == args.skip:
            start, src_words, tgt_tokens = time.perf_counter(), 0, 0
        trainer.train_step([index])
        src_words += sum(len(trainer.src_ids[j]) for j in index)
        tgt_tokens += sum(len(trainer.tgt_ids[j]) + 1 for j in index)
    seconds = time.perf_counter() - start
    trainer.save()
    return {
        "steps": len(batches) - args.skip,
        "seconds": seconds,
        "s_per_step": seconds / (len(batches) - args.skip),
        "tgt_tokens_per_s": tgt_tokens / seconds,  # with EOS, as fairseq's wps
        "words_per_s": (src_words + tgt_tokens - (len(batches) - args.skip) * BATCH) / seconds,
        "params": trainer.model.num_parameters,
        "threads": torch.get_num_threads(),
    }


def worker_decode(args: argparse.Namespace) -> dict[str, Any]:
    """Decode ``args.src`` with the trained model, outputs forced to ``FIXED_LEN`` words: with
    its fp32 weights, then (``--quantize int8``) with int8 linear and LSTM layers."""
    import torch

    from seq2seq.checkpoint import load_model
    from seq2seq.config import SearchConfig
    from seq2seq.data.batching import bucket_batches, collate
    from seq2seq.runfolder import LAST
    from seq2seq.search import search

    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {}
    for quantize in args.quantize.split(","):
        loaded = load_model(Path(args.out) / LAST, torch.device("cpu"), quantize)
        model, src_tok = loaded.model, loaded.src_tokenizer
        sources = src_tok.encode_batch([line.rstrip("\n") for line in open(args.src, encoding="utf-8")])
        batches = [collate([sources[i] for i in idx]) for idx in bucket_batches([len(s) for s in sources], BATCH)]
        for beam in (1, 5):
            cfg = SearchConfig(beam=beam, max_len_a=0.0, max_len_b=FIXED_LEN, min_len=FIXED_LEN)
            start = time.perf_counter()
            tokens = 0
            with torch.inference_mode():
                for batch in batches:
                    hyps = search(model, batch.src, batch.src_mask, cfg=cfg)
                    tokens += sum(len(h[0].tokens) for h in hyps)
            seconds = time.perf_counter() - start
            assert tokens == len(sources) * FIXED_LEN, (tokens, len(sources))
            result[f"{quantize}-beam{beam}"] = {"seconds": seconds, "sentences_per_s": len(sources) / seconds}
    return result


# ----------------------------------------------------------------------------------------------
# the driver


def run(cmd: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> tuple[int, float, float]:
    """Run ``cmd`` with output to ``log``: (exit status, wall seconds, peak RSS in MiB of that process)."""
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024


def check(rc: int, log: Path, what: str) -> None:
    if rc != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        sys.exit(f"{what} failed (exit {rc}); the end of {log}:\n{tail}")


def install(cache: Path, env: dict[str, str]) -> Path:
    venv = cache / "fairseq-venv"
    if not (venv / "bin" / "fairseq-train").exists():
        print(f"installing fairseq into {venv} (about 5 minutes, once)", flush=True)
        log = cache / "install-fairseq.log"
        rc, _, _ = run(["bash", str(PEERS / "install_peers.sh"), str(cache), "fairseq"], log, env)
        check(rc, log, "installing fairseq")
    return venv


def make_data(cache: Path, env: dict[str, str]) -> Path:
    data = cache / "data"
    if not (data / "test.tgt").exists():
        log = cache / "make_data.log"
        check(run([sys.executable, str(PEERS / "make_data.py"), str(data)], log, env)[0], log, "make_data.py")
    tiny = (
        [line for line in open(data / "valid.src", encoding="utf-8")][:8],
        [line for line in open(data / "valid.tgt", encoding="utf-8")][:8],
    )
    for ext, lines in zip(("src", "tgt"), tiny, strict=True):
        (data / f"tiny.{ext}").write_text("".join(lines), encoding="utf-8")
    return data


def fairseq_steady(log: Path) -> tuple[int, int, float] | None:
    """(first update, last update, seconds between them) from fairseq's train_inner log lines."""
    points = [
        (int(m.group(2)), datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp())
        for m in re.finditer(
            r"^(\S+ \S+) \| INFO \| train_inner \|.*?num_updates[= ](\d+)", log.read_text(errors="replace"), re.M
        )
    ]
    return (points[0][0], points[-1][0], points[-1][1] - points[0][1]) if len(points) >= 2 else None


def fairseq_wps(log: Path) -> float | None:
    """fairseq's own target tokens/s (``wps``), averaged over its log intervals after the first."""
    values = [float(v) for v in re.findall(r"train_inner \|.*?wps[= ]([\d.]+)", log.read_text(errors="replace"))]
    return statistics.mean(values[1:]) if len(values) >= 2 else None


def fairseq_train_cmd(venv: Path, bin_dir: Path, steps: int, save: Path, interval: int) -> list[str]:
    return [
        str(venv / "bin" / "fairseq-train"),
        str(bin_dir),
        "--source-lang",
        "src",
        "--target-lang",
        "tgt",
        "--arch",
        "lstm",
        "--encoder-embed-dim",
        "256",
        "--encoder-hidden-size",
        "256",
        "--encoder-layers",
        "1",
        "--encoder-bidirectional",
        "--decoder-embed-dim",
        "256",
        "--decoder-hidden-size",
        "512",
        "--decoder-layers",
        "1",
        "--decoder-out-embed-dim",
        "512",
        "--decoder-attention",
        "True",
        "--dropout",
        "0",
        "--encoder-dropout-in",
        "0",
        "--encoder-dropout-out",
        "0",
        "--decoder-dropout-in",
        "0",
        "--decoder-dropout-out",
        "0",
        "--criterion",
        "cross_entropy",
        "--optimizer",
        "adam",
        "--adam-betas",
        "(0.9, 0.999)",
        "--lr",
        "0.001",
        "--lr-scheduler",
        "fixed",
        "--batch-size",
        "64",
        "--required-batch-size-multiple",
        "1",
        "--max-update",
        str(steps),
        "--max-source-positions",
        "100",
        "--max-target-positions",
        "100",
        "--disable-validation",
        "--save-dir",
        str(save),
        "--no-epoch-checkpoints",
        "--save-interval-updates",
        str(steps),
        "--keep-interval-updates",
        "1",
        "--cpu",
        "--num-workers",
        "0",
        "--seed",
        "1",
        "--log-format",
        "simple",
        "--log-interval",
        str(interval),
    ]  # fmt: skip (as ../shared/peers/configs/fairseq_lstm_train.sh)


def fairseq_decode(venv: Path, bin_dir: Path, ckpt: Path, beam: int, log: Path, env: dict[str, str]) -> float:
    cmd = [
        str(venv / "bin" / "fairseq-generate"), str(bin_dir), "--source-lang", "src", "--target-lang", "tgt",
        "--path", str(ckpt), "--gen-subset", "test", "--batch-size", str(BATCH), "--beam", str(beam),
        "--nbest", "1", "--min-len", str(FIXED_LEN), "--max-len-a", "0", "--max-len-b", str(FIXED_LEN), "--cpu",
        "--num-workers", "0",
    ]  # fmt: skip
    rc, _, _ = run(cmd, log, env, cwd=log.parent)
    check(rc, log, "fairseq-generate")
    m = re.search(r"Translated ([\d,]+) sentences .*? in ([\d.]+)s", log.read_text(errors="replace"))
    if not m:
        sys.exit(f"no timing line in {log}")
    return int(m.group(1).replace(",", "")) / float(m.group(2))


def seq2seq_worker(task: str, out: Path, overrides: list[str], args: argparse.Namespace, **extra: Any) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", task, "--out", str(out)]
    cmd += ["--threads", str(args.threads), "--steps", str(extra.get("steps", args.steps))]
    cmd += ["--skip", str(extra.get("skip", args.skip)), "--precision", extra.get("precision", "fp32")]
    if "src" in extra:
        cmd += ["--src", str(extra["src"]), "--quantize", args.quantize]
    return cmd + ["--", *overrides]


def worker_result(log: Path) -> dict[str, Any]:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("RESULT ")]
    if not lines:
        sys.exit(f"no result in {log}")
    return json.loads(lines[-1][len("RESULT ") :])


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(rows: list[dict[str, Any]]) -> str:
    """One Markdown table: the median of the rounds, and the ratio to fairseq's median."""
    keys: list[tuple[str, str, str, str]] = []
    for r in rows:
        key = (r["task"], r["system"], r["arch"], r["precision"])
        if key not in keys:
            keys.append(key)

    def median(key: tuple[str, str, str, str], field: str) -> float | None:
        values = [r[field] for r in rows if (r["task"], r["system"], r["arch"], r["precision"]) == key and r.get(field)]
        return statistics.median(values) if values else None

    lines = [
        "| task | system | architecture | precision | value | unit | vs fairseq | peak RSS MiB | rounds |",
        "|---|---|---|---|---:|---|---:|---:|---:|",
    ]
    for key in keys:
        task = key[0]
        value = median(key, "value")
        peer = next((k for k in keys if k[0] == task and k[1] == "fairseq"), None)
        base = median(peer, "value") if peer is not None else None
        unit = next(r["unit"] for r in rows if r["task"] == task)
        ratio = f"{value / base:.2f}x" if value and base else "-"
        rss = median(key, "peak_rss_mib")
        n = sum(1 for r in rows if (r["task"], r["system"], r["arch"], r["precision"]) == key)
        lines.append(
            f"| {task} | {key[1]} | {key[2]} | {key[3]} | {value:,.1f} | {unit} | {ratio} | "
            f"{'-' if rss is None else f'{rss:,.0f}'} | {n} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seq2seq-peers"
    p.add_argument("--cache", type=Path, default=cache, help="fairseq, its data and the runs (outside the checkout)")
    p.add_argument("--steps", type=int, default=300, help="training updates per system")
    p.add_argument("--skip", type=int, default=50, help="updates not timed (start-up, warm-up)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, each system once per round, alternating")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--archs", default="lstm-general,gru-additive", help="seq2seq architectures (comma-separated)")
    p.add_argument("--precision", default="fp32", help="fp32, bf16 or both (fp32,bf16) for seq2seq")
    p.add_argument("--no-decode", action="store_true", help="training only")
    p.add_argument("--quantize", default="none,int8", help="seq2seq's decoding: fp32 weights (none), int8 or both")
    p.add_argument("--no-reference", action="store_true", help="skip the reference configuration (with --multi30k)")
    p.add_argument("--multi30k", type=int, default=0, metavar="N", help="also the Multi30k recipe, N updates each")
    p.add_argument("--multi30k-root", type=Path, default=ROOT.parent / "shared" / "corpora" / "multi30k")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--quick", action="store_true", help="seq2seq alone, a few updates, no peers (seconds)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--src", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        result = worker_train(args) if args.worker == "train" else worker_decode(args)
        print("RESULT " + json.dumps(result), flush=True)
        return

    import torch

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", PYTHONWARNINGS="ignore")  # fmt: skip
    # (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD: fairseq-generate's own checkpoints hold pickled objects;
    #  seq2seq ignores it: its loader always passes weights_only=True)
    precisions = args.precision.split(",")
    archs = args.archs.split(",")
    if args.quick:
        args.steps, args.skip, args.rounds, archs = 6, 2, 1, archs[:1]
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="peers-")) if args.quick else args.cache / "runs"
    work.mkdir(parents=True, exist_ok=True)
    if args.quick:
        from seq2seq.data.toy import write_corpus  # a small stand-in for the peers' corpus

        data = work / "data"
        write_corpus(data, {"train": 400, "valid": 8, "test": 16}, seed=1, src_lang="src", tgt_lang="tgt")
        venv = None
    else:
        args.cache.mkdir(parents=True, exist_ok=True)
        venv = install(args.cache, env)
        data = make_data(args.cache, env)
        bin_dir = args.cache / "fairseq" / "bin"
        if not (bin_dir / "dict.src.txt").exists():
            log = args.cache / "preprocess.log"
            cmd = [str(venv / "bin" / "fairseq-preprocess"), "--source-lang", "src", "--target-lang", "tgt",
                   "--trainpref", str(data / "train"), "--validpref", str(data / "tiny"), "--testpref",
                   str(data / "test"), "--destdir", str(bin_dir), "--workers", "1"]  # fmt: skip
            check(run(cmd, log, env)[0], log, "fairseq-preprocess")

    def add(task: str, system: str, arch: str, precision: str, value: float, unit: str, **more: Any) -> None:
        rows.append({"task": task, "system": system, "arch": arch, "precision": precision, "value": round(value, 1),
                     "unit": unit, **more})  # fmt: skip
        print(f"  {task:15} {system:8} {arch:13} {precision:5} {value:10,.1f} {unit}", flush=True)

    print(f"work in {work}; {args.rounds} round(s) of {args.steps} updates, {args.threads} threads", flush=True)
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}", flush=True)
        systems: list[tuple[str, str, str]] = [("seq2seq", a, prec) for a in archs for prec in precisions]
        if args.no_reference:
            systems = []
        elif venv is not None:
            systems.insert(round_ % 2, ("fairseq", "lstm-general", "fp32"))  # alternate who goes first
        for system, arch, precision in systems:
            out = work / f"{system}-{arch}-{precision}-r{round_}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            log = out / "train.log"
            if system == "fairseq":
                assert venv is not None
                cmd = fairseq_train_cmd(venv, bin_dir, args.steps, out / "ckpt", args.skip)
                rc, _, rss = run(cmd, log, env, cwd=out)
                check(rc, log, "fairseq-train")
                steady = fairseq_steady(log)
                if steady is None:
                    sys.exit(f"fairseq logged fewer than two intervals in {log}: give more --steps")
                first, last, seconds = steady
                words = 2 * BATCH * mean_words(data / "train.tgt") * (last - first) / seconds
                add("train", system, arch, precision, words, "words/s", peak_rss_mib=round(rss))
            else:
                overrides = word_overrides(data) + ARCHS[arch] + COMMON
                rc, _, rss = run(seq2seq_worker("train", out, overrides, args, precision=precision), log, env)
                check(rc, log, "seq2seq training")
                res = worker_result(log)
                words = 2 * BATCH * mean_words(data / "train.tgt") / res["s_per_step"]
                add("train", system, arch, precision, words, "words/s", peak_rss_mib=round(rss), params=res["params"])
            if args.no_decode:
                continue
            for beam in (1, 5):
                task = "decode_greedy" if beam == 1 else "decode_beam5"
                dlog = out / f"{task}.log"
                if system == "fairseq":
                    assert venv is not None
                    value = fairseq_decode(venv, bin_dir, out / "ckpt" / "checkpoint_last.pt", beam, dlog, env)
                    add(task, system, arch, precision, value, "sentences/s")
            if system == "seq2seq":
                dlog = out / "decode.log"
                cmd = seq2seq_worker("decode", out, [], args, src=data / "test.src")
                rc, _, rss = run(cmd, dlog, env)
                check(rc, dlog, "seq2seq decoding")
                res = worker_result(dlog)
                for quantize in args.quantize.split(","):
                    shown = precision if quantize == "none" else quantize  # int8: decoding the fp32-trained model
                    for beam, task in ((1, "decode_greedy"), (5, "decode_beam5")):
                        value = res[f"{quantize}-beam{beam}"]["sentences_per_s"]
                        add(task, system, arch, shown, value, "sentences/s")
        if args.multi30k and venv is not None:
            multi30k_round(args, venv, work, round_, env, add)

    header = (
        f"torch {torch.__version__}, {args.threads} threads, {cpu_model()} "
        f"({torch.backends.cpu.get_cpu_capability()}), Python {platform.python_version()}, "
        f"{datetime.now().strftime('%Y-%m-%d %H:%M')}; median of {args.rounds} round(s)"
    )
    print("\n" + header + "\n\n" + table(rows))
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu_model(), "torch": torch.__version__, "threads": args.threads,
                        "steps": args.steps, "rounds": args.rounds, "rows": rows}, indent=1) + "\n",
            encoding="utf-8",
        )  # fmt: skip


def mean_words(path: Path) -> float:
    lines = open(path, encoding="utf-8").read().splitlines()
    return sum(len(line.split()) for line in lines) / len(lines)


def multi30k_round(
    args: argparse.Namespace, venv: Path, work: Path, round_: int, env: dict[str, str], add: Any
) -> None:
    """The README's Multi30k recipe against fairseq's LSTM recipe: target tokens/s, N updates each."""
    root = args.multi30k_root
    pieces = args.cache / "multi30k-pieces"
    bin_dir = args.cache / "multi30k-bin"
    overrides = [*M30K, f"data.root={root}"]
    if not (bin_dir / "dict.de.txt").exists():
        write_pieces(overrides, pieces)
        log = args.cache / "multi30k-preprocess.log"
        cmd = [str(venv / "bin" / "fairseq-preprocess"), "--source-lang", "de", "--target-lang", "en",
               "--trainpref", str(pieces / "train"), "--validpref", str(pieces / "valid"), "--joined-dictionary",
               "--destdir", str(bin_dir), "--workers", "1"]  # fmt: skip
        check(run(cmd, log, env)[0], log, "fairseq-preprocess (Multi30k)")
    order = [("seq2seq", "fairseq"), ("fairseq", "seq2seq")][round_ % 2]
    for system in order:
        out = work / f"m30k-{system}-r{round_}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        log = out / "train.log"
        if system == "fairseq":
            cmd = [str(venv / "bin" / "fairseq-train"), str(bin_dir), "--source-lang", "de", "--target-lang", "en",
                   "--arch", "lstm", "--encoder-embed-dim", "256", "--encoder-hidden-size", "256",
                   "--encoder-bidirectional", "--decoder-embed-dim", "256", "--decoder-hidden-size", "512",
                   "--decoder-out-embed-dim", "512", "--dropout", "0.3", "--criterion", "label_smoothed_cross_entropy",
                   "--label-smoothing", "0.1", "--optimizer", "adam", "--adam-betas", "(0.9, 0.999)", "--lr", "0.001",
                   "--lr-scheduler", "reduce_lr_on_plateau", "--lr-shrink", "0.5", "--lr-patience", "0",
                   "--clip-norm", "1.0", "--max-tokens", "4000", "--max-update", str(args.multi30k),
                   "--disable-validation", "--no-save", "--cpu", "--num-workers", "0", "--seed", "1",
                   "--log-format", "simple", "--log-interval", "25"]  # fmt: skip
            rc, _, rss = run(cmd, log, env, cwd=out)
            check(rc, log, "fairseq-train (Multi30k)")
            wps = fairseq_wps(log)
            if wps is None:
                sys.exit(f"fairseq logged fewer than two intervals in {log}")
            add("train_multi30k", system, "lstm-general", "fp32", wps, "tokens/s", peak_rss_mib=round(rss))
        else:
            cmd = seq2seq_worker("train", out, overrides, args, steps=args.multi30k, skip=min(25, args.multi30k // 4))
            rc, _, rss = run(cmd, log, env)
            check(rc, log, "seq2seq training (Multi30k)")
            res = worker_result(log)
            add("train_multi30k", system, "lstm-general", "fp32", res["tgt_tokens_per_s"], "tokens/s",
                peak_rss_mib=round(rss))  # fmt: skip


def write_pieces(overrides: list[str], folder: Path) -> None:
    """Multi30k as seq2seq's joint SentencePiece pieces, one file per split and side, for fairseq."""
    from seq2seq.api import compose_config, without_hydra
    from seq2seq.config import check_train
    from seq2seq.data.corpus import load_split
    from seq2seq.data.prepare import prepare_data

    cfg = check_train(without_hydra(compose_config("train", overrides)))
    data = prepare_data(cfg.data, 0)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        corpus = load_split(cfg.data.root, split, "de", "en", drop_empty=True)
        for lang, lines, tok in (("de", corpus.src, data.src_tokenizer), ("en", corpus.tgt, data.tgt_tokenizer)):
            text = "".join(" ".join(tok.pieces(line)) + "\n" for line in lines)
            (folder / f"{split}.{lang}").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
