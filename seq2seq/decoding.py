"""How a command decodes: the one set-up that eval, translate, serve and gather share.

A :class:`Decoding` holds the search settings (checked), the batch size, the torch device and the
precision (with its autocast dtype, refused where the device cannot run it). :func:`decoding_for`
makes one from a command's checked config and, on a CPU, sets torch's threads to the cores other
processes leave free (:func:`seq2seq.threads.threads_for_the_load`), once, before the model loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seq2seq.checkpoint import Loaded, load_model
from seq2seq.config import DecodingConfig, SearchConfig, check_choice, check_search
from seq2seq.constants import PRECISIONS, QUANTIZE
from seq2seq.device import autocast_dtype, resolve_device
from seq2seq.errors import ConfigError
from seq2seq.shortlist import read_shortlist
from seq2seq.threads import threads_for_the_load

SEARCH_KEYS = tuple(f.name for f in dataclasses.fields(SearchConfig))


def search_config(**settings: Any) -> Any:
    """A checked :class:`SearchConfig` from keywords (``beam=5, length_penalty=0.6``), as a typed
    DictConfig; an unknown name or a bad value is a :class:`ConfigError`."""
    try:
        search = OmegaConf.merge(OmegaConf.structured(SearchConfig), settings)
    except OmegaConfBaseException as e:
        raise ConfigError(f"search setting: {str(e).splitlines()[0]}") from None
    check_search(search)
    return search


def search_settings(cfg: Any) -> dict[str, Any]:
    """The search keys of ``cfg``: a SearchConfig or a command's config that extends it (its other
    keys left out), or a dict of settings given by name (``{"beam": 5}``, every key kept, so that
    :func:`search_config` refuses a misspelled one); ``None`` gives none."""
    if cfg is None:
        return {}
    if isinstance(cfg, dict):
        return dict(cfg)
    return {name: getattr(cfg, name) for name in SEARCH_KEYS}


@dataclass
class Decoding:
    """Search settings, batch size, device and precision: everything but the model that decides a
    translation. Built checked: a bad search value or a precision the device cannot run is a
    :class:`ConfigError`."""

    search: Any  # a SearchConfig (dataclass or DictConfig); kept as a checked DictConfig
    batch_size: int
    device: torch.device | str
    precision: str  # fp32 | bf16 | fp16 (DecodingConfig's precision)
    quantize: str = "none"  # none | int8 (DecodingConfig's quantize)
    shortlist: str | None = None  # a vocabulary map file (DecodingConfig's shortlist); None: every piece
    autocast: torch.dtype | None = field(init=False)  # from precision: None (fp32), bf16 or fp16

    def __post_init__(self) -> None:
        self.search = search_config(**search_settings(self.search))
        self.device = torch.device(self.device)
        check_choice("precision", self.precision, PRECISIONS)  # given by name to the Translator: unchecked
        check_choice("quantize", self.quantize, QUANTIZE)
        if self.shortlist and not Path(self.shortlist).is_file():
            raise ConfigError(f"shortlist={self.shortlist}: no such file (build one: seq2seq-shortlist checkpoint=...)")
        self.autocast = autocast_dtype(self.precision, self.device)
        if self.quantize != "none" and (self.device.type != "cpu" or self.autocast is not None):
            raise ConfigError(
                f"quantize={self.quantize} decodes on the CPU in fp32 around the int8 products: "
                f"give device=cpu and precision=fp32 (not {self.device.type}, {self.precision})"
            )

    def load(self, path: str | Path | Sequence[str | Path]) -> Loaded:
        """The checkpoint file ``path`` (a list: an ensemble) loaded for this set-up: on its device,
        int8 with ``quantize=int8``, and with its ``shortlist`` file read against the model's
        tokenizers (a piece they lack is a one-line error)."""
        loaded = load_model(path, self.device, self.quantize)
        if self.shortlist:
            loaded.shortlist = read_shortlist(self.shortlist, loaded.src_tokenizer, loaded.tgt_tokenizer)
        return loaded

    def with_search(self, **changes: Any) -> Decoding:
        """The same set-up with some search settings changed (``beam=3``), checked."""
        return dataclasses.replace(self, search={**search_settings(self.search), **changes})


def decoding_for(cfg: Any, *, batch_size: int | None = None, device: str | None = None) -> Decoding:
    """The decoding set-up of a command (``seq2seq-eval``, ``-translate``, ``-serve``, ``-gather``):
    its search keys and :class:`~seq2seq.config.DecodingConfig`'s ``batch_size``, ``device`` and
    ``precision`` (its default where the schema has none: seq2seq-compare's), each of the first two
    overridable by keyword, ``quantize`` and ``shortlist``; all checked first, then torch's CPU threads are set
    from the machine's load."""
    precision = cfg.precision if "precision" in cfg else DecodingConfig.precision
    quantize = cfg.quantize if "quantize" in cfg else DecodingConfig.quantize
    shortlist = cfg.shortlist if "shortlist" in cfg else None
    resolved = resolve_device(device or cfg.device)
    checked = Decoding(cfg, batch_size or cfg.batch_size, resolved, precision, quantize, shortlist)  # before loading
    if resolved.type == "cpu":
        threads_for_the_load()
    return checked
