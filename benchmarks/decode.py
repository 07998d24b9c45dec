"""Decoding speed: sentences/s and target tokens/s for greedy and beam search; prints a table.

    python benchmarks/decode.py                              # the peers' reference configuration
    python benchmarks/decode.py --src test.src --beams 1,5,10 --threads 2 --device cuda
    python benchmarks/decode.py --quantize none,int8 --repeat 3    # fp32 and int8 rows in one run
    python benchmarks/decode.py --checkpoint CKPT --src SRC --precision fp32,bf16   # + bf16 autocast rows
    python benchmarks/decode.py --checkpoint runs/tatoeba-transformer/best.pt \
        --src ../shared/corpora/tatoeba-cmn/valid.en --ref ../shared/corpora/tatoeba-cmn/valid.zh \
        --ctranslate2 float32,int8 --threads 2 --repeat 3        # seq2seq's Transformer vs CTranslate2
    python benchmarks/decode.py --checkpoint CKPT --src SRC --shortlist vmap.txt   # + rows with a shortlist

The reference configuration (``../shared/peers``): 1-layer biGRU encoder 256 per direction, GRU
512 decoder, 256-dim embeddings, additive attention, 2,000-word vocabularies, batch 64, every
output forced to exactly ``--out-len`` words (+ EOS), so each system does the same work whatever
its weights; the weights here are untrained for that reason. Sources: ``--src`` (one sentence of
space-separated words per line) or ``--sentences`` random ones of 3-30 words.

With ``--checkpoint`` it decodes a trained model instead: ``--src`` is text (one sentence a
line, the first ``--sentences`` of them, else all), read by the checkpoint's tokenizer, and every
output runs to its own EOS. ``--ctranslate2 float32,int8`` adds a row per quantization for the
same Transformer exported to CTranslate2 (:mod:`seq2seq.export`, the ``[export]`` extra), on as
many threads as torch (``intra_threads``), batched alike (``max_batch_size``); both rank beams by
``score / |Y| ** 1`` (CTranslate2's ``length_penalty``: ``--length-norm length``).
CTranslate2's rows are timed after seq2seq's, in a process of their own: once CTranslate2 had
decoded in the same process, seq2seq's rows ran 8-25 % slower on a 2-core CPU (docs/speed.md).
``--shortlist FILE`` (a vocabulary map, ``seq2seq-shortlist``) adds a row of each
seq2seq system scoring each batch's candidate pieces only ("fp32 +shortlist"), and of each
CTranslate2 model exported with the same map as ``vmap.txt`` and run with ``use_vmap``
("int8 +vmap"). ``--precision fp32,bf16`` adds rows of seq2seq's search under bf16 autocast (``precision=bf16``
of seq2seq-eval: a CPU with bf16 instructions, or CUDA). With ``--ref``
each row has its BLEU (sacreBLEU, the tokenizer that seq2seq-eval uses for the checkpoint's target
language). Both are timed from source pieces to output pieces: SentencePiece's work on either side
of them is left out.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from sacrebleu.metrics import BLEU

from seq2seq.checkpoint import Loaded, load_model
from seq2seq.config import AttentionConfig, ModelConfig, SearchConfig, describe_model, saved_model_config
from seq2seq.constants import PRECISIONS
from seq2seq.data.batching import bucket_batches, collate
from seq2seq.device import autocast_dtype
from seq2seq.evaluation import bleu_tokenizer
from seq2seq.models.seq2seq import build_model
from seq2seq.quantization import quantize_int8
from seq2seq.search import search
from seq2seq.shortlist import Shortlist, read_shortlist


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", help="source sentences, one per line (default: random)")
    p.add_argument(
        "--sentences", type=int, default=None, help="random sources (default 500); with --checkpoint: the first N"
    )
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
    p.add_argument(
        "--precision", default="fp32", help="with --checkpoint: fp32, bf16, fp16 (CUDA), or several: fp32,bf16"
    )
    p.add_argument("--checkpoint", help="decode this trained model (--src: text) instead of the reference one")
    p.add_argument("--ref", help="with --checkpoint: the references of --src, for a BLEU column")
    p.add_argument("--ctranslate2", default="", help="with a Transformer --checkpoint: CTranslate2 rows (float32,int8)")
    p.add_argument(
        "--length-norm", default="length", help="with --checkpoint: seq2seq's beam ranking (gnmt, length, none)"
    )
    p.add_argument("--shortlist", help="with --checkpoint: a vocabulary map (seq2seq-shortlist): rows that use it")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if any(q not in PRECISIONS for q in args.precision.split(",")):
        p.error(f"--precision {args.precision}: give {', '.join(PRECISIONS)} or several, comma-separated")
    if args.checkpoint:
        if not args.src:
            p.error("--checkpoint needs --src (text, one sentence a line)")
        checkpoint_rows(args)
        return
    if args.ctranslate2 or args.ref or args.precision != "fp32" or args.shortlist:
        p.error("--ctranslate2, --ref, --precision and --shortlist need --checkpoint (a trained model)")
    reference_rows(args)


def reference_rows(args: argparse.Namespace) -> None:
    """The peers' reference configuration, untrained, every output forced to ``--out-len`` words."""
    device = torch.device(args.device)
    args.sentences = 500 if args.sentences is None else args.sentences
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


