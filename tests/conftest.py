from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from seq2seq.data.toy import write_corpus

TINY_SIZES = {"train": 300, "valid": 20, "test": 20}


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny toy corpus, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("toy")
    write_corpus(root, TINY_SIZES, seed=7)
    return root
