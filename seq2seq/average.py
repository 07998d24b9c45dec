"""Checkpoint averaging (``seq2seq-average`` runs :func:`run_average`).

The mean of the weights a run had at its last few validations usually translates better than
any one of them (the noise of the last updates averages out); fairseq's and OpenNMT-py's
``average_checkpoints`` do the same. Train with ``trainer.keep_checkpoints=N`` to keep them.
"""

from __future__ import annotations

from pathlib import Path

from seq2seq.checkpoint import average_checkpoints, kept_checkpoints, save_atomic
from seq2seq.config import AverageConfig, check_average
from seq2seq.errors import ConfigError
from seq2seq.runfolder import AVERAGED


def choose_checkpoints(cfg: AverageConfig) -> tuple[list[Path], Path]:
    """The files to average and where the result goes, from ``run``/``last`` or ``checkpoints``."""
    cfg = check_average(cfg)
    if cfg.run is not None:
        run = Path(cfg.run)
        if not run.is_dir():
            raise ConfigError(f"run: {run} is not a folder")
        kept = kept_checkpoints(run)
        if not kept:
            raise ConfigError(f"{run}: no kept checkpoints (stepNNNNNNNN.pt); train with trainer.keep_checkpoints=N")
        if len(kept) < cfg.last:
            raise ConfigError(f"{run}: last={cfg.last} but only {len(kept)} kept checkpoints")
        return kept[-cfg.last :], Path(cfg.output) if cfg.output else run / AVERAGED
    return [Path(p) for p in cfg.checkpoints], Path(cfg.output)  # type: ignore[arg-type]


def run_average(cfg: AverageConfig) -> tuple[list[Path], Path]:
    """Average the checkpoints ``cfg`` names and write the result; returns (averaged files, output)."""
    paths, output = choose_checkpoints(cfg)
    if output.resolve() in {p.resolve() for p in paths}:
        raise ConfigError(f"output={output} is one of the checkpoints to average; write elsewhere")
    save_atomic(average_checkpoints(paths), output)
    return paths, output
