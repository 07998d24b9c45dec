"""Training on several processes with PyTorch's own launcher (``torchrun``).

``torchrun --standalone --nproc_per_node=N $(which seq2seq-train) ...`` starts N processes with
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and a rendezvous address in their environment; each
joins one process group (gloo on the CPU, nccl on CUDA, one device per process). Every process
builds the same batches (same seed, same order as one process) and trains on its share of each
batch; DistributedDataParallel averages the gradients, so an update is that of the whole batch.
Only rank 0 validates and writes files; the others take its results.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from seq2seq.device import resolve_device
from seq2seq.errors import ConfigError

# how long the other processes wait for rank 0 (a long validation, a slow save) before failing
EXCHANGE_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    backend: str = ""

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, index: Sequence[int]) -> tuple[Sequence[int], float]:
        """This process's sentences of one batch, and the weight of their loss: every ``world``-th
        sentence; a batch with fewer sentences than processes gives the extra ones a sentence
        weighted 0 (each process must take part in every gradient exchange)."""
        mine = index[self.rank :: self.world]
        return (mine, 1.0) if len(mine) else (index[:1], 0.0)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` in every process."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def total(self, value: float) -> float:
        """The sum of ``value`` over the processes."""
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def any(self, flag: bool) -> bool:
        """True in every process when it is True in one (e.g. a signal that reached one of them)."""
        return self.total(1.0 if flag else 0.0) > 0

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in rank order."""
        if self.world == 1:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values


def launched_processes() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number of processes") from None


def join(device_name: str) -> tuple[Processes, torch.device]:
    """Join the process group torchrun set up (gloo on the CPU, nccl on CUDA) and pick this
    process's device; one process: nothing to join. A bad launch is a one-line ConfigError."""
    world = launched_processes()
    if world <= 1:
        return Processes(), resolve_device(device_name)
    missing = [name for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch several processes with torchrun "
            "(torchrun --standalone --nproc_per_node=N $(which seq2seq-train) ...)"
        )
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = resolve_device(device_name)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={local} but torch sees {torch.cuda.device_count()} CUDA device(s)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed: train in one process")
    if not dist.is_initialized():  # gloo too on CUDA: the small exchanges of Python numbers are CPU tensors
        groups = "cpu:gloo,cuda:nccl" if backend == "nccl" else "gloo"
        dist.init_process_group(groups, rank=rank, world_size=world, timeout=EXCHANGE_TIMEOUT)
    return Processes(rank, world, backend), device


def leave(processes: Processes) -> None:
    """Leave the process group (after the last exchange)."""
    if processes.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
