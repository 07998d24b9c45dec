"""The Python API's functions: the same configs and the same library calls as the commands.

:func:`train` and :func:`evaluate` compose the command's own primary config
(``configs/train.yaml``, ``configs/eval.yaml``) with Hydra, exactly as ``seq2seq-train`` and
``seq2seq-eval`` do, apply the overrides, and call the function the command calls; so the
command line and Python cannot drift apart. Nothing global is left behind: Hydra is initialised
for the composition only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from seq2seq.config import config_dir, register_configs
from seq2seq.errors import ConfigError
from seq2seq.evaluation import EvalReport, run_eval
from seq2seq.training import TrainResult, train_run


def compose_config(command: str, overrides: Sequence[str] = (), values: dict[str, Any] | None = None) -> DictConfig:
    """``configs/<command>.yaml`` with command-line style ``overrides`` (``model=luong``,
    ``trainer.epochs=2``), then ``values`` set by dotted key (no quoting needed: a path may hold
    any character). The ``hydra`` section is kept: it says where a run writes."""
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name=command):
            cfg = compose(config_name=command, overrides=list(overrides), return_hydra_config=True)
        for key, value in (values or {}).items():
            OmegaConf.update(cfg, key, value, force_add=False)
    except OmegaConfBaseException as e:
        raise ConfigError(f"seq2seq-{command}: {str(e).splitlines()[0]}") from None
    except Exception as e:  # Hydra's own errors (a bad override, an unknown group option)
        if type(e).__module__.startswith("hydra"):
            raise ConfigError(f"seq2seq-{command}: {str(e).splitlines()[0]}") from None
        raise
    return cfg


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The task's own config, as the command's function receives it."""
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def train(
    data: str = "toy",
    model: str = "attention",
    overrides: Sequence[str] = (),
    *,
    run_dir: str | Path | None = None,
) -> TrainResult:
    """Train one model, as ``seq2seq-train data=DATA model=MODEL OVERRIDES...`` does.

    ``data`` and ``model`` pick the config groups (``data=multi30k``, ``model=luong``);
    ``overrides`` are any other command-line overrides. The run goes to ``run_dir``, else to the
    command's own default folder (``runs/train/<data>-<decoder>/<time>``). Returns the run
    folder, its checkpoints and its metrics (one row per validation)."""
    cfg = compose_config("train", [f"data={data}", f"model={model}", *overrides])
    folder = Path(run_dir) if run_dir is not None else Path(cfg.hydra.run.dir)
    return train_run(without_hydra(cfg), folder)  # type: ignore[arg-type]


def evaluate(
    checkpoint: str | Path | Sequence[str | Path],
    split: str = "",
    *,
    data: str | None = None,
    overrides: Sequence[str] = (),
    **settings: Any,
) -> EvalReport:
    """Evaluate a checkpoint, as ``seq2seq-eval checkpoint=PATH`` does: BLEU and chrF with their
    signatures, BLEU by source length, alignment accuracy where the data has gold alignments.

    ``split`` names the split (default: the data's test split); ``data`` picks another corpus
    (default: the one the checkpoint was trained on); ``settings`` are the command's options by
    name (``beam=5``, ``length_penalty=0.6``, ``batch_size=64``, ``output="report.json"``). A
    list of checkpoints is evaluated as one ensemble."""
    groups = [f"data={data}"] if data else []
    files = str(checkpoint) if isinstance(checkpoint, (str, Path)) else [str(c) for c in checkpoint]
    values = {"checkpoint": files, "split": split, **settings}
    return run_eval(without_hydra(compose_config("eval", [*groups, *overrides], values)))  # type: ignore[arg-type]
