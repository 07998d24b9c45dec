"""What keeps a run folder one run's: a lock against a second live run, the clean-up of
temporary files a killed save left, and a record of the software that trained it."""

from __future__ import annotations

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
LOCK_NAME = "train.lock"
TEMPORARY = re.compile(r"\.(last|best|averaged|step\d+)\.pt\..+\.tmp")  # save_atomic's names


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie or another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``train.lock`` (pid and host) while a run trains into ``folder``: a second run into the
    folder is refused naming the first; a lock whose process is gone (a killed run) is taken over."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME

    def __enter__(self) -> RunLock:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self.take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}\n")
            return self
        raise RunFolderBusy(f"{self.path.parent}: could not take {LOCK_NAME}")

    def take_over_if_stale(self) -> None:
        try:
            pid_text, _, host = self.path.read_text(encoding="utf-8").strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):  # half written or gone: stale
            pid, host = -1, ""
        if pid > 0 and pid != os.getpid() and host in ("", socket.gethostname()) and process_alive(pid):
            raise RunFolderBusy(
                f"{self.path.parent}: another seq2seq-train (pid {pid}) is training into this folder; "
                "wait for it, stop it, or train into another folder (hydra.run.dir=...)"
            )
        if pid > 0 and host not in ("", socket.gethostname()):
            raise RunFolderBusy(
                f"{self.path.parent}: a run on {host} (pid {pid}) holds {LOCK_NAME}; if it is gone, delete the file"
            )
        log.warning("%s: taking over the lock of pid %s, which no longer runs", self.path.parent, pid)
        self.path.unlink(missing_ok=True)

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.path.unlink(missing_ok=True)


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
    (folder / "environment.json").write_text(json.dumps(environment(device), indent=2) + "\n", encoding="utf-8")
