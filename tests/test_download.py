"""The corpus download script, offline: the same code path reading a local source folder."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
sys.path.insert(0, str(ROOT / "scripts"))

from download_corpora import split_tatoeba  # noqa: E402


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "download_corpora.py"), *args], capture_output=True, text=True
    )


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/corpora beside the checkout")
def test_multi30k_from_a_local_folder_matches_the_shared_copy(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name, split in (("train", "train"), ("val", "valid"), ("test_2016_flickr", "test2016")):
        for lang in ("de", "en"):
            (source / f"{name}.{lang}.gz").write_bytes(
                gzip.compress((SHARED / "multi30k" / f"{split}.{lang}").read_bytes())
            )
    p = run_script("multi30k", "--source", str(source), "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    assert "train.de 29,000" in p.stdout and "test2016.en 1,000" in p.stdout
    for split in ("train", "valid", "test2016"):
        for lang in ("de", "en"):
            assert (tmp_path / "out" / f"{split}.{lang}").read_bytes() == (
                SHARED / "multi30k" / f"{split}.{lang}"
            ).read_bytes()


def test_multi30k_wrong_line_count_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("train", "val", "test_2016_flickr"):
        for lang in ("de", "en"):
            (source / f"{name}.{lang}.gz").write_bytes(gzip.compress(b"ein satz\n" * 10))
    p = run_script("multi30k", "--source", str(source), "--out", str(tmp_path / "out"))
    assert p.returncode != 0 and "train.de: 10 lines, expected 29,000" in p.stderr


def test_missing_local_file_is_an_error(tmp_path: Path) -> None:
    p = run_script("tatoeba_cmn", "--source", str(tmp_path), "--out", str(tmp_path / "out"))
    assert p.returncode != 0 and "cmn.txt: file not found" in p.stderr


def test_tatoeba_split_keeps_shared_sentences_together() -> None:
    rows = [(f"en{i}", f"zh{i}", f"#{i}") for i in range(60)]
    rows += [("en0", "zh-other", "#x"), ("en-dup", "zh1", "#y"), ("en5", "zh5", "#dup")]  # links and a duplicate
    splits = split_tatoeba(rows, test=10, valid=10, seed=1)
    assert [len(splits[s]) for s in ("test", "valid")] == [10, 10]
    assert sum(len(v) for v in splits.values()) == 62  # the exact duplicate (en5, zh5) dropped
    train_sents = {x for en, zh, _ in splits["train"] for x in (en, zh)}
    for split in ("test", "valid"):
        assert not train_sents & {x for en, zh, _ in splits[split] for x in (en, zh)}


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/corpora beside the checkout")
def test_tatoeba_from_a_local_cmn_txt(tmp_path: Path) -> None:
    t = SHARED / "tatoeba-cmn"
    columns = [(t / f"train.{s}").read_text(encoding="utf-8").splitlines()[:3000] for s in ("en", "zh", "attribution")]
    source = tmp_path / "source"
    source.mkdir()
    lines = ["\t".join(row) for row in zip(*columns, strict=True)]
    (source / "cmn.txt").write_text("\ufeff" + "\n".join(lines + lines[:5]) + "\n", encoding="utf-8")
    p = run_script("tatoeba_cmn", "--source", str(source), "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    out = {
        s: (tmp_path / "out" / f"{s}.en").read_text(encoding="utf-8").splitlines() for s in ("train", "valid", "test")
    }
    assert len(out["test"]) == 1000 and len(out["valid"]) == 1000 and sum(map(len, out.values())) == 3000
    zh = (tmp_path / "out" / "train.zh").read_text(encoding="utf-8").splitlines()
    attribution = (tmp_path / "out" / "train.attribution").read_text(encoding="utf-8").splitlines()
    assert len(zh) == len(attribution) == len(out["train"])
    assert all(a.startswith("CC-BY 2.0 (France)") for a in attribution)
