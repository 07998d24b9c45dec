"""Evaluation: sacreBLEU BLEU and chrF, BLEU by source length, and alignment accuracy.

Also the ``seq2seq-eval`` entry point.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from sacrebleu.metrics import BLEU, CHRF

from seq2seq.config import (
    CONFIG_DIR,
    DataConfig,
    EvalConfig,
    SearchConfig,
    check_choices,
    register_configs,
    uses_attention,
)
from seq2seq.data.batching import bucket_batches, collate
from seq2seq.data.corpus import ParallelCorpus, load_split
from seq2seq.errors import ConfigError, Seq2SeqError
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.search import Translation, describe, translate_sentences
from seq2seq.tokenizer import Tokenizer

LENGTH_BUCKETS: tuple[tuple[int, int], ...] = ((1, 10), (11, 20), (21, 30), (31, 40), (41, 10_000))


def length_buckets(upper: list[int] | tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``[10, 15, 20]`` -> 1-10, 11-15, 16-20, 21+ (``data.length_buckets``)."""
    if not upper or list(upper) != sorted(set(upper)) or upper[0] < 1:
        raise ConfigError(f"data.length_buckets={list(upper)}: give increasing word counts, e.g. [10, 20, 30]")
    lows = [1] + [u + 1 for u in upper]
    return tuple(zip(lows, [*upper, 10_000], strict=True))


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


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}+" if hi >= 10_000 else f"{lo}-{hi}"


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


def word_index(pieces: list[str]) -> list[int]:
    """The word each SentencePiece piece belongs to (a piece starting with ``▁`` starts a word)."""
    index, word = [], -1
    for piece in pieces:
        if piece.startswith("▁") or word < 0:
            word += 1
        index.append(word)
    return index


@torch.no_grad()
def forced_weights(
    model: Seq2Seq,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    corpus: ParallelCorpus,
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
    model: Seq2Seq,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    corpus: ParallelCorpus,
    tokenize: str,
    batch_size: int = 128,
    search: SearchConfig | None = None,
    device: torch.device | str = "cpu",
    with_alignment: bool = True,
    buckets: tuple[tuple[int, int], ...] = LENGTH_BUCKETS,
) -> tuple[dict[str, Any], list[Translation]]:
    """Translate ``corpus.src`` with ``search`` (default greedy) and score against ``corpus.tgt``,
    overall and by source length (``buckets``)."""
    search = search or SearchConfig()
    start = time.perf_counter()
    translations = translate_sentences(model, src_tokenizer, tgt_tokenizer, corpus.src, batch_size, search, device)
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
    if with_alignment and corpus.alignments is not None:
        weights = forced_weights(model, src_tokenizer, tgt_tokenizer, corpus, batch_size, device)
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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name}, but torch sees no CUDA device here (use device=auto or cpu)")
    return torch.device(name)


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


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    from seq2seq.checkpoint import load_model

    device = resolve_device(cfg.device)
    loaded = load_model(cfg.checkpoint, device)
    data = eval_data(cfg.data, loaded.config["data"])
    split = cfg.split or data.test
    corpus = load_split(data.root, split, data.src_lang, data.tgt_lang)
    tokenize = bleu_tokenizer(data.bleu_tokenize, data.tgt_lang)
    is_attention = uses_attention(loaded.config["model"]["decoder"])
    report, translations = evaluate_model(
        loaded.model,
        loaded.src_tokenizer,
        loaded.tgt_tokenizer,
        corpus,
        tokenize,
        cfg.batch_size,
        cfg,
        device,
        with_alignment=is_attention,
        buckets=length_buckets(data.length_buckets),
    )
    report = {"checkpoint": str(cfg.checkpoint), "data": data.name, "split": split, **report}
    beam = f"-beam{cfg.beam}" if cfg.beam > 1 else ""
    output = Path(cfg.output) if cfg.output else Path(cfg.checkpoint).parent / f"eval-{data.name}-{split}{beam}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    output.with_suffix(".hyp").write_text("".join(t.text + "\n" for t in translations), encoding="utf-8")
    return {**report, "output": str(output)}


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['data']}/{report['split']}: {report['sentences']} sentences, {report['search']}")
    print(f"BLEU {report['bleu']:.2f}  {report['bleu_signature']}")
    print(f"chrF {report['chrf']:.2f}  {report['chrf_signature']}")
    if "alignment_accuracy" in report:
        print(f"alignment accuracy {100 * report['alignment_accuracy']:.1f}%")
    print(
        "BLEU by source length: "
        + ", ".join(f"{r['bucket']}: {r['bleu']:.1f} ({r['sentences']})" for r in report["bleu_by_src_len"])
    )
    print(f"report: {report['output']}")


register_configs()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        check_choices(cfg)
        print_report(run_eval(cfg))  # type: ignore[arg-type]
    except (Seq2SeqError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
