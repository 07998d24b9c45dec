"""Checkpoints written before the module split load and translate exactly as they did then."""

import json
from pathlib import Path

import pytest
import torch

from seq2seq import Translator

OLD = Path(__file__).parent / "data" / "old_checkpoints"
EXPECTED = json.loads((OLD / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(EXPECTED["translations"]))
@pytest.mark.parametrize("beam", [1, 3])
def test_a_checkpoint_from_before_the_split_translates_as_it_did(name: str, beam: int) -> None:
    translator = Translator.from_checkpoint(
        OLD / f"{name}.pt", device="cpu", beam=beam, nbest=1, max_len_a=1.0, max_len_b=3
    )
    got = translator.translate(EXPECTED["sentences"])
    for then, now in zip(EXPECTED["translations"][name][f"beam{beam}"], got, strict=True):
        assert now.tokens == then["tokens"]
        assert now.text == then["text"]
        assert now.score == pytest.approx(then["score"], abs=1e-5)
        expected = torch.tensor(then["attention"]).reshape(now.attention.shape)  # (T, S); (0, S) when empty
        torch.testing.assert_close(now.attention, expected, atol=1e-5, rtol=1e-4)
