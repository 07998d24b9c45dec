"""Two training processes (torchrun, gloo on the CPU) make the updates of one process trained on
the same global batches, and leave one set of files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import read_checkpoint
from seq2seq.distributed import Processes

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shares_split_every_batch_among_the_processes() -> None:
    batch = [7, 3, 9, 1, 4]
    shares = [Processes(rank, 2).share(batch) for rank in range(2)]
    assert shares == [([7, 9, 4], 1.0), ([3, 1], 1.0)]
    assert Processes(2, 3).share([5, 6]) == ([5], 0.0)  # fewer sentences than processes: weight 0
    assert Processes().share(batch) == (batch, 1.0)


def test_two_gloo_processes_train_like_one_on_the_same_global_batches(toy_root: Path, tmp_path: Path) -> None:
    args = [
        f"data.root={toy_root}", "trainer.max_steps=6", "trainer.batch_size=24", "trainer.progress=false",
        "trainer.threads=1", "trainer.valid_max_sentences=5", "model.embed_size=16", "model.hidden_size=32",
        "model.dropout=0", "data.tokenizer.cache_dir=", "trainer.grad_clip=0",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    one = subprocess.run(
        [str(BIN / "seq2seq-train"), *args, f"hydra.run.dir={tmp_path / 'one'}",
         f"data.store_dir={tmp_path / 'store1'}"],
        capture_output=True, env=env,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr.decode()
    launch = [str(BIN / "torchrun"), "--nnodes=1", "--nproc_per_node=2", "--node_rank=0",
              "--master_addr=127.0.0.1", f"--master_port={free_port()}"]  # fmt: skip
    two = subprocess.run(
        [*launch, str(BIN / "seq2seq-train"), *args, f"hydra.run.dir={tmp_path / 'two'}",
         f"data.store_dir={tmp_path / 'store2'}"],
        capture_output=True, env=env, timeout=600,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr.decode()[-3000:]
    assert two.stdout.decode().count("best valid BLEU") == 1  # rank 0 alone reports
    a, b = read_checkpoint(tmp_path / "one" / "last.pt"), read_checkpoint(tmp_path / "two" / "last.pt")
    assert a["train_state"]["step"] == b["train_state"]["step"] == 6
    # The gradients agree to float rounding (the two processes sum the batch in another order).
    # Adam divides each step by the root of its second moment: for the rare weight whose gradient
    # is near zero, that rounding grows; here 1 weight of 24,000 was 1.4e-6 off, the rest <= 2.4e-7.
    far, total = 0, 0
    for name, tensor in a["model"].items():
        gap = (tensor - b["model"][name]).abs()
        assert float(gap.max()) < 1e-5, name
        far, total = far + int((gap > 1e-6).sum()), total + gap.numel()
    assert far <= total // 1000, f"{far} of {total} weights differ by more than 1e-6"
    adam_one, adam_two = a["train_state"]["optimizer"]["state"], b["train_state"]["optimizer"]["state"]
    for key in adam_one:  # Adam's moments follow the gradients' scale: unclipped, they show a scaling error
        for moment in ("exp_avg", "exp_avg_sq"):
            assert torch.allclose(adam_one[key][moment], adam_two[key][moment], rtol=1e-3, atol=1e-9), (key, moment)
    loss_one, loss_two = a["train_state"]["history"][-1]["train_loss"], b["train_state"]["history"][-1]["train_loss"]
    assert loss_two == pytest.approx(loss_one, abs=1e-4)  # the loss of the whole batch, summed over processes
    files = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert files == [".hydra", "best.pt", "config.yaml", "environment.json", "last.pt", "metrics.csv", "train.log"]
    log = (tmp_path / "two" / "train.log").read_text()
    assert "DDP: 2 processes, gloo" in log and log.count("DDP: 2 processes") == 1
    assert len(b["train_state"]["rngs"]) == 2
    # both processes use one fresh store: rank 0 prepares it while rank 1 waits for it at a barrier,
    # then maps it (rank 1 logs nothing, so rank 0 says "prepared", once; the lock itself is tested
    # in test_store); the same store one process made
    assert ": prepared " in (tmp_path / "one" / "train.log").read_text()
    assert log.count(": prepared ") == 1 and ": reused (" not in log
    one_store, two_store = list((tmp_path / "store1").iterdir()), list((tmp_path / "store2").iterdir())
    assert sorted(p.name for p in two_store) == sorted(p.name for p in one_store)  # the folder and its .lock
    assert len([p for p in two_store if p.is_dir()]) == 1
    (folder,) = [p.name for p in two_store if p.is_dir()]
    for name in ("src.ids", "tgt.ids", "src.len", "tgt.len"):
        assert (tmp_path / "store2" / folder / name).read_bytes() == (tmp_path / "store1" / folder / name).read_bytes()


@pytest.mark.parametrize(
    ("environment", "message"),
    [({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set: launch")],
)
def test_a_bad_launch_is_one_line(environment: dict, message: str, toy_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, **environment}
    p = subprocess.run(
        [str(BIN / "seq2seq-train"), f"data.root={toy_root}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert p.returncode != 0
    assert message in p.stderr.decode() and "Traceback" not in p.stderr.decode()
