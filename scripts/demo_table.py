"""The README's demo figures, from a finished demo run (``make demo`` writes runs/demo).

python scripts/demo_table.py runs/demo                     # print the Markdown
python scripts/demo_table.py runs/demo --readme README.md  # rewrite it between the demo-table markers

Every figure between ``<!-- demo-table:begin -->`` and ``<!-- demo-table:end -->`` comes from the
run's ``comparison.json``, so the README shows what a fresh clone prints. ``make readme-demo``
runs the demo and this script in one command.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- demo-table:begin -->", "<!-- demo-table:end -->"


def model_label(name: str, m: dict[str, Any]) -> str:
    """``attention (Bahdanau, additive)``, ``fixed_context (Cho)``."""
    decoder = m["decoder"].capitalize()
    return f"{name} ({decoder}, {m['attention']})" if m.get("attention") else f"{name} ({decoder})"


def demo_markdown(summary: dict[str, Any]) -> str:
    """The results table, BLEU by source length and the signatures of one comparison report."""
    models = summary["models"]
    lines = [
        "| model | BLEU | chrF | alignment acc. | params | epochs | train time | train tok/s | decode sent/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in models.items():
        acc = f"{100 * m['alignment_accuracy']:.1f}%" if m.get("alignment_accuracy") is not None else "n/a"
        lines.append(
            f"| {model_label(name, m)} | {m['bleu']:.2f} | {m['chrf']:.2f} | {acc} | {m['params']:,} | {m['epochs']} "
            f"| {m['train_seconds']:.0f} s | {m['train_tokens_per_second']:,} | {m['sentences_per_second']:,} |"
        )
    names = list(models)
    first = models[names[0]]["bleu_by_src_len"]
    lines += ["", f"BLEU by source length (words), same run ({summary['split']} split, {summary['search']}):", ""]
    lines += ["| source length | sentences | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for k, row in enumerate(first):
        bleus = " | ".join(f"{models[n]['bleu_by_src_len'][k]['bleu']:.2f}" for n in names)
        lines.append(f"| {row['bucket']} | {row['sentences']} | {bleus} |")
    lines += ["", f"BLEU signature: `{summary['bleu_signature']}`"]
    return "\n".join(lines)


def rewrite(readme: str, markdown: str) -> str:
    """``readme`` with the text between the markers replaced by ``markdown``."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(readme):
        raise SystemExit(f"error: no {BEGIN} ... {END} markers in the README")
    return pattern.sub(lambda _: f"{BEGIN}\n{markdown}\n{END}", readme, count=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the demo's run folder (holds comparison.json)")
    parser.add_argument("--readme", type=Path, help="rewrite this README between the markers")
    args = parser.parse_args()
    report = args.run / "comparison.json"
    if not report.is_file():
        raise SystemExit(f"error: {report} not found: run `make demo` first")
    markdown = demo_markdown(json.loads(report.read_text(encoding="utf-8")))
    if args.readme:
        args.readme.write_text(rewrite(args.readme.read_text(encoding="utf-8"), markdown), encoding="utf-8")
        print(f"rewrote the demo figures in {args.readme}")
    else:
        print(markdown)


if __name__ == "__main__":
    main()
