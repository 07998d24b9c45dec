"""The API page's examples run as written: every ```python block of docs/api.md, in order, in one
namespace, in an empty folder (so the toy corpus, the run and the reports are made there)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def test_the_api_page_has_examples_for_train_translate_and_evaluate() -> None:
    code = "\n".join(code_blocks(API_PAGE.read_text(encoding="utf-8")))
    for call in ("train(", "Translator.from_checkpoint(", ".translate(", "evaluate("):
        assert call in code, call


def test_every_code_block_of_the_api_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "api_page"}
    for k, block in enumerate(code_blocks(API_PAGE.read_text(encoding="utf-8"))):
        exec(compile(block, f"{API_PAGE.name}, block {k + 1}", "exec"), namespace)
    # what the page promises, checked on what it made
    assert (tmp_path / "data" / "toy" / "train.en").is_file()  # data=toy wrote the missing corpus
    run = namespace["run"]
    assert run.run_dir == Path("runs/api-demo") and run.best.is_file() and run.metrics  # type: ignore[attr-defined]
    out = namespace["out"]
    assert len(out) == 2 and out[0].source == "Tom chase Jerry"  # type: ignore[arg-type, index]
    for t in out:  # type: ignore[attr-defined]
        assert t.attention.shape == (len(t.tokens), len(t.source_tokens))
        assert torch.allclose(t.attention.sum(dim=1), torch.ones(len(t.tokens)), atol=1e-5)
    assert len(namespace["three"].translate(["Jerry like Tom"])[0].nbest) == 3  # type: ignore[attr-defined]
    report = namespace["report"]
    assert report.split == "test" and report.sentences == 1000 and "beam 5" in report.search  # type: ignore[attr-defined]
    assert Path(report.output).name == "eval-toy-test-best-beam5-gnmt1.0.json"  # type: ignore[attr-defined]
    assert 0.0 <= report.alignment_accuracy <= 1.0 and report.bleu_by_src_len  # type: ignore[attr-defined]
