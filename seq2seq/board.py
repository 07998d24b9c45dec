"""TensorBoard scalars of a run (``trainer.tensorboard=true``): training loss, learning rate,
tokens/s and gradient norm every ``trainer.log_every`` updates, and each validation's metrics.
TensorBoard is an optional extra (``pip install 'seq2seq-attention[tensorboard]'``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from seq2seq.errors import ConfigError


def check_tensorboard() -> None:
    """A clear error, naming the extra, where TensorBoard is not installed."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("trainer.tensorboard=true needs TensorBoard: pip install 'seq2seq-attention[tensorboard]'")


class Board:
    """Writes to ``folder`` (a TensorBoard log folder); with ``folder=None`` it writes nothing."""

    def __init__(self, folder: Path | None = None, log_every: int = 100) -> None:
        self.every = log_every
        self.writer: Any = None
        if folder is not None:
            check_tensorboard()
            from torch.utils.tensorboard import SummaryWriter  # the optional extra, only when asked for

            self.writer = SummaryWriter(log_dir=str(folder))

    def update(self, step: int, loss: float, lr: float, tokens_per_second: float, grad_norm: float) -> None:
        """One update's figures, every ``log_every`` updates."""
        if self.writer is None or step % self.every:
            return
        for name, value in (("loss", loss), ("lr", lr), ("tokens_per_second", tokens_per_second),
                            ("grad_norm", grad_norm)):  # fmt: skip
            self.writer.add_scalar(f"train/{name}", value, step)

    def validation(self, row: dict[str, Any]) -> None:
        """A validation's metrics row (valid loss, BLEU, chrF, alignment accuracy where known)."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key.startswith("valid_"):
                self.writer.add_scalar(f"valid/{key[len('valid_') :]}", value, row["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
