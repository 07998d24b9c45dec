"""Gather trained runs into one report: a multirun sweep, or models trained apart.

``seq2seq-gather runs=runs/sweep/2026-11-27_10-00-00`` finds every run folder below the given
folders (one with ``best.pt`` and ``last.pt``), evaluates each best checkpoint on one split and
writes the same report as ``seq2seq-compare``: a table of BLEU, chrF, alignment accuracy,
parameters and train time, BLEU by source length, heatmaps and training curves. Runs are named
by their model (``luong/dot``, ``cho``) when that tells them apart, else by their folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seq2seq.config import GatherConfig, check_data, check_gather, run_folders, saved_model_config, short_name
from seq2seq.decoding import decoding_for
from seq2seq.errors import ConfigError
from seq2seq.evaluation import eval_data
from seq2seq.report import ReportedRun, load_runs, report_runs
from seq2seq.runfolder import BEST, LAST


def find_runs(paths: list[str]) -> dict[str, Path]:
    """Every run folder at or below ``paths``, named by its path below the given folder."""
    runs: dict[str, Path] = {}
    for given in map(Path, paths):
        if not given.is_dir():
            raise ConfigError(f"runs: {given} is not a folder")
        found = sorted(p.parent for p in given.rglob(BEST) if (p.parent / LAST).is_file())
        if not found:
            raise ConfigError(f"runs: no trained run (best.pt + last.pt) in {given}")
        for run in found:
            name = str(run.relative_to(given)) if run != given else run.name
            runs[name if name not in runs else str(run)] = run
    return runs


def pick_checkpoints(runs: dict[str, Path], names: list[str]) -> dict[str, Path]:
    """Each run's checkpoint to evaluate: the first of ``names`` (file names) its folder holds."""
    if not names or any(not n or Path(n).name != n for n in names):
        raise ConfigError(
            f"checkpoints={names}: give file names to look for in each run folder, e.g. [averaged.pt,best.pt]"
        )
    picked = {}
    for name, run in runs.items():
        found = [run / n for n in names if (run / n).is_file()]
        if not found:
            raise ConfigError(f"{run}: holds none of checkpoints={names}")
        picked[name] = found[0]
    return picked


def run_gather(cfg: GatherConfig, out_dir: Path) -> dict[str, Any]:
    """Find the runs, load each one's checkpoint (once), evaluate them and write the report into
    ``out_dir``."""
    cfg = check_gather(cfg)
    runs = find_runs(run_folders(cfg.runs))
    checkpoints = pick_checkpoints(runs, list(cfg.checkpoints))  # all found before any is loaded
    decoding = decoding_for(cfg)
    loaded = load_runs(runs, checkpoints, decoding.device, decoding.quantize)  # type: ignore[arg-type]
    short = {name: short_name(saved_model_config(run.loaded.config["model"])) for name, run in loaded.items()}
    if len(set(short.values())) == len(short):  # name runs by their model when that tells them apart
        loaded = {short[name]: run for name, run in loaded.items()}
    data = gather_data(cfg.data, loaded)
    return report_runs(loaded, data=data, split=cfg.split, decoding=decoding, out_dir=out_dir)


def gather_data(given: Any, runs: dict[str, ReportedRun]) -> Any:
    """The corpus to evaluate on: the runs' own (they must share one), with ``data.*`` overrides
    on top (:func:`seq2seq.evaluation.eval_data`), checked."""
    trained_on = {name: run.loaded.config["data"] for name, run in runs.items()}
    first, first_data = next(iter(trained_on.items()))
    corpus = (first_data["name"], first_data["src_lang"], first_data["tgt_lang"])
    for name, data in trained_on.items():
        if (data["name"], data["src_lang"], data["tgt_lang"]) != corpus:
            raise ConfigError(f"runs {first} and {name} were trained on different data; gather one corpus at a time")
    data = eval_data(given, first_data)
    check_data(data)
    return data
