"""Checkpoint averaging: the ``seq2seq-average`` entry point.

The mean of the weights a run had at its last few validations usually translates better than
any one of them (the noise of the last updates averages out); fairseq's and OpenNMT-py's
``average_checkpoints`` do the same. Train with ``trainer.keep_checkpoints=N`` to keep them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from seq2seq.checkpoint import average_checkpoints, kept_checkpoints, save_atomic
from seq2seq.config import CONFIG_DIR, AverageConfig, register_configs
from seq2seq.errors import ConfigError, Seq2SeqError


def choose_checkpoints(cfg: AverageConfig) -> tuple[list[Path], Path]:
    """The files to average and where the result goes, from ``run``/``last`` or ``checkpoints``."""
    if (cfg.run is None) == (not cfg.checkpoints):
        raise ConfigError("give either run=FOLDER (with last=N) or checkpoints=[FILE,...], not both or neither")
    if cfg.run is not None:
        run = Path(cfg.run)
        if not run.is_dir():
            raise ConfigError(f"run: {run} is not a folder")
        if cfg.last < 1:
            raise ConfigError(f"last={cfg.last} must be >= 1")
        kept = kept_checkpoints(run)
        if not kept:
            raise ConfigError(f"{run}: no kept checkpoints (stepNNNNNNNN.pt); train with trainer.keep_checkpoints=N")
        if len(kept) < cfg.last:
            raise ConfigError(f"{run}: last={cfg.last} but only {len(kept)} kept checkpoints")
        return kept[-cfg.last :], Path(cfg.output) if cfg.output else run / "averaged.pt"
    if not cfg.output:
        raise ConfigError("output=FILE is required with checkpoints=[...]")
    return [Path(p) for p in cfg.checkpoints], Path(cfg.output)


def run_average(cfg: AverageConfig) -> tuple[list[Path], Path]:
    """Average the checkpoints ``cfg`` names and write the result; returns (averaged files, output)."""
    paths, output = choose_checkpoints(cfg)
    if output.resolve() in {p.resolve() for p in paths}:
        raise ConfigError(f"output={output} is one of the checkpoints to average; write elsewhere")
    save_atomic(average_checkpoints(paths), output)
    return paths, output


register_configs()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="average")
def main(cfg: DictConfig) -> None:
    try:
        paths, output = run_average(cfg)  # type: ignore[arg-type]
        print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) -> {output}")
    except (Seq2SeqError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
