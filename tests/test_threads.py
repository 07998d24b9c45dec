"""trainer.threads=0: torch's threads follow the cores other processes leave free."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import torch

from seq2seq import threads as threads_module
from seq2seq.threads import ThreadGovernor


class FakeMachine:
    """A 4-core machine whose clocks the test moves: wall, own CPU and the machine's busy time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.wall = self.own = self.busy = 0.0
        monkeypatch.setattr(threads_module, "usable_cores", lambda: 4)
        monkeypatch.setattr(threads_module, "starting_threads", lambda: 4)
        monkeypatch.setattr(threads_module, "machine_busy_seconds", lambda: (self.busy, 4))
        monkeypatch.setattr(threads_module.time, "monotonic", lambda: self.wall)
        monkeypatch.setattr(threads_module.time, "process_time", lambda: self.own)

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        self.wall += seconds
        self.own += seconds * own_cores
        self.busy += seconds * (own_cores + other_cores)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMachine]:
    before = torch.get_num_threads()
    yield FakeMachine(monkeypatch)
    torch.set_num_threads(before)


def test_threads_make_room_for_other_busy_processes_and_come_back(machine: FakeMachine) -> None:
    torch.set_num_threads(4)
    governor = ThreadGovernor(0, interval=10.0)
    machine.run(5, own_cores=4, other_cores=3)
    governor.update()  # too soon to look
    assert torch.get_num_threads() == 4
    machine.run(5, own_cores=4, other_cores=-3)  # (over the whole 10 s: others idle)
    governor.update()
    assert torch.get_num_threads() == 4
    machine.run(10, own_cores=2.5, other_cores=2.0)  # another job keeps two cores busy
    governor.update()
    assert torch.get_num_threads() == governor.threads == 2
    machine.run(12, own_cores=2, other_cores=3.6)  # and then almost all of them
    governor.update()
    assert torch.get_num_threads() == 1  # never fewer than one
    machine.run(12, own_cores=1, other_cores=0.1)  # the other job ended
    governor.update()
    assert torch.get_num_threads() == 4


def test_a_fixed_thread_count_is_kept_and_a_crowded_machine_is_named_once(
    machine: FakeMachine, caplog: pytest.LogCaptureFixture
) -> None:
    governor = ThreadGovernor(3, interval=1.0)
    assert torch.get_num_threads() == 3
    with caplog.at_level(logging.WARNING, logger="seq2seq.threads"):
        for _ in range(3):
            machine.run(2, own_cores=3, other_cores=2)
            governor.update()
    assert torch.get_num_threads() == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2.0 of 4 cores busy" in warnings[0] and "trainer.threads=0" in warnings[0]


def test_a_host_bigger_than_this_process_may_use_gives_no_signal(
    machine: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a container limited to 4 of a 64-CPU host's cores, /proc/stat counts the host: ignored."""
    monkeypatch.setattr(threads_module, "machine_busy_seconds", lambda: (machine.busy, 64))
    torch.set_num_threads(4)
    governor = ThreadGovernor(0, interval=1.0)
    machine.run(5, own_cores=4, other_cores=50)
    governor.update()
    assert torch.get_num_threads() == 4


def test_the_real_machine_is_readable_here() -> None:
    busy = threads_module.machine_busy_seconds()
    assert busy is not None and busy[0] > 0 and busy[1] >= 1


def test_a_decoding_command_looks_once_at_start(machine: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    """seq2seq-eval and seq2seq-translate take the cores others leave free when they start."""
    monkeypatch.setattr(threads_module.time, "sleep", lambda seconds: machine.run(seconds, 0.1, 3.0))
    torch.set_num_threads(4)
    assert threads_module.threads_for_the_load() == 1
    monkeypatch.setattr(threads_module.time, "sleep", lambda seconds: machine.run(seconds, 0.1, 0.0))
    assert threads_module.threads_for_the_load() == 4


def test_the_load_never_lifts_threads_above_torchs_own_count(
    machine: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OMP_NUM_THREADS=2 on a 4-core machine: an idle machine gives 2 threads, not 4."""
    monkeypatch.setattr(threads_module, "starting_threads", lambda: 2)
    monkeypatch.setattr(threads_module.time, "sleep", lambda seconds: machine.run(seconds, 0.1, 0.0))
    torch.set_num_threads(1)
    assert threads_module.threads_for_the_load() == 2
