"""The comparison report that ``seq2seq-compare`` and ``seq2seq-gather`` write.

Every trained run folder's checkpoint is evaluated on one split; the report is
``comparison.md`` (tables), ``comparison.json``, ``bleu_by_length.png``, ``attention_heatmap.png``
and ``training_curves.png``.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seq2seq.checkpoint import Loaded, load_model, read_checkpoint
from seq2seq.config import (
    DataConfig,
    TrainerConfig,
    attention_name,
    describe_model,
    length_buckets,
    saved_model_config,
    uses_attention,
)
from seq2seq.data.batching import collate
from seq2seq.data.corpus import load_split
from seq2seq.decoding import Decoding
from seq2seq.evaluation import bleu_tokenizer, evaluate_model, paired_bootstrap
from seq2seq.models.encoder import SelfAttentionEncoder
from seq2seq.runfolder import BEST, LAST
from seq2seq.search import describe
from seq2seq.translator import Translation

log = logging.getLogger("seq2seq")
MAX_HEATMAPS = 6  # panels in attention_heatmap.png (the first models of a larger report)


@dataclass
class ReportedRun:
    """One run of a report: its folder (whose ``last.pt`` holds the training history), the
    checkpoint evaluated, and that checkpoint loaded (read once)."""

    folder: Path
    checkpoint: Path
    loaded: Loaded


def load_runs(
    runs: dict[str, Path], checkpoints: dict[str, Path], device: torch.device, quantize: str = "none"
) -> dict[str, ReportedRun]:
    """Each run's checkpoint (``checkpoints[name]``, else its ``best.pt``), loaded once (int8 with
    ``quantize="int8"``)."""
    out = {}
    for name, folder in runs.items():
        checkpoint = checkpoints.get(name, folder / BEST)
        out[name] = ReportedRun(folder, checkpoint, load_model(checkpoint, device, quantize))
    return out


def report_runs(
    runs: dict[str, ReportedRun], *, data: Any, split: str, decoding: Decoding, out_dir: Path
) -> dict[str, Any]:
    """Evaluate each run's loaded checkpoint on one split (``""``: ``data.test``), decoded as
    ``decoding`` says, and write one report (tables, BLEU by length, heatmaps, curves) into
    ``out_dir``. Params, epochs and train time come from the run's ``last.pt``."""
    split = split or data.test
    test = load_split(data.root, split, data.src_lang, data.tgt_lang)
    tokenize = bleu_tokenizer(data.bleu_tokenize, data.tgt_lang)
    buckets = length_buckets(data.length_buckets)
    models: dict[str, Any] = {}
    translations: dict[str, list[Translation]] = {}
    histories: dict[str, list[dict[str, Any]]] = {}
    signature = ""
    example = pick_example(test.src)  # the sentence of the heatmaps
    self_maps: dict[str, tuple[str, list[str], torch.Tensor]] = {}  # self-attention encoders' maps of it
    setups: dict[str, tuple[str, int | None]] = {}  # each run's training setup without its seed, and the seed
    for name, run in runs.items():
        loaded = run.loaded
        report, translations[name] = evaluate_model(
            loaded.model, loaded.src_tokenizer, loaded.tgt_tokenizer, test, tokenize=tokenize,
            batch_size=decoding.batch_size, search=decoding.search, device=decoding.device,
            with_alignment=uses_attention(saved_model_config(loaded.config["model"]).decoder), buckets=buckets,
            autocast=decoding.autocast,
        )  # fmt: skip
        signature = report.pop("bleu_signature")
        state = read_checkpoint(run.folder / LAST).get("train_state", {})
        histories[name] = state.get("history", [])
        models[name] = model_row(run, report, state)
        log.info("%s: %s BLEU %.2f, chrF %.2f", name, split, report["bleu"], report["chrf"])
        setups[name] = without_seed(loaded.config)
        if isinstance(loaded.model.encoder, SelfAttentionEncoder):
            self_maps[name] = encoder_map(loaded, translations[name][example], decoding.device)  # type: ignore[arg-type]
    summary = {"data": data.name, "split": split, "search": describe(decoding.search), "bleu_signature": signature}
    summary["models"] = models
    texts = {name: [t.text for t in ts] for name, ts in translations.items()}
    significance = paired_bootstrap(texts, test.tgt, tokenize)
    if significance:
        for name, figures in significance.pop("systems").items():
            models[name]["significance"] = figures
        summary["significance"] = significance
    if self_maps:
        summary["self_attention"] = {name: title for name, (title, _, _) in self_maps.items()}
    seeds = seed_groups(models, setups)
    if seeds:
        summary["seeds"] = seeds
    write_report(summary, out_dir, test.src, translations, histories, self_maps)
    return summary