Decoder = Callable[[int], Callable[[], list[list[str]]]]  # beam -> decode every sentence once: each output's pieces


def checkpoint_rows(args: argparse.Namespace) -> None:
    """A trained checkpoint's decoding speed (and BLEU with ``--ref``): seq2seq's own search (fp32,
    and int8 with ``--quantize``), then CTranslate2 at each ``--ctranslate2`` quantization."""
    loaded = load_model(args.checkpoint, args.device)
    lines = [line.strip() for line in open(args.src, encoding="utf-8")][: args.sentences or None]
    refs = [line.strip() for line in open(args.ref, encoding="utf-8")][: len(lines)] if args.ref else None
    data = loaded.config.get("data", {})
    bleu = BLEU(tokenize=bleu_tokenizer(data.get("bleu_tokenize", "auto"), data.get("tgt_lang", "")))
    threads = torch.get_num_threads()
    systems: dict[tuple[str, str], Callable[[list[str]], Decoder]] = {}  # a system's decoder of some lines
    for quantize in args.quantize.split(","):
        model = loaded.model if quantize == "none" else quantize_int8(loaded.model)
        systems["seq2seq", "fp32" if quantize == "none" else quantize] = partial(seq2seq_decoder, model, loaded, args)
    for precision in (p for p in args.precision.split(",") if p != "fp32"):
        autocast = autocast_dtype(precision, torch.device(args.device))  # refused where the device cannot
        systems["seq2seq", precision] = partial(seq2seq_decoder, loaded.model, loaded, args, autocast=autocast)
    shortlist = read_shortlist(args.shortlist, loaded.src_tokenizer, loaded.tgt_tokenizer) if args.shortlist else None
    if shortlist is not None:
        for key, system in list(systems.items()):
            systems[key[0], f"{key[1]} +shortlist"] = partial(system, shortlist=shortlist)
    engines = [q for q in args.ctranslate2.split(",") if q]
    versions = f"torch {torch.__version__}"
    for system in systems.values():  # warm-up, off the clock: the first calls set up kernels and memory
        system(lines[: args.batch_size])(1)()
    decoders = {key: system(lines) for key, system in systems.items()}
    beams = [int(b) for b in args.beams.split(",")]
    best: dict[tuple[int, tuple[str, str]], float] = {}
    outputs: dict[tuple[int, tuple[str, str]], list[list[str]]] = {}
    for beam in beams:
        searches = {key: decoder(beam) for key, decoder in decoders.items()}
        for _ in range(args.repeat):
            for key, decode in searches.items():  # alternating: a noisy machine hits each alike
                start = time.perf_counter()
                outputs[beam, key] = decode()
                best[beam, key] = min(best.get((beam, key), float("inf")), time.perf_counter() - start)
    if engines:  # after seq2seq's rows, in a process of its own: see the module's docstring
        import ctranslate2  # the [export] extra, needed for these rows only

        from seq2seq.export import export_ctranslate2

        versions += f", ctranslate2 {ctranslate2.__version__}"
        pieces = [loaded.src_tokenizer.pieces(line) for line in lines]
        with tempfile.TemporaryDirectory(prefix="decode-bench-") as work:
            folders = {
                q: str(export_ctranslate2(args.checkpoint, Path(work) / q, quantization=q, shortlist=args.shortlist))
                for q in engines
            }
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                found = pool.apply(
                    ctranslate2_timings,
                    (folders, pieces, beams, args.batch_size, threads, args.repeat, args.device, bool(args.shortlist)),
                )
        for (beam, quantization), (seconds, hypotheses) in found.items():
            best[beam, ("CTranslate2", quantization)] = seconds
            outputs[beam, ("CTranslate2", quantization)] = hypotheses
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{threads} threads"
    print(
        f"device {args.device} ({where}), {versions}; {len(lines)} sentences, batch {args.batch_size}, "
        f"{loaded.model.num_parameters:,} params ({describe_model(saved_model_config(loaded.config['model']))}); "
        f"beams ranked by {args.length_norm}"
    )
    print("| search | system | weights | sentences/s | target tokens/s | seconds | x seq2seq fp32 | BLEU |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for beam in beams:
        name = "greedy" if beam == 1 else f"beam {beam}"
        base = best.get((beam, ("seq2seq", "fp32")))
        for (at, (system, weights)), seconds in best.items():
            if at != beam:
                continue
            found_pieces = outputs[beam, (system, weights)]
            tokens = sum(len(o) + 1 for o in found_pieces)  # + EOS
            ratio = f"{base / seconds:.2f}x" if base else ""
            texts = [loaded.tgt_tokenizer.sp.decode_pieces(o) for o in found_pieces]
            score = f"{bleu.corpus_score(texts, [refs]).score:.2f}" if refs else ""
            print(
                f"| {name} | {system} | {weights} | {len(lines) / seconds:,.1f} | {tokens / seconds:,.0f} "
                f"| {seconds:.2f} | {ratio} | {score} |"
            )


def seq2seq_decoder(
    model: Any,
    loaded: Loaded,
    args: argparse.Namespace,
    lines: list[str],
    autocast: torch.dtype | None = None,
    shortlist: Shortlist | None = None,
) -> Decoder:
    """seq2seq's search over length-bucketed batches of the encoded ``lines`` (under ``autocast``
    when given, scoring a ``shortlist``'s candidates only when given); the outputs as pieces, as
    CTranslate2 gives them."""
    ids = loaded.src_tokenizer.encode_batch(lines)
    order = bucket_batches([len(s) for s in ids], args.batch_size)
    batches = [(index, collate([ids[i] for i in index]).to(args.device)) for index in order]

    def at(beam: int) -> Callable[[], list[list[str]]]:
        cfg = SearchConfig(beam=beam, length_norm=args.length_norm)

        def decode() -> list[list[str]]:
            found: list[list[int]] = [[] for _ in lines]
            with torch.autocast(args.device, dtype=autocast, enabled=autocast is not None):
                for index, batch in batches:
                    found_here = search(model, batch.src, batch.src_mask, cfg=cfg, shortlist=shortlist)
                    for i, hyps in zip(index, found_here, strict=True):
                        found[i] = hyps[0].tokens
            if args.device == "cuda":
                torch.cuda.synchronize()
            return [loaded.tgt_tokenizer.id_to_piece(t) for t in found]  # as CTranslate2 answers

        return decode

    return at


def ctranslate2_timings(
    folders: dict[str, str], pieces: list[list[str]], beams: list[int], batch_size: int, threads: int, repeat: int,
    device: str, vmap: bool = False,
) -> dict[tuple[int, str], tuple[float, list[list[str]]]]:  # fmt: skip
    """In a process of its own: CTranslate2's search over the source ``pieces``, ``batch_size`` at a
    time (``max_batch_size``: sorted by length, as seq2seq's buckets), beams ranked by
    ``score / |Y|``, for each exported model (quantization -> folder) and beam, and with ``vmap``
    also with its vocabulary map (``use_vmap``: "int8 +vmap"); the best of ``repeat`` runs,
    alternating -> (beam, quantization) -> (seconds, each output's pieces)."""
    import ctranslate2

    translators = {
        q: ctranslate2.Translator(folder, device=device, intra_threads=threads, inter_threads=1)
        for q, folder in folders.items()
    }
    ways = [(q, q, False) for q in translators] + ([(f"{q} +vmap", q, True) for q in translators] if vmap else [])

    def decode(translator: Any, beam: int, sources: list[list[str]], use_vmap: bool = False) -> list[list[str]]:
        found = translator.translate_batch(
            sources, max_batch_size=batch_size, beam_size=beam, length_penalty=1, min_decoding_length=0,
            use_vmap=use_vmap,
        )  # seq2seq's length_norm=length, min_len=0  # fmt: skip
        return [r.hypotheses[0] for r in found]

    for translator in translators.values():  # warm-up, off the clock
        decode(translator, 1, pieces[:batch_size])
    out: dict[tuple[int, str], tuple[float, list[list[str]]]] = {}
    for beam in beams:
        for _ in range(repeat):
            for q, engine, use_vmap in ways:
                translator = translators[engine]
                start = time.perf_counter()
                hypotheses = decode(translator, beam, pieces, use_vmap)
                seconds = time.perf_counter() - start
                out[beam, q] = (min(seconds, out.get((beam, q), (float("inf"), []))[0]), hypotheses)
    return out


if __name__ == "__main__":
    main()
