"""``device=auto|cpu|cuda`` as a torch device, refused with a clear error where it cannot run."""

from __future__ import annotations

import torch

from seq2seq.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device={name!r} is not valid: choose one of auto, cpu, cuda (or cuda:N)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name}, but torch sees no CUDA device here (use device=auto or cpu)")
    return torch.device(name)
