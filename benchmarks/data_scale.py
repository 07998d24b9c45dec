"""Corpora of 100k to millions of pairs: what preparing costs, and what a training process holds.

    python benchmarks/data_scale.py                               # 100k, 1M and 5M pairs
    python benchmarks/data_scale.py --sizes 100000 1000000 --processes 1 2 --work ../scale-scratch

For each size, a corpus is written outside the checkout (``--work``): Multi30k's training pairs
(from ``../shared/corpora/multi30k``, or ``--source DIR`` holding train.de/train.en) repeated in
a shuffled order until it has that many pairs. Then, each in a fresh process:

- ``seq2seq-prepare`` (tokenizers on a sample of ``data.tokenizer.sample_size`` pairs, the ids
  into the store): wall time, peak RSS, the store's bytes per token and per pair;
- a training run on the prepared store, once per ``--processes`` entry (2: ``torchrun``): the
  time from the process's start to the end of its first update, and its peak RSS (the largest
  process's under torchrun); ``--steps`` updates of the demo's attention model on batches of at
  most 1,500 tokens (so that no batch drawn needs much more memory than another), no validation
  beyond a 20-sentence one at the end.

Peak RSS (``ru_maxrss``) counts the pages of the store's files a process has touched: they are
the page cache's, shared by every process that maps them and dropped under memory pressure, and
the kernel maps 64 KiB around each page read, so a few hundred random sentences bring in tens of
MiB. "Own memory" is the peak of ``RssAnon`` (sampled every 20 ms): what the process alone
holds (the index, the epoch's batches, the model, the activations). Figures
depend on the machine: print ``lscpu``'s model name beside them, compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "corpora" / "multi30k"


def write_corpus(folder: Path, pairs: int, source: Path, seed: int = 1) -> None:
    """``pairs`` pairs of ``source``'s train.de/train.en (repeated, each pass shuffled) into
    ``folder``'s train.*, and its first 200 pairs as valid.*."""
    de = (source / "train.de").read_text(encoding="utf-8").splitlines()
    en = (source / "train.en").read_text(encoding="utf-8").splitlines()
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(folder / "train.de", "w", encoding="utf-8") as fd, open(folder / "train.en", "w", encoding="utf-8") as fe:
        left = pairs
        while left > 0:
            order = list(range(len(de)))
            rng.shuffle(order)
            for i in order[:left]:
                fd.write(de[i] + "\n")
                fe.write(en[i] + "\n")
            left -= len(order)
    for lang, lines in (("de", de), ("en", en)):
        (folder / f"valid.{lang}").write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``command``; its wall seconds, peak RSS in MiB (the largest of it and its children)
    and its output. Fails loudly when the command fails."""
    start = time.perf_counter()
    p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out = p.stdout.read() if p.stdout else ""
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({p.returncode}):\n{out[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, out


def data_args(root: Path, store: Path, threads: int) -> list[str]:
    return [
        "data=multi30k", f"data.root={root}", f"data.store_dir={store}", "data.tokenizer.cache_dir=",
        f"data.tokenizer.threads={threads}",
    ]  # fmt: skip


def child(args: argparse.Namespace) -> None:
    """One training process (or one of torchrun's) on the store ``seq2seq-prepare`` made (the same
    data settings): train ``--steps`` updates and print, as JSON, the seconds from this process's
    start to the end of its first update, its peak RSS and whether it found the store made."""
    import torch

    from seq2seq.api import compose_config, without_hydra
    from seq2seq.data import prepare
    from seq2seq.training import Trainer, train_run

    started = float(os.environ["SCALE_STARTED"])
    first: list[float] = []
    step = Trainer.train_step

    def timed(self: Trainer, group: list) -> tuple[float, int, bool]:
        result = step(self, group)
        if not first:
            first.append(time.time() - started)
        return result

    Trainer.train_step = timed  # type: ignore[method-assign]
    anon = AnonPeak()
    torch.set_num_threads(1)
    overrides = [
        *data_args(Path(args.root), Path(args.store), args.threads), "model=attention",
        f"trainer.max_steps={args.steps}", "trainer.progress=false", "trainer.threads=1",
        "trainer.valid_max_sentences=20", "trainer.batch_size=256", "trainer.max_tokens=1500",
    ]  # fmt: skip
    made: list[bool] = []
    opened = prepare.open_store

    def watched(*a: object) -> object:
        store = opened(*a)
        made.append(store.info.made)
        return store

    prepare.open_store = watched  # type: ignore[assignment]
    train_run(without_hydra(compose_config("train", overrides)), Path(args.out))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"rank": int(os.environ.get("RANK", "0")), "first_update_s": first[0], "rss_mib": rss, "made": made}
    row["anon_mib"] = anon.stop()
    print("SCALE " + json.dumps(row))


class AnonPeak:
    """The largest ``RssAnon`` of this process (its own memory: not the pages of mapped files, which
    the kernel shares between processes and may drop), sampled every 20 ms in a thread."""

    def __init__(self) -> None:
        self.peak, self.done = 0, threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, anon_kib())

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return max(self.peak, anon_kib()) / 1024


def anon_kib() -> int:
    match = re.search(r"RssAnon:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def train(root: Path, store: Path, steps: int, processes: int, threads: int, work: Path) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    script = [str(Path(__file__).resolve()), "--child", "--root", str(root), "--store", str(store)]
    script += ["--steps", str(steps), "--out", str(out), "--threads", str(threads)]
    env = {**os.environ, "SCALE_STARTED": repr(time.time()), "OMP_NUM_THREADS": "1"}
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={processes}", *script]
    _, peak, text = run(command, env)
    rows = [json.loads(m) for m in re.findall(r"^SCALE (.*)$", text, re.M)]
    if len(rows) != processes or any(r["made"] != [False] for r in rows):
        raise SystemExit(f"expected {processes} reports of a store found made, got:\n{text[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return {
        "first_update_s": max(r["first_update_s"] for r in rows),
        "rss_mib": max(r["rss_mib"] for r in rows),
        "anon_mib": max(r["anon_mib"] for r in rows),
        "wait4_rss_mib": peak,
    }


def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return re.search(r"Model name:\s*(.*)", text).group(1).strip()  # type: ignore[union-attr]
    except (OSError, subprocess.CalledProcessError, AttributeError):
        return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="SentencePiece's training threads (0: every core)")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "seq2seq-data-scale")
    p.add_argument("--source", type=Path, default=SHARED)
    p.add_argument("--keep", action="store_true", help="keep the corpora and stores in --work")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if not (args.source / "train.de").is_file():
        raise SystemExit(f"{args.source}: no train.de/train.en (give --source DIR)")
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; SentencePiece threads: {args.threads or os.cpu_count()}")
    header = "| pairs | prepare | prepare peak RSS | store bytes/token | store bytes/pair |"
    header += "".join(
        f" {n} proc: first update | {n} proc: peak RSS/process | {n} proc: peak own memory/process |"
        for n in args.processes
    )
    print(header)
    print("|" + "---:|" * (5 + 3 * len(args.processes)))
    for size in args.sizes:
        root, store = args.work / f"corpus-{size}", args.work / f"store-{size}"
        if not (root / "train.en").is_file():
            write_corpus(root, size, args.source)
        shutil.rmtree(store, ignore_errors=True)
        seconds, peak, text = run([str(BIN / "seq2seq-prepare"), *data_args(root, store, args.threads)])
        figures = re.search(r"([\d,]+) pairs, ([\d,]+) source \+ ([\d,]+) target tokens, ([\d,]+) bytes", text)
        if figures is None:
            raise SystemExit(f"unexpected seq2seq-prepare output:\n{text}")
        pairs, src, tgt, size_bytes = (int(g.replace(",", "")) for g in figures.groups())
        row = f"| {pairs:,} | {seconds:.0f} s | {peak:,.0f} MiB | {size_bytes / (src + tgt):.2f} |"
        row += f" {size_bytes / pairs:.1f} |"
        for n in args.processes:
            t = train(root, store, args.steps, n, args.threads, args.work)
            row += f" {t['first_update_s']:.1f} s | {t['rss_mib']:,.0f} MiB | {t['anon_mib']:,.0f} MiB |"
        print(row, flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
