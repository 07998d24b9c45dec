"""Decoding speed: sentences/s and target tokens/s for greedy and beam search; prints a table.

    python benchmarks/decode.py                              # the peers' reference configuration
    python benchmarks/decode.py --src test.src --beams 1,5,10 --threads 2 --device cuda
    python benchmarks/decode.py --quantize none,int8 --repeat 3    # fp32 and int8 rows in one run

The reference configuration (``../shared/peers``): 1-layer biGRU encoder 256 per direction, GRU
512 decoder, 256-dim embeddings, additive attention, 2,000-word vocabularies, batch 64, every
output forced to exactly ``--out-len`` words (+ EOS), so each system does the same work whatever
its weights; the weights here are untrained for that reason. Sources: ``--src`` (one sentence of
space-separated words per line) or ``--sentences`` random ones of 3-30 words.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from seq2seq.config import AttentionConfig, ModelConfig, SearchConfig
from seq2seq.data.batching import bucket_batches, collate
from seq2seq.models.seq2seq import build_model
from seq2seq.quantization import quantize_int8
from seq2seq.search import search


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", help="source sentences, one per line (default: random)")
    p.add_argument("--sentences", type=int, default=500)
    p.add_argument("--vocab", type=int, default=2000)
    p.add_argument("--embed", type=int, default=256)
    p.add_argument("--hidden", type=int, default=512, help="decoder size; the biGRU has half per direction")
    p.add_argument("--score", default="additive")
    p.add_argument("--decoder", default="bahdanau")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--beams", default="1,5")
    p.add_argument("--out-len", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", type=int, default=1, help="best of N runs")
    p.add_argument("--quantize", default="none", help="none, int8 or both (none,int8): a row each, alternating")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = random.Random(1)
    if args.src:
        words = [line.split() for line in open(args.src, encoding="utf-8")]
        index: dict[str, int] = {}
        for w in (w for s in words for w in s):
            index.setdefault(w, 4 + len(index) % args.vocab)
        sources = [[index[w] for w in s] for s in words]
    else:
        sources = [[rng.randrange(4, args.vocab + 4) for _ in range(rng.randint(3, 30))] for _ in range(args.sentences)]
    torch.manual_seed(0)
    cfg = ModelConfig(
        decoder=args.decoder, embed_size=args.embed, hidden_size=args.hidden, dropout=0.0,
        attention=AttentionConfig(score=args.score),
    )  # fmt: skip
    model = build_model(cfg, args.vocab + 4, args.vocab + 4).to(device).eval()
    batches = [collate([sources[i] for i in idx]) for idx in bucket_batches([len(s) for s in sources], args.batch_size)]
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(
        f"device {device} ({where}), torch {torch.__version__}; {len(sources)} sentences, batch {args.batch_size}, "
        f"{model.num_parameters:,} params ({args.decoder}, {args.score}), outputs fixed at {args.out_len} words"
    )
    models = {q: model if q == "none" else quantize_int8(model) for q in args.quantize.split(",")}
    print("| search | weights | sentences/s | target tokens/s | seconds |")
    print("|---|---|---:|---:|---:|")
    for beam in (int(b) for b in args.beams.split(",")):
        search_cfg = SearchConfig(beam=beam, max_len_a=0.0, max_len_b=args.out_len, min_len=args.out_len)
        best = dict.fromkeys(models, float("inf"))
        for _ in range(args.repeat):
            for quantize, decoding in models.items():  # alternating: a noisy machine hits each alike
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                tokens = 0
                for batch in batches:
                    b = batch.to(device)
                    hyps = search(decoding, b.src, b.src_mask, cfg=search_cfg)
                    tokens += sum(len(h[0].tokens) + 1 for h in hyps)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best[quantize] = min(best[quantize], time.perf_counter() - start)
                assert tokens == len(sources) * (args.out_len + 1)
        name = "greedy" if beam == 1 else f"beam {beam}"
        for quantize, seconds in best.items():
            weights = "fp32" if quantize == "none" else quantize
            print(f"| {name} | {weights} | {len(sources) / seconds:,.1f} | {tokens / seconds:,.0f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
