"""The experiment: the distracted (fixed-context) model against the attention model.

Same data, same seed, same trainer settings; each model trains into its own subfolder, then all
are evaluated on the test split (with the command's search settings) and one report is written
(:mod:`seq2seq.report`). The models validate with greedy search while they train.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from seq2seq.config import CompareConfig, TrainConfig, check_compare, compared_models, describe_model
from seq2seq.decoding import decoding_for
from seq2seq.distributed import launched_processes
from seq2seq.errors import ConfigError
from seq2seq.report import load_runs, report_runs
from seq2seq.training import train_run

log = logging.getLogger("seq2seq")


def run_compare(cfg: CompareConfig, out_dir: Path) -> dict[str, Any]:
    """Train every model of ``cfg.models`` into ``out_dir/NAME``, then evaluate them all and
    write the report into ``out_dir``."""
    cfg = check_compare(cfg)
    if launched_processes() > 1:
        raise ConfigError(
            "seq2seq-compare trains its models one after the other in one process; "
            "under torchrun, train each with seq2seq-train and report them with seq2seq-gather"
        )
    runs = {}
    for name, model_cfg in compared_models(cfg).items():
        log.info("=== %s: %s ===", name, describe_model(model_cfg))
        train_cfg = OmegaConf.merge(
            OmegaConf.structured(TrainConfig),
            {"seed": cfg.seed, "data": cfg.data, "model": model_cfg, "trainer": cfg.trainer},
        )
        train_run(train_cfg, out_dir / name)  # type: ignore[arg-type]
        runs[name] = out_dir / name
    decoding = decoding_for(cfg, batch_size=cfg.trainer.eval_batch_size, device=cfg.trainer.device)
    loaded = load_runs(runs, {}, decoding.device)  # type: ignore[arg-type]
    return report_runs(loaded, data=cfg.data, split=cfg.split, decoding=decoding, out_dir=out_dir)
