"""The comparison report that ``seq2seq-compare`` and ``seq2seq-gather`` write.

Every trained run folder's checkpoint is evaluated on one split; the report is
``comparison.md`` (tables), ``comparison.json``, ``bleu_by_length.png``, ``attention_heatmap.png``
and ``training_curves.png``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from seq2seq.checkpoint import load_model, read_checkpoint
from seq2seq.config import (
    SearchConfig,
    attention_name,
    describe_model,
    length_buckets,
    saved_model_config,
    uses_attention,
)
from seq2seq.data.corpus import load_split
from seq2seq.device import resolve_device
from seq2seq.evaluation import bleu_tokenizer, evaluate_model
from seq2seq.search import Translation, describe

log = logging.getLogger("seq2seq")
MAX_HEATMAPS = 6  # panels in attention_heatmap.png (the first models of a larger report)


def report_runs(
    runs: dict[str, Path],
    *,
    data: Any,
    split: str,
    search: SearchConfig,
    batch_size: int,
    device_name: str,
    out_dir: Path,
    checkpoints: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Evaluate each trained run folder's ``best.pt`` (or the file ``checkpoints`` names for it) on
    one split (``""``: ``data.test``) and write one report (tables, BLEU by length, heatmaps,
    curves) into ``out_dir``. Params, epochs and train time come from the run's ``last.pt``."""
    split = split or data.test
    test = load_split(data.root, split, data.src_lang, data.tgt_lang)
    tokenize = bleu_tokenizer(data.bleu_tokenize, data.tgt_lang)
    buckets = length_buckets(data.length_buckets)
    device = resolve_device(device_name)
    models: dict[str, Any] = {}
    translations: dict[str, list[Translation]] = {}
    histories: dict[str, list[dict[str, Any]]] = {}
    signature = ""
    for name, run_dir in runs.items():
        checkpoint = (checkpoints or {}).get(name, run_dir / "best.pt")
        loaded = load_model(checkpoint, device)
        model_cfg = saved_model_config(loaded.config["model"])
        state = read_checkpoint(run_dir / "last.pt").get("train_state", {})
        report, translations[name] = evaluate_model(
            loaded.model,
            loaded.src_tokenizer,
            loaded.tgt_tokenizer,
            test,
            tokenize=tokenize,
            batch_size=batch_size,
            search=search,
            device=device,
            with_alignment=uses_attention(model_cfg.decoder),
            buckets=buckets,
        )
        signature = report.pop("bleu_signature")
        history = state.get("history", [])
        histories[name] = history
        models[name] = {
            "model": describe_model(model_cfg),
            "decoder": model_cfg.decoder,
            "attention": attention_name(model_cfg),
            **report,
            "params": loaded.model.num_parameters,
            "epochs": history[-1]["epoch"] if history else 0,
            "steps": state.get("step", 0),
            "train_seconds": round(state.get("train_seconds", 0.0), 1),
            "train_tokens_per_second": round(sum(r["tokens_per_second"] for r in history) / max(len(history), 1)),
            "best_valid_bleu": state.get("best_bleu"),
            "checkpoint": str(checkpoint),
        }
        log.info("%s: %s BLEU %.2f, chrF %.2f", name, split, report["bleu"], report["chrf"])
    summary = {
        "data": data.name,
        "split": split,
        "search": describe(search),
        "bleu_signature": signature,
        "models": models,
    }
    write_report(summary, out_dir, test.src, translations, histories)
    return summary


def pick_example(sources: list[str], lo: int = 18, hi: int = 28) -> int:
    """A long-ish test sentence that still fits a readable heatmap: the first one of ``lo`` to
    ``hi`` words, ``lo`` lowered to the corpus's 90th percentile when its sentences are short."""
    lengths = [len(s.split()) for s in sources]
    lo = min(lo, sorted(lengths)[int(0.9 * (len(lengths) - 1))])
    for i, n in enumerate(lengths):
        if lo <= n <= hi:
            return i
    return min(range(len(sources)), key=lambda i: abs(lengths[i] - hi))


def write_report(
    summary: dict[str, Any],
    out_dir: Path,
    sources: list[str],
    translations: dict[str, list[Translation]],
    histories: dict[str, list[dict[str, Any]]],
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "comparison.md").write_text(markdown_report(summary), encoding="utf-8")
    try:
        from seq2seq import plots
    except ImportError:  # matplotlib missing: tables only
        log.warning("matplotlib is not installed: no figures")
        return
    models = summary["models"]
    plots.plot_bleu_by_length(
        {name: m["bleu_by_src_len"] for name, m in models.items()},
        out_dir / "bleu_by_length.png",
        title=f"{summary['data']} {summary['split']}: BLEU by source length",
    )
    i = pick_example(sources)
    panels = []
    for name, ts in list(translations.items())[:MAX_HEATMAPS]:
        t = ts[i]
        how = "a fresh c_i per word" if models[name]["attention"] else "one C for every word: uniform"
        panels.append(
            (
                f"{name} ({how}), {summary['split']} BLEU {models[name]['bleu']:.1f}",
                t.source_tokens,
                t.tokens,
                t.attention,
            )
        )
    plots.plot_attention(panels, out_dir / "attention_heatmap.png")
    plots.plot_curves(histories, out_dir / "training_curves.png")


def markdown_report(summary: dict[str, Any]) -> str:
    models = summary["models"]
    names = list(models)
    lines = [
        f"# {' vs '.join(names)} on {summary['data']} ({summary['split']} split, {summary['search']})",
        "",
        "| model | architecture | BLEU | chrF | alignment acc. | params | epochs | train time | train tok/s "
        "| decode sent/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in models.items():
        acc = f"{100 * m['alignment_accuracy']:.1f}%" if m.get("alignment_accuracy") is not None else "n/a"
        row = [name, m.get("model", m["decoder"]), f"{m['bleu']:.2f}", f"{m['chrf']:.2f}", acc, f"{m['params']:,}"]
        row += [str(m["epochs"]), f"{m['train_seconds']:.0f} s", f"{m['train_tokens_per_second']:,}"]
        lines.append("| " + " | ".join([*row, f"{m['sentences_per_second']:,}"]) + " |")
    buckets = [r["bucket"] for r in models[names[0]]["bleu_by_src_len"]]
    lines += ["", "BLEU by source length (words):", "", "| source length | sentences | " + " | ".join(names) + " |"]
    lines.append("|---|---:|" + "---:|" * len(names))
    for k, bucket in enumerate(buckets):
        row = [f"{models[n]['bleu_by_src_len'][k]['bleu']:.2f}" for n in names]
        lines.append(f"| {bucket} | {models[names[0]]['bleu_by_src_len'][k]['sentences']} | " + " | ".join(row) + " |")
    files = {n: Path(m["checkpoint"]).name for n, m in models.items()}
    if any(f != "best.pt" for f in files.values()):
        lines += ["", "Checkpoints evaluated: " + ", ".join(f"{n}: `{f}`" for n, f in files.items())]
    lines += [
        "",
        f"BLEU signature: `{summary['bleu_signature']}`",
        "",
        "![BLEU by source length](bleu_by_length.png)",
        "",
        "![Attention heatmaps](attention_heatmap.png)",
        "",
        "![Training curves](training_curves.png)",
        "",
    ]
    return "\n".join(lines)
