"""Training speed and memory of the fixed-context and attention models; prints a table.

    python benchmarks/train_speed.py                       # CPU, the demo's model size
    python benchmarks/train_speed.py --device cuda --batch-size 256 --hidden 512 --embed 256

Data: toy sentences of a fixed length bucket (default 21-30 source words), word vocabularies.
Figures are target tokens (incl. EOS) and sentences per second over ``--steps`` updates
(forward, backward, Adam) after ``--warmup``. Peak memory: the CUDA allocator's peak on a GPU,
the process's peak RSS on a CPU (cumulative over the rows).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from seq2seq.config import AttentionConfig, ModelConfig, describe_model
from seq2seq.data.batching import collate
from seq2seq.data.toy import generate
from seq2seq.loss import batch_loss
from seq2seq.models.seq2seq import build_model
from seq2seq.tokenizer import Tokenizer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-len", type=int, default=21)
    p.add_argument("--max-len", type=int, default=30)
    p.add_argument("--models", default="sutskever,cho,bahdanau:additive,bahdanau:dot,luong:general")
    p.add_argument("--rnn", default="gru", help="gru | lstm")
    p.add_argument("--encoder", default="rnn", help="rnn | self_attention")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    pairs = generate(args.batch_size, seed=5, buckets=((args.min_len, args.max_len),))
    src_tok = Tokenizer.train([q.src for q in pairs], 1000, "word", "identity")
    tgt_tok = Tokenizer.train([q.tgt for q in pairs], 1000, "word", "identity")
    src_ids, tgt_ids = src_tok.encode_batch([q.src for q in pairs]), tgt_tok.encode_batch([q.tgt for q in pairs])
    train_batch = collate(src_ids[: args.batch_size], tgt_ids[: args.batch_size]).to(device)
    n_tokens = train_batch.n_tgt_tokens

    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(
        f"device {device} ({where}),"
        f" torch {torch.__version__}, batch {args.batch_size}, embed {args.embed}, hidden {args.hidden},"
        f" source {args.min_len}-{args.max_len} words"
    )
    header = "| model | params | train tok/s | train sent/s | peak MB |"
    print(header)
    print("|---|---:|---:|---:|---:|")
    for spec in args.models.split(","):
        decoder, _, score = spec.partition(":")
        cfg = ModelConfig(
            decoder=decoder,
            embed_size=args.embed,
            hidden_size=args.hidden,
            dropout=0.1,
            rnn=args.rnn,
            encoder=args.encoder,
            attention=AttentionConfig(score=score or "additive"),
        )
        model = build_model(cfg, len(src_tok), len(tgt_tok)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        model.train()
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                sync(device)
                start = time.perf_counter()
            loss = batch_loss(model, train_batch) / n_tokens
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        train_s = (time.perf_counter() - start) / args.steps
        name = describe_model(cfg)
        print(
            f"| {name} | {model.num_parameters:,} | {n_tokens / train_s:,.0f} | {args.batch_size / train_s:,.1f} "
            f"| {peak_memory_mb(device):,.0f} |"
        )


if __name__ == "__main__":
    main()