def model_row(run: ReportedRun, report: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """One model's row of the report: what it is, what it scored, and how it trained (``state``:
    its ``last.pt``'s train state)."""
    model_cfg = saved_model_config(run.loaded.config["model"])
    history = state.get("history", [])
    return {
        "model": describe_model(model_cfg),
        "decoder": model_cfg.decoder,
        "attention": attention_name(model_cfg),
        **report,
        "params": run.loaded.model.num_parameters,
        "epochs": history[-1]["epoch"] if history else 0,
        "steps": state.get("step", 0),
        "train_seconds": round(state.get("train_seconds", 0.0), 1),
        "train_tokens_per_second": round(sum(r["tokens_per_second"] for r in history) / max(len(history), 1)),
        "best_valid_bleu": state.get("best_bleu"),
        "checkpoint": str(run.checkpoint),
    }


@torch.no_grad()
def encoder_map(loaded: Loaded, t: Translation, device: torch.device) -> tuple[str, list[str], torch.Tensor]:
    """The self-attention encoder's last layer, heads averaged, on ``t``'s source: a title, the
    source tokens and the map (S, S)."""
    batch = collate(loaded.src_tokenizer.encode_batch([t.source])).to(device)
    weights = (
        loaded.model.eval().encoder(batch.src, batch.src_mask, weights=True).self_weights
    )  # (1, h, S, S) per layer
    title = f"encoder self-attention, layer {len(weights)} of {len(weights)}, mean of {weights[-1].size(1)} heads"
    return title, t.source_tokens, weights[-1][0].mean(0).float().cpu()


def without_seed(config: dict[str, Any]) -> tuple[str, int | None]:
    """A run's training setup (data, model, trainer, search) as a key with the seed and the
    settings that do not change the updates left out, and the seed."""
    trainer = {k: v for k, v in config.get("trainer", {}).items() if k not in TrainerConfig.RESUME_MAY_CHANGE}
    data = {k: v for k, v in config.get("data", {}).items() if k not in ("root", *DataConfig.RESUME_MAY_CHANGE)}
    setup = {"data": data, "model": config.get("model"), "trainer": trainer}
    return json.dumps(setup, sort_keys=True, default=str), config.get("seed")


def seed_groups(models: dict[str, Any], setups: dict[str, tuple[str, int | None]]) -> list[dict[str, Any]]:
    """Runs that differ only in their seed, as BLEU and chrF mean ± sample standard deviation."""
    by_setup: dict[str, list[str]] = {}
    for name, (setup, _) in setups.items():
        by_setup.setdefault(setup, []).append(name)
    groups = []
    for names in by_setup.values():
        seeds = [setups[n][1] for n in names]
        if len(names) < 2 or len(set(seeds)) < len(seeds):
            continue
        group: dict[str, Any] = {"models": names, "seeds": seeds}
        for metric in ("bleu", "chrf"):
            values = [models[n][metric] for n in names]
            group[f"{metric}_mean"] = round(statistics.mean(values), 2)
            group[f"{metric}_sd"] = round(statistics.stdev(values), 2)
        groups.append(group)
    return groups


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
    self_maps: dict[str, tuple[str, list[str], torch.Tensor]] | None = None,
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
    i = pick_example(sources)  # as report_runs picked it
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
    if self_maps:  # self-attention inside the source: which source words each source word looked at
        own = [(f"{name}:\n{title}", tokens, tokens, w) for name, (title, tokens, w) in self_maps.items()]
        plots.plot_attention(
            own[:MAX_HEATMAPS],
            out_dir / "encoder_self_attention.png",
            xlabel="source (keys)",
            ylabel="source (queries)",
        )
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
    if "significance" in summary:
        lines += significance_table(summary)
    for group in summary.get("seeds", []):
        lines += [
            "",
            f"Runs that differ only in seed ({', '.join(group['models'])}; seeds "
            f"{', '.join(str(s) for s in group['seeds'])}): BLEU {group['bleu_mean']:.2f} ± {group['bleu_sd']:.2f}, "
            f"chrF {group['chrf_mean']:.2f} ± {group['chrf_sd']:.2f} (mean ± sample standard deviation)",
        ]
    files = {n: Path(m["checkpoint"]).name for n, m in models.items()}
    if any(f != BEST for f in files.values()):
        lines += ["", "Checkpoints evaluated: " + ", ".join(f"{n}: `{f}`" for n, f in files.items())]
    lines += [
        "",
        f"BLEU signature: `{summary['bleu_signature']}`",
        "",
        "![BLEU by source length](bleu_by_length.png)",
        "",
        "![Attention heatmaps](attention_heatmap.png)",
        "",
        *(["![Encoder self-attention](encoder_self_attention.png)", ""] if summary.get("self_attention") else []),
        "![Training curves](training_curves.png)",
        "",
    ]
    return "\n".join(lines)


def significance_table(summary: dict[str, Any]) -> list[str]:
    """ΔBLEU against the first model with its 95 % interval and p-value (paired bootstrap)."""
    sig = summary["significance"]
    lines = [
        "",
        f"Against {sig['baseline']}, by sacreBLEU's paired bootstrap resampling (`{sig['signature']}`); "
        "* marks p < 0.05:",
        "",
        "| model | ΔBLEU | 95 % interval | p-value |",
        "|---|---:|---|---:|",
    ]
    for name, m in summary["models"].items():
        if "significance" in m:
            s = m["significance"]
            star = "*" if s["p_value"] < 0.05 else ""
            low, high = s["ci95"]
            lines.append(f"| {name} | {s['delta_bleu']:+.2f}{star} | [{low:+.2f}, {high:+.2f}] | {s['p_value']:.4f} |")
    return lines
