"""``device=auto|cpu|cuda`` as a torch device, and ``precision=fp32|bf16|fp16`` as an autocast
dtype, each refused with a clear error where it cannot run."""

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


def autocast_dtype(precision: str, device: torch.device, option: str = "precision") -> torch.dtype | None:
    """The autocast dtype of ``precision`` (None: fp32), refused where the device cannot;
    ``option`` names the setting in the message (``trainer.precision``)."""
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError(f"{option}=fp16 needs a CUDA device (use bf16 on a CPU with bf16 support)")
        return torch.float16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{option}=bf16: this GPU has no bf16 support (use fp16 or fp32)")
    if device.type == "cpu" and not cpu_has_bf16():
        raise ConfigError(
            f"{option}=bf16: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 "
            "instructions (AVX512-BF16 or AMX), where bf16 would be slower than fp32; use fp32"
        )
    return torch.bfloat16


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 matrix products natively (oneDNN's own check)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False
