"""Training tokens/s of one process against several under torchrun (gloo on the CPU), and fp32
against bf16 where the CPU has bf16 instructions; prints a Markdown table.

    python benchmarks/ddp_speed.py                        # toy corpus (data/toy), 200 updates each
    python benchmarks/ddp_speed.py --steps 400 --processes 1 2

Every run trains the demo's attention model from the same seed on the same global batches, one
thread per process (``trainer.threads=1``), and the figure is target tokens per second of
training time as rank 0's metrics.csv reports it (validation not counted).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from seq2seq.device import cpu_has_bf16
from seq2seq.runfolder import METRICS

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(processes: int, precision: str, args: argparse.Namespace, folder: Path) -> float:
    overrides = [
        f"data.root={args.data}", f"trainer.max_steps={args.steps}", "trainer.progress=false", "trainer.threads=1",
        "trainer.valid_max_sentences=50", f"trainer.precision={precision}", f"hydra.run.dir={folder}",
    ]  # fmt: skip
    command = [str(BIN / "seq2seq-train"), *overrides]
    if processes > 1:
        command = [str(BIN / "torchrun"), "--nnodes=1", f"--nproc_per_node={processes}", "--node_rank=0",
                   "--master_addr=127.0.0.1", f"--master_port={free_port()}", *command]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    with open(folder / METRICS, encoding="utf-8") as f:
        return float(list(csv.DictReader(f))[-1]["tokens_per_second"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/toy")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in precisions:
            for n in args.processes:
                rows.append((n, precision, run(n, precision, args, Path(tmp) / f"{n}-{precision}")))
    machine = f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    bf16 = "yes" if cpu_has_bf16() else "no"
    print(f"{machine}, 1 thread per process, {args.steps} updates; bf16 on this CPU: {bf16}\n")
    print("| processes | precision | train tokens/s | vs 1 process fp32 |\n|---:|---|---:|---:|")
    base = rows[0][2]
    for n, precision, speed in rows:
        print(f"| {n} | {precision} | {speed:,.0f} | {speed / base:.2f}x |")


if __name__ == "__main__":
    main()
