"""The side-by-side benchmark's seq2seq half runs (speed is benchmarked, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_peers_quick_measures_training_and_both_searches(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--quick", "--threads", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["threads"] == 1 and report["torch"]
    tasks = {(r["task"], r["system"], r["arch"], r["precision"], r["unit"]) for r in report["rows"]}
    assert tasks == {
        ("train", "seq2seq", "lstm-general", "fp32", "words/s"),
        ("decode_greedy", "seq2seq", "lstm-general", "fp32", "sentences/s"),
        ("decode_beam5", "seq2seq", "lstm-general", "fp32", "sentences/s"),
        ("decode_greedy", "seq2seq", "lstm-general", "int8", "sentences/s"),  # the same model with int8 weights
        ("decode_beam5", "seq2seq", "lstm-general", "int8", "sentences/s"),
    }
    assert all(r["value"] > 0 for r in report["rows"])
    assert "| train | seq2seq | lstm-general | fp32 |" in proc.stdout  # the Markdown table
