"""int8 decoding: dynamic quantization of a loaded model (``quantize=int8``).

PyTorch's own dynamic quantization (``torch.ao.quantization.quantize_dynamic``): the weights of
the linear layers and of the GRU/LSTM layers are stored as int8 (one scale per tensor), and each
product quantizes its input on the fly and runs an int8 kernel (fbgemm or x86 on Intel and AMD,
qnnpack on ARM). Embeddings, attention's softmax and the search stay in fp32. Only for decoding on
the CPU; a trained checkpoint is unchanged (the quantized copy lives in memory).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from seq2seq.errors import ConfigError

ENGINES = ("x86", "fbgemm", "qnnpack")  # in order of preference: x86 (fbgemm and onednn) on x86-64, qnnpack on ARM
QUANTIZED = {nn.Linear, nn.LSTM, nn.GRU}  # the layers whose weights become int8


def quantized_engine() -> str:
    """The quantized CPU backend this torch build has, set as torch's; a ConfigError where none is."""
    engine = next((e for e in ENGINES if e in torch.backends.quantized.supported_engines), None)
    if engine is None:
        raise ConfigError(
            "quantize=int8: this PyTorch build has no quantized CPU backend (fbgemm, x86 or qnnpack; "
            f"it has {torch.backends.quantized.supported_engines}): decode with quantize=none"
        )
    torch.backends.quantized.engine = engine
    return engine


def quantize_int8(model: nn.Module) -> nn.Module:
    """``model`` (on the CPU) with int8 linear and RNN layers, in eval mode; ``model`` itself is
    left as it was."""
    quantized_engine()
    with warnings.catch_warnings():  # torch.ao's eager-mode API announces its move to torchao
        warnings.simplefilter("ignore")
        out = torch.ao.quantization.quantize_dynamic(model, QUANTIZED, dtype=torch.qint8, inplace=False)
    return out.eval()
