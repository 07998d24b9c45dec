"""The long-range probe: how often a model gets a target word right, by how far its source word lies.

    python benchmarks/long_range.py runs/demo/attention/best.pt runs/tf/best.pt [--split test]

For every target word with a gold link (the toy corpus has them, in ``{split}.align``), the
*jump* is the distance, in source words, from the source word the previous target word
translates to the one this word translates (the first target word jumps from just before the
source). Clause swaps (``A because B`` -> ``因为 B ， 所以 A``), relative clauses and time phrases
moved before the verb make long jumps. A word is *right* when, reading the reference prefix
(teacher forcing), the model's most probable next pieces are the reference word's pieces.
Prints one Markdown table, one column per checkpoint: words and accuracy per jump bucket, and
the share of each bucket's words the model's attention put on a gold source word (alignment).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from seq2seq.checkpoint import load_model
from seq2seq.config import describe_model, saved_model_config
from seq2seq.data.batching import bucket_batches, collate
from seq2seq.data.corpus import load_split
from seq2seq.tokenizer import word_index

BUCKETS = ((0, 0), (1, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, 10_000))


def jumps(links: list[tuple[int, int]]) -> dict[int, int]:
    """Target word -> the jump to its source words from the previous aligned target word's."""
    sources: dict[int, set[int]] = {}
    for i, j in links:
        sources.setdefault(j, set()).add(i)
    out, previous = {}, {-1}
    for j in sorted(sources):
        out[j] = min(abs(i - p) for i in sources[j] for p in previous)
        previous = sources[j]
    return out


@torch.no_grad()
def probe(checkpoint: Path, split: str, root: str | None, batch_size: int) -> dict[str, list[int]]:
    """Per bucket: [words, right, attended to a gold source word]."""
    loaded = load_model(checkpoint)
    data = loaded.config["data"]
    corpus = load_split(root or data["root"], split, data["src_lang"], data["tgt_lang"])
    if corpus.alignments is None:
        raise SystemExit(f"{split}.align not found under {root or data['root']}: the probe needs gold links")
    src_tok, tgt_tok, model = loaded.src_tokenizer, loaded.tgt_tokenizer, loaded.model.eval()
    src_ids, tgt_ids = src_tok.encode_batch(corpus.src), tgt_tok.encode_batch(corpus.tgt)
    counts = {b: [0, 0, 0] for b in BUCKETS}
    for index in bucket_batches([len(s) for s in src_ids], batch_size):
        batch = collate([src_ids[i] for i in index], [tgt_ids[i] for i in index])
        logits, weights = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V), (B, T, S)
        right = logits.argmax(dim=-1) == batch.tgt_out  # (B, T)
        for row, i in enumerate(index):
            t_word = word_index(tgt_tok.id_to_piece(tgt_ids[i]))  # piece -> target word
            s_word = torch.tensor(word_index(src_tok.id_to_piece(src_ids[i])))  # piece -> source word
            n_src = int(s_word.max()) + 1 if len(s_word) else 0
            gold: dict[int, set[int]] = {}
            for s, t in corpus.alignments[i]:
                gold.setdefault(t, set()).add(s)
            for j, jump in jumps(corpus.alignments[i]).items():
                pieces = [p for p, w in enumerate(t_word) if w == j]
                if not pieces or n_src == 0:
                    continue
                by_word = torch.zeros(n_src).index_add_(0, s_word, weights[row, pieces, : len(s_word)].sum(0))
                bucket = next(b for b in BUCKETS if b[0] <= jump <= b[1])
                counts[bucket][0] += 1
                counts[bucket][1] += bool(right[row, pieces].all())
                counts[bucket][2] += int(by_word.argmax()) in gold[j]
    return {(str(lo) if lo == hi else f"{lo}-{hi}" if hi < 10_000 else f"{lo}+"): c for (lo, hi), c in counts.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--root", default=None, help="the corpus folder (default: the one each checkpoint was trained on)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", type=Path, default=None, help="also write the counts here")
    args = p.parse_args()
    results = {str(c): probe(c, args.split, args.root, args.batch_size) for c in args.checkpoints}
    names = [describe_model(saved_model_config(load_model(c).config["model"])) for c in args.checkpoints]
    print(f"Long-range probe on the {args.split} split: accuracy of the next word (teacher forcing) | share of")
    print("words whose most-attended source word is a gold link, by the jump in source words from the previous")
    print("word's source.\n")
    for k, (c, name) in enumerate(zip(args.checkpoints, names, strict=True), 1):
        print(f"{k}. `{c}`: {name}")
    header = " | ".join(f"{k}. accuracy | {k}. attention" for k in range(1, len(names) + 1))
    print(f"\n| jump | words | {header} |")
    print("|---|---:|" + "---:|---:|" * len(names))
    for bucket in next(iter(results.values())):
        words = results[str(args.checkpoints[0])][bucket][0]
        cells = []
        for c in args.checkpoints:
            n, right, looked = results[str(c)][bucket]
            cells += [f"{100 * right / max(n, 1):.1f}%", f"{100 * looked / max(n, 1):.1f}%"]
        print(f"| {bucket} | {words:,} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
