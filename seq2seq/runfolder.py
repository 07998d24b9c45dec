"""The run folder: the names of its files (in this one place), what keeps it one run's (a lock
against a second live run, the clean-up of temporary files a killed save left) and a record of
the software that trained it."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import re
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from seq2seq.errors import RunFolderBusy

log = logging.getLogger("seq2seq")

# a run folder's files
BEST = "best.pt"  # the weights of the highest validation BLEU
LAST = "last.pt"  # the weights, optimizer, position and RNG after the last save: to resume
AVERAGED = "averaged.pt"  # seq2seq-average's mean of the kept checkpoints
KEPT = re.compile(r"step(\d+)\.pt")  # the weights at a validation (trainer.keep_checkpoints): kept_name(step)
METRICS = "metrics.csv"  # one row per validation
CONFIG = "config.yaml"  # the resolved config
ENVIRONMENT = "environment.json"  # the software that trained
ATTENTION = "attention"  # trainer.attention_examples' heatmaps and their data: example_name(step, i, suffix)
TENSORBOARD = "tensorboard"  # trainer.tensorboard's log
LOCK_NAME = "train.lock"
TEMPORARY = re.compile(r"\.(last|best|averaged|step\d+)\.pt\..+\.tmp")  # save_atomic's names for the above


def kept_name(step: int) -> str:
    """The file name of the weights kept at update ``step`` (626 -> ``step00000626.pt``)."""
    return f"step{step:08d}.pt"


EXAMPLE = re.compile(r"step(\d+)-(\d+)\.json")  # an attention example's data: example_name(step, i, ".json")


def example_name(step: int, sentence: int, suffix: str = ".png") -> str:
    """The file name, in ``attention/``, of valid sentence ``sentence``'s heatmap at update
    ``step`` (``.png``), or of its data (``.json``: what ``seq2seq-serve``'s training view reads)."""
    return f"step{step:08d}-{sentence}{suffix}"


class RunLock:
    """``train.lock`` while a run trains into ``folder``: an exclusive ``flock`` held for the whole
    run (the kernel drops it when the process ends, however it ends), with the holder's pid and
    host inside for the message a second run into the folder gets."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            os.close(fd)
            pid = holder[0] if holder else "?"
            host = f" on {holder[1]}" if len(holder) > 1 and holder[1] != socket.gethostname() else ""
            raise RunFolderBusy(
                f"{self.path.parent}: another seq2seq-train (pid {pid}{host}) is training into this folder; "
                "wait for it, stop it, or train into another folder (hydra.run.dir=...)"
            ) from None
        before = os.pread(fd, 200, 0).decode(errors="replace").split()
        if before:
            log.warning("%s: taking over the lock of pid %s, which no longer runs", self.path.parent, before[0])
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # while still holding it: no one else's lock is removed
            os.close(self.fd)
            self.fd = None


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Delete the temporary files of saves a killed run never finished (``.last.pt.x1y2.tmp``);
    called while holding the folder's lock, so no live save owns them."""
    removed = []
    for path in folder.glob(".*.tmp"):
        if TEMPORARY.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    if removed:
        log.info("removed %d temporary file(s) of an unfinished save: %s", len(removed), ", ".join(sorted(removed)))
    return removed


def environment(device: torch.device) -> dict[str, Any]:
    """The software a run trained with: versions, the git revision of a checkout, threads, device."""
    try:
        version = metadata.version("seq2seq-attention")
    except metadata.PackageNotFoundError:
        version = "unknown"
    package = Path(__file__).resolve().parent
    try:  # the revision of this project's checkout (an editable install), not of a folder around a wheel
        git = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=package, capture_output=True, text=True, timeout=10
        )
        top, _, head = git.stdout.strip().partition("\n")
        revision = head if git.returncode == 0 and Path(top).resolve() / "seq2seq" == package else None
    except (OSError, subprocess.SubprocessError):
        revision = None
    return {
        "seq2seq": version,
        "git_revision": revision,  # None outside a git checkout (an installed wheel)
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def write_environment(folder: Path, device: torch.device) -> None:
    (folder / ENVIRONMENT).write_text(json.dumps(environment(device), indent=2) + "\n", encoding="utf-8")
