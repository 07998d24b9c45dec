"""Torch CPU threads that make room for the machine's other work.

Torch's CPU kernels run on an OpenMP team of one thread per core, whose threads spin at the end of
every parallel region while they wait for each other. An RNN decoder makes thousands of small
parallel regions a second, so when another busy process shares the cores (a second experiment, a
sweep beside a training run), a thread often waits, spinning, for a partner that is not running:
on a 2-core machine two trainings with 2 threads each ran 5x slower each than one alone, while the
same two at 1 thread each ran at 0.9x of 1 thread alone (docs/speed.md).

:class:`ThreadGovernor` (``trainer.threads=0``, the default) measures, between updates and at
most every ``interval`` seconds, how many cores other processes kept busy (the machine's busy
time in ``/proc/stat`` less this process's own CPU time) and sets torch's threads to the cores
left over, at least one and at most torch's own count at start (``OMP_NUM_THREADS``, else one per
core): two runs side by side settle at one thread each, and a run gets its cores back when the
other ends. ``trainer.threads=N`` fixes the count instead (different thread
counts can change the last bits of sums, so fix it when runs must repeat bit for bit); the
governor then only warns, once, when others keep the cores busy. The decoding commands (eval,
translate) look once, at start, with :func:`threads_for_the_load`; ``seq2seq-serve`` looks again
before each request.
"""

from __future__ import annotations

import logging
import os
import time

import torch

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


_STARTING_THREADS = torch.get_num_threads()  # before this package changes it


def starting_threads() -> int:
    """Torch's thread count when this process started (``OMP_NUM_THREADS``, else one per core):
    the most a governor that follows the load will use."""
    return _STARTING_THREADS


def machine_busy_seconds() -> tuple[float, int] | None:
    """(CPU seconds all CPUs have been busy, including time stolen by a hypervisor; the number of
    CPUs the file counts), from ``/proc/stat``; None where it cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
            cpus = sum(1 for line in f if line.startswith("cpu"))
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (user + nice + system + irq + softirq + steal) / ticks, cpus


class ThreadGovernor:
    """Picks torch's CPU threads from the load others put on the machine (see the module's text).
    ``requested``: ``trainer.threads`` (0: follow the load; N: fixed at N)."""

    def __init__(self, requested: int, interval: float = 10.0) -> None:
        self.fixed = requested > 0
        self.cores = usable_cores()
        self.most = min(self.cores, starting_threads())
        self.interval = interval
        self.warned = False
        if self.fixed:
            torch.set_num_threads(requested)
        self.threads = torch.get_num_threads()
        self.last = self.sample()

    def sample(self) -> tuple[float, float, float] | None:
        """(wall clock, this process's CPU seconds, the machine's busy CPU seconds)."""
        busy = machine_busy_seconds()
        if busy is None or busy[1] != self.cores:  # a container's view of a bigger host: no signal
            return None
        return time.monotonic(), time.process_time(), busy[0]

    def others_busy(self) -> float | None:
        """Cores that other processes kept busy since the last look (None: too soon to tell)."""
        if self.last is None:
            return None
        now = time.monotonic()
        if now - self.last[0] < self.interval:
            return None
        sample = self.sample()
        if sample is None:
            return None
        wall = sample[0] - self.last[0]
        own = sample[1] - self.last[1]
        busy = sample[2] - self.last[2]
        self.last = sample
        return max(0.0, (busy - own) / wall)

    def update(self) -> None:
        """Look at the machine (at most once per interval) and set the threads it leaves us."""
        others = self.others_busy()
        if others is None or self.cores <= 1 or (not self.fixed and self.most <= 1):
            return
        if self.fixed:
            if not self.warned and others + self.threads > self.cores + 0.5:
                self.warned = True
                log.warning(
                    "other processes keep %.1f of %d cores busy while this run uses %d threads: it may "
                    "run many times slower (threads spin waiting for each other); trainer.threads=0 "
                    "follows the load",
                    others,
                    self.cores,
                    self.threads,
                )
            return
        threads = max(1, min(self.most, int(self.cores - others + 0.5)))
        if threads != self.threads:
            log.info("other processes keep %.1f of %d cores busy: torch threads %d -> %d", others, self.cores,
                     self.threads, threads)  # fmt: skip
            torch.set_num_threads(threads)
            self.threads = threads


def threads_for_the_load(window: float = 0.25) -> int:
    """For a command that decodes (eval, translate): look at the machine for ``window`` seconds
    and set torch's threads to the cores others leave free (at least one). Returns the count."""
    governor = ThreadGovernor(0, interval=0.0)
    time.sleep(window)
    governor.update()
    return torch.get_num_threads()
