"""Shared by the API and browser tests: a tiny model that has learned "Tom chase Jerry" ->
"汤姆 追逐 杰瑞", and a real seq2seq-serve process on a free port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PAIRS = [
    ("Tom chase Jerry", "汤姆 追逐 杰瑞"),
    ("Jerry chase Tom", "杰瑞 追逐 汤姆"),
    ("Tom see Jerry", "汤姆 看见 杰瑞"),
    ("Jerry see Tom", "杰瑞 看见 汤姆"),
    ("Mary like Tom", "玛丽 喜欢 汤姆"),
    ("Tom like Mary", "汤姆 喜欢 玛丽"),
    ("Mary chase Jerry", "玛丽 追逐 杰瑞"),
    ("Jerry like Mary", "杰瑞 喜欢 玛丽"),
    ("Mary see Tom", "玛丽 看见 汤姆"),
    ("Jerry see Mary", "杰瑞 看见 玛丽"),
]
BIN = Path(sys.executable).parent


def train_tiny(folder: Path, examples: bool = False) -> Path:
    """Overfit a small attention model on :data:`PAIRS` (a few seconds); returns best.pt. With
    ``examples``, the corpus has gold alignments (word i to word i) and the run saves the
    attention of valid sentences 0 and 1 at each of its 30 validations (the page's views)."""
    from seq2seq import train

    data = folder / "data"
    train_corpus(data, examples)
    schedule = ["trainer.epochs=30", "trainer.batch_size=2", "trainer.attention_examples=[0,1]"]
    result = train(
        "toy",
        "attention",
        [
            f"data.root={data}", "data.name=tiny", "trainer.epochs=400", "trainer.max_steps=150",
            "trainer.batch_size=10", "trainer.lr=0.01", "trainer.progress=false", "trainer.threads=1",
            "model.embed_size=16", "model.hidden_size=32", "model.dropout=0.0", "model/attention=dot",
            *(schedule if examples else []),
        ],
        run_dir=folder / "run",
    )  # fmt: skip
    return result.last


def train_tiny_transformer(folder: Path) -> Path:
    """A small Transformer (2 + 2 layers, 2 heads) trained a little on :data:`PAIRS` (its maps
    by layer and head are the point, not its translations); returns its best.pt."""
    from seq2seq import train

    data = folder / "data"
    if not data.is_dir():
        train_corpus(data, examples=False)
    result = train(
        "toy",
        "transformer",
        [
            f"data.root={data}", "data.name=tiny", "trainer.epochs=60", "trainer.batch_size=10", "trainer.lr=0.005",
            "trainer.progress=false", "trainer.threads=1", "model.hidden_size=16", "model.self_attention.heads=2",
            "model.dropout=0.0",
        ],
        run_dir=folder / "transformer",
    )  # fmt: skip
    return result.last


def train_corpus(data: Path, examples: bool) -> None:
    """:data:`PAIRS` as the train, valid and test splits (with ``examples``, and gold alignments)."""
    data.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (data / f"{split}.en").write_text("".join(s + "\n" for s, _ in PAIRS), encoding="utf-8")
        (data / f"{split}.zh").write_text("".join(t + "\n" for _, t in PAIRS), encoding="utf-8")
        if examples:
            (data / f"{split}.align").write_text("0-0 1-1 2-2\n" * len(PAIRS), encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(*overrides: str) -> Iterator[str]:
    """``seq2seq-serve OVERRIDES port=FREE`` running; yields its base URL, stops it after."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "seq2seq-serve"), *overrides, f"port={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "health", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read() if proc.stdout else ""
                    raise RuntimeError(f"seq2seq-serve did not start (exit {proc.poll()}): {out[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
