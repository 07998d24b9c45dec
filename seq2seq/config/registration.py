"""Where the commands' YAML configs live, and the schemas registered with Hydra under the names
those configs compose (``train_schema``, ...). Nothing registers on import: the entry points and
the Python API call :func:`register_configs` before composing."""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from seq2seq.config.naming import folder_name
from seq2seq.config.schemas import SCHEMAS


def config_dir() -> Path:
    """The folder of the commands' YAML configs: inside the installed package (a wheel ships the
    project's top-level ``configs/`` as ``seq2seq/configs``), else the checkout's ``configs/``
    beside the package (an editable install)."""
    package = Path(__file__).resolve().parent.parent  # seq2seq/
    shipped = package / "configs"
    return shipped if shipped.is_dir() else package.parent / "configs"


def register_configs() -> None:
    """The schemas (``train_schema``, ...) in Hydra's ConfigStore and the ``folder_name``
    resolver. Called by the entry points and the Python API before composing; idempotent."""
    store = ConfigStore.instance()
    for command, schema in SCHEMAS.items():
        store.store(name=f"{command}_schema", node=schema)
    if not OmegaConf.has_resolver("folder_name"):
        OmegaConf.register_new_resolver("folder_name", folder_name)
