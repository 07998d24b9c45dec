"""Evaluation: sacreBLEU BLEU and chrF, BLEU by source length, and alignment accuracy
(``seq2seq-eval`` runs :func:`run_eval`; training's validation, :func:`validate_model`, scores the same way)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from seq2seq.config import (
    LENGTH_BUCKET_EDGES,
    LONGEST,
    DataConfig,
    EvalConfig,
    SearchConfig,
    check_data,
    check_eval,
    checkpoint_files,
    length_buckets,
)
from seq2seq.data.batching import bucket_batches, collate
from seq2seq.data.corpus import ParallelCorpus, load_split
from seq2seq.decoding import decoding_for
from seq2seq.loss import mean_loss
from seq2seq.models.ensemble import Ensemble
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.search import describe
from seq2seq.shortlist import Shortlist
from seq2seq.tokenizer import Tokenizer, word_index
from seq2seq.translator import Translation, translate_sentences

LENGTH_BUCKETS: tuple[tuple[int, int], ...] = length_buckets(LENGTH_BUCKET_EDGES)  # data.length_buckets' default


def bleu_tokenizer(setting: str, tgt_lang: str) -> str:
    """sacreBLEU's tokenizer: ``zh`` for Chinese targets, ``13a`` otherwise, unless set."""
    if setting != "auto":
        return setting
    return "zh" if tgt_lang.lower().startswith(("zh", "cmn")) else "13a"


def corpus_scores(hyps: list[str], refs: list[str], tokenize: str) -> dict[str, Any]:
    """Corpus BLEU and chrF with their sacreBLEU signatures."""
    bleu, chrf = BLEU(tokenize=tokenize), CHRF()
    return {
        "bleu": round(bleu.corpus_score(hyps, [refs]).score, 2),
        "chrf": round(chrf.corpus_score(hyps, [refs]).score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def paired_bootstrap(
    systems: dict[str, list[str]], refs: list[str], tokenize: str, samples: int = 1000
) -> dict[str, Any]:
    """BLEU of every system against the first, by sacreBLEU's paired bootstrap resampling (its
    ``--paired-bs``, Koehn 2004): the same ``samples`` resamples of the test sentences score every
    system. For each system but the first: ``delta_bleu`` (its BLEU minus the first's), ``ci95``
    (the 2.5th and 97.5th percentiles of the delta over the resamples), ``p_value`` (sacreBLEU's:
    the chance of a difference this large if the systems were alike), and sacreBLEU's bootstrap
    ``mean`` and ``ci`` (half-width) of its BLEU, which ``sacrebleu --paired-bs`` prints as
    ``μ = mean ± ci``. The delta's interval reads the resamples sacreBLEU draws (its seed,
    ``SACREBLEU_SEED``, default 12345) with its own sufficient statistics."""
    named = list(systems.items())
    if len(named) < 2:
        return {}
    metric = BLEU(tokenize=tokenize)
    sacrebleu_log = logging.getLogger("sacrebleu")  # it logs each step at INFO
    level = sacrebleu_log.level
    sacrebleu_log.setLevel(logging.WARNING)
    try:
        test = PairedTest(named, {"BLEU": metric}, references=[refs], test_type="bs", n_samples=samples)
        signatures, results = test()
    finally:
        sacrebleu_log.setLevel(level)
    name = next(iter(signatures))
    seed = test._seed or None  # as PairedTest.__call__ passes it on
    draws = np.random.default_rng(seed).choice(len(refs), size=(samples, len(refs)), replace=True)

    def resampled(hyps: list[str]) -> np.ndarray:
        stats = np.array(metric._extract_corpus_statistics(hyps, [refs]), dtype="float32")  # (N, stats)
        return np.array([metric._compute_score_from_stats(s.sum(0)).score for s in stats[draws]])

    base = resampled(named[0][1])
    out: dict[str, Any] = {
        "baseline": named[0][0],
        "test": "paired bootstrap resampling",
        "signature": str(signatures[name]),
        "baseline_mean": round(float(results[name][0].mean), 2),
        "baseline_ci": round(float(results[name][0].ci), 2),
        "systems": {},
    }
    for (system, hyps), result in zip(named[1:], results[name][1:], strict=True):
        deltas = np.sort(resampled(hyps) - base)
        low = samples // 40  # as sacreBLEU's estimate_ci: the 2.5th percentile ...
        out["systems"][system] = {
            "delta_bleu": round(float(result.score - results[name][0].score), 2),
            "ci95": [round(float(deltas[low]), 2), round(float(deltas[samples - low - 1]), 2)],  # ... and the 97.5th
            "p_value": round(float(result.p_value), 4),
            "mean": round(float(result.mean), 2),
            "ci": round(float(result.ci), 2),
        }
    return out


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}+" if hi >= LONGEST else f"{lo}-{hi}"


def bleu_by_length(
    sources: list[str],
    hyps: list[str],
    refs: list[str],
    tokenize: str,
    buckets: tuple[tuple[int, int], ...] = LENGTH_BUCKETS,
) -> list[dict[str, Any]]:
    """Corpus BLEU of the sentences whose source has lo..hi words, for each bucket."""
    bleu = BLEU(tokenize=tokenize)
    rows = []
    for lo, hi in buckets:
        keep = [i for i, s in enumerate(sources) if lo <= len(s.split()) <= hi]
        if not keep:
            continue
        score = bleu.corpus_score([hyps[i] for i in keep], [[refs[i] for i in keep]]).score
        rows.append({"bucket": bucket_name(lo, hi), "sentences": len(keep), "bleu": round(score, 2)})
    return rows


@torch.no_grad()
def forced_weights(
    model: Seq2Seq,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    corpus: ParallelCorpus,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> list[torch.Tensor]:
    """Attention weights while the model reads the reference translation (teacher forcing),
    one ``(target tokens, source tokens)`` matrix per sentence, EOS rows and columns dropped."""
    model.eval()
    src_ids, tgt_ids = src_tokenizer.encode_batch(corpus.src), tgt_tokenizer.encode_batch(corpus.tgt)
    result: list[torch.Tensor | None] = [None] * len(corpus)
    for index in bucket_batches([len(s) for s in src_ids], batch_size):
        batch = collate([src_ids[i] for i in index], [tgt_ids[i] for i in index]).to(device)
        _, weights = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, S)
        for row, i in enumerate(index):
            result[i] = weights[row, : len(tgt_ids[i]), : len(src_ids[i])].float().cpu()
    return result  # type: ignore[return-value]


def attention_support(weights: list[torch.Tensor]) -> float:
    """The mean number of source pieces with a non-zero weight per target piece: every piece of the
    sentence under softmax, fewer under sparsemax and 1.5-entmax (``model.attention.normalizer``)."""
    rows = sum(w.size(0) for w in weights)
    return sum(int((w > 0).sum()) for w in weights) / max(rows, 1)


def alignment_accuracy(
    weights: list[torch.Tensor],
    src_pieces: list[list[str]],
    tgt_pieces: list[list[str]],
    gold: list[list[tuple[int, int]]],
) -> float:
    """Share of gold-aligned target words whose most-attended source word is a gold link.

    Piece weights become word weights: summed over a source word's pieces and over a target
    word's pieces (the argmax is that of the average). Target words without any gold link are not counted.
    """
    hits = total = 0
    for w, sp, tp, links in zip(weights, src_pieces, tgt_pieces, gold, strict=True):
        if not sp or not tp:  # a line with no tokens has nothing to align
            continue
        s_word, t_word = torch.tensor(word_index(sp)), torch.tensor(word_index(tp))
        n_src, n_tgt = int(s_word.max()) + 1, int(t_word.max()) + 1
        by_src = torch.zeros(w.size(0), n_src).index_add_(1, s_word, w)  # (T, words_src)
        by_word = torch.zeros(n_tgt, n_src).index_add_(0, t_word, by_src)  # (words_tgt, words_src)
        looked = by_word.argmax(dim=1).tolist()
        gold_sets: dict[int, set[int]] = {}
        for i, j in links:
            gold_sets.setdefault(j, set()).add(i)
        for j, sources in gold_sets.items():
            if j < n_tgt:
                total += 1
                hits += looked[j] in sources
    return hits / max(total, 1)


def evaluate_model(
    model: Seq2Seq | Ensemble,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    corpus: ParallelCorpus,
    *,
    tokenize: str,
    batch_size: int = 128,
    search: SearchConfig | None = None,
    device: torch.device | str = "cpu",
    with_alignment: bool = True,
    buckets: tuple[tuple[int, int], ...] = LENGTH_BUCKETS,
    autocast: torch.dtype | None = None,
    shortlist: Shortlist | None = None,
) -> tuple[dict[str, Any], list[Translation]]:
    """Translate ``corpus.src`` with ``search`` (default greedy; under ``autocast`` when given;
    scoring each batch's candidate target pieces only, with a ``shortlist``)
    and score against ``corpus.tgt``, overall and by source length (``buckets``)."""
    search = search or SearchConfig()
    start = time.perf_counter()
    translations = translate_sentences(
        model, src_tokenizer, tgt_tokenizer, corpus.src, batch_size=batch_size, cfg=search, device=device,
        autocast=autocast, shortlist=shortlist,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    hyps = [t.text for t in translations]
    report = {
        "search": describe(search),
        "sentences": len(corpus),
        **corpus_scores(hyps, corpus.tgt, tokenize),
        "bleu_by_src_len": bleu_by_length(corpus.src, hyps, corpus.tgt, tokenize, buckets),
        "decode_seconds": round(seconds, 2),
        "sentences_per_second": round(len(corpus) / seconds, 1),
    }
    if with_alignment:  # where the model looks while it reads the reference
        weights = forced_weights(model, src_tokenizer, tgt_tokenizer, corpus, batch_size=batch_size, device=device)
        report["attention_support"] = round(attention_support(weights), 2)
        if corpus.alignments is not None:
            report["alignment_accuracy"] = round(
                alignment_accuracy(
                    weights,
                    [src_tokenizer.pieces(s) for s in corpus.src],
                    [tgt_tokenizer.pieces(t) for t in corpus.tgt],
                    corpus.alignments,
                ),
                4,
            )
    return report, translations


def validate_model(
    model: Seq2Seq,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    corpus: ParallelCorpus,
    *,
    tokenize: str,
    batch_size: int,
    search: SearchConfig,
    device: torch.device,
    with_alignment: bool,
) -> tuple[dict[str, float], list[Translation]]:
    """What training records at a validation, scored by :func:`evaluate_model` as
    ``seq2seq-eval`` scores: ``valid_loss`` (per target token under teacher forcing, no label
    smoothing), ``valid_bleu``, ``valid_chrf`` and, with ``with_alignment`` on data with gold
    links, ``valid_alignment_accuracy``; and the translations (for the attention examples)."""
    src_ids, tgt_ids = src_tokenizer.encode_batch(corpus.src), tgt_tokenizer.encode_batch(corpus.tgt)
    loss = mean_loss(model, src_ids, tgt_ids, batch_size, device)
    report, translations = evaluate_model(
        model, src_tokenizer, tgt_tokenizer, corpus, tokenize=tokenize, batch_size=batch_size, search=search,
        device=device, with_alignment=with_alignment, buckets=(),
    )  # fmt: skip
    metrics = {"valid_loss": loss, "valid_bleu": report["bleu"], "valid_chrf": report["chrf"]}
    if "alignment_accuracy" in report:
        metrics["valid_alignment_accuracy"] = report["alignment_accuracy"]
    return metrics, translations


def eval_data(given: Any, trained_on: dict[str, Any]) -> Any:
    """``data=NAME`` picks a corpus; without it, the checkpoint's own data with any ``data.*``
    overrides on top (e.g. ``data.root=DIR``)."""
    if not OmegaConf.is_missing(given, "name"):
        return given
    defaults = OmegaConf.structured(DataConfig)
    changed = {
        k: given[k]
        for k in given
        if k != "tokenizer" and not OmegaConf.is_missing(given, k) and given[k] != defaults.get(k)
    }
    return OmegaConf.merge(OmegaConf.structured(DataConfig), trained_on, changed)


@dataclass
class EvalReport:
    """What ``seq2seq-eval`` measured on one split, as written to its JSON report."""

    checkpoint: str  # the file; an ensemble's files joined by " + "
    data: str
    split: str
    search: str  # the search in words ("greedy", "beam 5, length penalty gnmt α=1.0")
    sentences: int
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    bleu_by_src_len: list[dict[str, Any]]  # {"bucket": "1-10", "sentences": N, "bleu": B} per length bucket
    decode_seconds: float
    sentences_per_second: float
    alignment_accuracy: float | None = None  # attention models on data with gold alignments
    attention_support: float | None = None  # attention models: source pieces weighted > 0 per target piece
    output: str | None = None  # the JSON report's path
    precision: str = "fp32"  # the decoding's autocast (precision=bf16|fp16), fp32 without
    quantize: str = "none"  # int8: dynamic quantization of the linear and LSTM layers
    shortlist: str | None = None  # the vocabulary map file the search was restricted to

    def to_dict(self) -> dict[str, Any]:
        report = asdict(self)
        for key in ("alignment_accuracy", "attention_support", "shortlist"):
            if report[key] is None:
                del report[key]
        return report


def search_slug(cfg: SearchConfig) -> str:
    """The search settings in a file name: ``greedy``, ``beam5-gnmt1.0``, plus what else differs
    from the defaults (``-min3``, ``-len2.0x5``)."""
    slug = "greedy" if cfg.beam <= 1 else f"beam{cfg.beam}-{cfg.length_norm}{cfg.length_penalty}"
    default = SearchConfig()
    if cfg.min_len != default.min_len:
        slug += f"-min{cfg.min_len}"
    if (cfg.max_len_a, cfg.max_len_b) != (default.max_len_a, default.max_len_b):
        slug += f"-len{cfg.max_len_a}x{cfg.max_len_b}"
    return slug


def report_path(cfg: EvalConfig, data_name: str, split: str) -> Path:
    """``output=`` if given, else ``eval-{data}-{split}-{checkpoint name}-{search}.json`` beside
    the checkpoint (``...-bf16.json`` under ``precision=bf16``; ``-int8``, ``-shortlist-{the
    file's stem}`` likewise): each checkpoint and each search of a run keeps its own report. An
    ensemble's report is beside its first file, named ``ensembleN-{hash of the files' paths}``."""
    if cfg.output:
        return Path(cfg.output)
    files = [Path(f) for f in checkpoint_files("checkpoint", cfg.checkpoint)]
    model = files[0].stem
    if len(files) > 1:  # two runs' best.pt must not share a name: a hash of where the files are
        model = (
            f"ensemble{len(files)}-{hashlib.sha256(' '.join(str(f.resolve()) for f in files).encode()).hexdigest()[:8]}"
        )
    precision = (
        ("" if cfg.precision == "fp32" else f"-{cfg.precision}")
        + ("" if cfg.quantize == "none" else f"-{cfg.quantize}")
        + (f"-shortlist-{Path(cfg.shortlist).stem}" if cfg.shortlist else "")
    )
    name = re.sub(r"[^\w.+-]", "_", f"eval-{data_name}-{split}-{model}-{search_slug(cfg)}{precision}")
    return files[0].parent / f"{name}.json"


def run_eval(cfg: EvalConfig) -> EvalReport:
    """Evaluate ``cfg.checkpoint`` (a file, or a list of them: an ensemble) on one split and write
    the JSON report and the hypotheses (``.hyp``) beside it."""
    cfg = check_eval(cfg)
    decoding = decoding_for(cfg)
    files = checkpoint_files("checkpoint", cfg.checkpoint)
    loaded = decoding.load(files)
    data = eval_data(cfg.data, loaded.config["data"])
    check_data(data)  # the checkpoint's data with this command's data.* overrides on top
    split = cfg.split or data.test
    corpus = load_split(data.root, split, data.src_lang, data.tgt_lang)
    measured, translations = evaluate_model(
        loaded.model,
        loaded.src_tokenizer,
        loaded.tgt_tokenizer,
        corpus,
        tokenize=bleu_tokenizer(data.bleu_tokenize, data.tgt_lang),
        batch_size=decoding.batch_size,
        search=decoding.search,
        device=decoding.device,
        with_alignment=loaded.attends,
        buckets=length_buckets(data.length_buckets),
        autocast=decoding.autocast,
        shortlist=loaded.shortlist,
    )
    output = report_path(cfg, data.name, split)
    report = EvalReport(
        checkpoint=" + ".join(loaded.paths), data=data.name, split=split, **measured, output=str(output),
        precision=cfg.precision, quantize=cfg.quantize, shortlist=cfg.shortlist,
    )  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    output.with_suffix(".hyp").write_text("".join(t.text + "\n" for t in translations), encoding="utf-8")
    return report
