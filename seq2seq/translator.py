"""The library's translator: a loaded checkpoint plus a decoding set-up, turning sentences into
:class:`Translation` objects, and the one JSON shape of a translation (:meth:`Translation.to_dict`)
that ``seq2seq-translate format=json`` and ``POST /translate`` both write."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from seq2seq.checkpoint import Loaded
from seq2seq.config import SearchConfig
from seq2seq.constants import EOS_ID, UNK_ID
from seq2seq.data.batching import bucket_batches, collate
from seq2seq.decoding import Decoding
from seq2seq.device import resolve_device
from seq2seq.models.ensemble import Ensemble
from seq2seq.models.seq2seq import AttentionMaps, Seq2Seq
from seq2seq.search import Steps, alternatives, check_deadline, search
from seq2seq.shortlist import Shortlist
from seq2seq.tokenizer import WORD_START, Tokenizer, piece_word

MAX_SOURCE_TOKENS = 400  # longer inputs are cut (and a note says so)


def finite(value: float) -> float | None:
    """A number for JSON, rounded to 4 places (one that would round to 0 keeps 2 significant
    digits, so that only an exact zero reads as 0: sparse attention's); None where bf16/fp16
    overflowed to nan or inf."""
    if not math.isfinite(value):
        return None
    rounded = round(float(value), 4)
    return float(f"{value:.2g}") if rounded == 0 and value != 0 else rounded


def rounded(weights: torch.Tensor) -> list[list[float | None]]:
    """A ``(rows, columns)`` map as JSON rows (:func:`finite` numbers)."""
    return [[finite(w) for w in row] for row in weights.tolist()]


@dataclass
class Alternative:
    """A token the model could have written at one output position, and the translation's
    beginning it makes (``prefix``: the output before that position, then this token), which a
    new search may start from."""

    piece: str
    score: float  # its log-probability there
    prefix: str | None  # None for EOS and the unknown piece: no prefix can force them


@dataclass
class Translation:
    """One translated sentence and where the model looked while writing it."""

    source: str  # the input sentence
    text: str  # detokenised output (the best hypothesis)
    tokens: list[str]  # output tokens (SentencePiece pieces)
    source_tokens: list[str]  # source tokens, ending in the EOS the model reads ("</s>")
    attention: torch.Tensor  # (len(tokens), len(source_tokens)): row i is where token i looked; rows sum to 1
    score: float  # log-probability of the output (EOS included)
    nbest: list[tuple[str, float]] = field(default_factory=list)  # (text, ranking score), best first
    token_ids: list[int] = field(default_factory=list)  # the output tokens' ids (without BOS/EOS)
    beam: Steps | None = None  # the search, step by step, when asked for (beam_tree=True)
    alternatives: list[list[Alternative]] | None = None  # per output token, the k most probable there
    beam_pieces: dict[int, str] = field(default_factory=dict)  # the pieces of the beam's token ids

    def to_dict(
        self, attention: bool = True, layers: AttentionMaps | None = None, heads: bool = False
    ) -> dict[str, Any]:
        """The translation as JSON, the one shape every command and the server write: ``source``,
        ``text``, ``score``, ``tokens`` and ``source_tokens`` (as words: no ``▁``), ``nbest``
        (``text`` and ``score`` each) and, with ``attention``, the ``(tokens, source_tokens)``
        weights. With ``layers`` (:meth:`Translator.attention_maps`), every layer's maps, heads
        averaged (``heads``: kept, ``[layer][head]``): ``encoder`` (source x source), ``decoder``
        (output x ``<s>`` and the output before it) and ``cross`` (output x source). Where the
        translation has them: ``beam``, the search step by step (each step's candidates: ``token``,
        ``parent`` and ``slot`` (beam slots), ``score``, ``state``: kept, finished or pruned), and
        ``alternatives``, per output token the tokens most probable there (``token``, ``score``,
        ``prefix``: the start of a translation that writes it there). Numbers are rounded to 4
        places; one that overflowed (bf16/fp16) is null."""
        out: dict[str, Any] = {
            "source": self.source,
            "text": self.text,
            "score": finite(self.score),
            "tokens": [piece_word(p) for p in self.tokens],
            "source_tokens": [piece_word(p) for p in self.source_tokens],
            "nbest": [{"text": text, "score": finite(score)} for text, score in self.nbest],
        }
        if attention:
            out["attention"] = rounded(self.attention)
        if layers is not None:
            shown = (lambda m: [rounded(h) for h in m]) if heads else (lambda m: rounded(m.mean(0)))
            out["layers"] = {
                "encoder": [shown(m) for m in layers.encoder],
                "decoder": [shown(m) for m in layers.decoder],
                "cross": [shown(m) for m in layers.cross],
            }
        if self.beam is not None:
            word = self.piece_word
            out["beam"] = [
                [
                    {
                        "token": word(c.token),
                        "parent": c.parent,
                        "slot": c.slot,
                        "score": finite(c.score),
                        "state": c.state,
                    }
                    for c in step
                ]
                for step in self.beam
            ]
        if self.alternatives is not None:
            out["alternatives"] = [
                [{"token": piece_word(a.piece), "score": finite(a.score), "prefix": a.prefix} for a in position]
                for position in self.alternatives
            ]
        return out

    def piece_word(self, token: int) -> str:
        """One of the beam's token ids as the page shows it (a word or piece, no ``▁``)."""
        return piece_word(self.beam_pieces.get(token, str(token)))


def prefix_ids(tokenizer: Tokenizer, prefixes: list[str]) -> list[list[int]]:
    """Each prefix as target ids; a ValueError names a piece the vocabulary lacks (forced, it
    would be written as ⁇ and the user's word lost)."""
    ids = tokenizer.encode_batch(prefixes)
    for prefix, start in zip(prefixes, ids, strict=True):
        unknown = [p for p, t in zip(tokenizer.pieces(prefix), start, strict=True) if t == UNK_ID]
        if unknown:
            raise ValueError(
                f"prefix {prefix!r}: {', '.join(map(repr, unknown))} is not in the target vocabulary "
                "(give whole words the model knows)"
            )
    return ids


def translate_sentences(
    model: Seq2Seq | Ensemble,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    sentences: list[str],
    *,
    batch_size: int = 64,
    cfg: SearchConfig | None = None,
    device: torch.device | str = "cpu",
    autocast: torch.dtype | None = None,
    prefixes: list[str] | None = None,
    deadline: float | None = None,
    beam_tree: bool = False,
    top_k: int = 0,
    shortlist: Shortlist | None = None,
) -> list[Translation]:
    """Translate many sentences: batched by length, returned in input order; under ``autocast``
    (bf16 or fp16; :func:`seq2seq.device.autocast_dtype`) when it is given. ``prefixes`` (one per
    sentence, "" for none): the start of each translation, which the search continues. Past
    ``deadline`` (``time.monotonic()``): :class:`seq2seq.errors.DecodingTimeout`. ``beam_tree``:
    each translation keeps its search step by step (``Translation.beam``); ``top_k`` > 0: the
    ``top_k`` most probable tokens at each of its output positions (``Translation.alternatives``).
    With a ``shortlist`` the search scores only each batch's candidate target pieces
    (:mod:`seq2seq.shortlist`; the alternatives are still over every piece).

    1. encode every sentence to ids, and group them into batches of similar length;
    2. for each batch, pad it (``collate``) and search (greedy or beam, as ``cfg`` says);
    3. each sentence's best hypothesis becomes its :class:`Translation` (text, pieces, the
       ``(T, S)`` attention in fp32), with the n-best texts and ranking scores beside it."""
    cfg = cfg or SearchConfig()
    model.eval()
    ids = src_tokenizer.encode_batch(sentences)
    forced = prefix_ids(tgt_tokenizer, prefixes) if prefixes else None
    results: list[Translation | None] = [None] * len(sentences)
    device = torch.device(device)
    for index in bucket_batches([len(s) for s in ids], batch_size):
        batch = collate([ids[i] for i in index]).to(device)
        starts = None if forced is None else [forced[i] for i in index]
        record: list[Steps] | None = [[] for _ in index] if beam_tree else None
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            found = search(
                model, batch.src, batch.src_mask, cfg=cfg, prefixes=starts, deadline=deadline, record=record,
                shortlist=shortlist,
            )  # fmt: skip
            others = (
                alternatives(model, batch.src, batch.src_mask, [h[0].tokens for h in found], top_k, cfg, deadline)
                if top_k > 0
                else None
            )
        for n, (i, hyps) in enumerate(zip(index, found, strict=True)):
            if others is not None:  # each sentence's alternatives' prefixes are decoded text: bounded by the deadline
                check_deadline(deadline)
            best = hyps[0]
            results[i] = Translation(
                source=sentences[i],
                text=tgt_tokenizer.decode(best.tokens),
                tokens=tgt_tokenizer.id_to_piece(best.tokens),
                source_tokens=src_tokenizer.pieces(sentences[i]) + ["</s>"],  # unknown words as written
                attention=best.weights.float(),
                score=best.score,
                nbest=[(tgt_tokenizer.decode(h.tokens), h.norm_score) for h in hyps],
                token_ids=list(best.tokens),
                beam=None if record is None else record[n],
                alternatives=None if others is None else alternatives_of(tgt_tokenizer, best.tokens, others[n]),
                beam_pieces={} if record is None else pieces_of(tgt_tokenizer, record[n]),
            )
    return results  # type: ignore[return-value]


def pieces_of(tokenizer: Tokenizer, steps: Steps) -> dict[int, str]:
    """The piece of every token id in a recorded search."""
    ids = sorted({c.token for step in steps for c in step})
    return dict(zip(ids, tokenizer.id_to_piece(ids), strict=True))


def alternatives_of(
    tokenizer: Tokenizer, tokens: list[int], found: list[list[tuple[int, float]]]
) -> list[list[Alternative]]:
    """Each output position's ``found`` (token id, log-probability) as :class:`Alternative`\\ s,
    each with the translation's start it makes: the output before it, then the token (none for
    EOS, which would end the translation there, and the unknown piece)."""

    def prefix(t: int, a: int) -> str | None:
        return None if a in (EOS_ID, UNK_ID) else tokenizer.decode(tokens[:t] + [a])

    return [
        [Alternative(tokenizer.id_to_piece([a])[0], score, prefix(t, a)) for a, score in top]
        for t, top in enumerate(found)
    ]


class Translator:
    """A trained model ready to translate: the model, both tokenizers and a :class:`Decoding`
    (search settings, batch size, device, precision).

    >>> t = Translator.from_checkpoint("runs/demo/attention/best.pt", beam=5)  # doctest: +SKIP
    >>> t.translate(["Tom chase Jerry"])[0].text  # doctest: +SKIP
    '汤姆 追逐 杰瑞'
    """

    def __init__(
        self,
        loaded: Loaded,
        search: Any = None,
        *,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
    ) -> None:
        self.loaded = loaded
        self.decoding = Decoding(search, batch_size, device, precision, loaded.quantize)  # int8: as loaded

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | Sequence[str | Path],
        *,
        device: str = "auto",
        batch_size: int = 64,
        precision: str = "fp32",
        quantize: str = "none",
        shortlist: str | Path | None = None,
        **search_settings: Any,
    ) -> Translator:
        """Load a checkpoint file (it holds the model, the tokenizers and its config), or a list of
        them as one ensemble (:mod:`seq2seq.models.ensemble`: the models' log-probabilities
        averaged at every step; they must share their tokenizers), and keep the
        search settings (:class:`seq2seq.config.SearchConfig`'s fields: ``beam``,
        ``length_penalty``, ``length_norm``, ``nbest``, ``max_len_a``, ``max_len_b``, ``min_len``).
        ``precision=bf16`` decodes under bf16 autocast (a CPU with bf16 instructions, or CUDA);
        ``quantize="int8"`` with int8 linear and RNN layers (:mod:`seq2seq.quantization`, CPU);
        ``shortlist`` (a vocabulary map file, :mod:`seq2seq.shortlist`) scores only each batch's
        candidate target pieces."""
        where = None if shortlist is None else str(shortlist)
        decoding = Decoding(search_settings, batch_size, resolve_device(device), precision, quantize, where)  # checked
        return cls.using(decoding.load(path), decoding)

    @classmethod
    def using(cls, loaded: Loaded, decoding: Decoding) -> Translator:
        """A translator over an already loaded model with an already made :class:`Decoding`."""
        return cls(
            loaded, decoding.search, batch_size=decoding.batch_size, device=decoding.device,
            precision=decoding.precision,
        )  # fmt: skip

    @property
    def search(self) -> Any:
        """The search settings (a checked SearchConfig)."""
        return self.decoding.search

    @property
    def device(self) -> torch.device:
        return self.decoding.device  # type: ignore[return-value]

    @property
    def config(self) -> dict[str, Any]:
        """The config the model was trained with (data, model, trainer, search)."""
        return self.loaded.config

    def clip(self, line: str, where: str = "") -> str:
        """Cut an over-long input to :data:`MAX_SOURCE_TOKENS` tokens, saying so on stderr."""
        pieces = self.loaded.src_tokenizer.pieces(line)
        if len(pieces) <= MAX_SOURCE_TOKENS:
            return line
        print(
            f"note: {where}input has {len(pieces)} tokens; translating the first {MAX_SOURCE_TOKENS}", file=sys.stderr
        )
        return "".join(pieces[:MAX_SOURCE_TOKENS]).replace(WORD_START, " ").strip()  # the pieces as text

    def translate(
        self,
        sentences: list[str],
        progress: bool = False,
        prefixes: list[str] | None = None,
        deadline: float | None = None,
        beam_tree: bool = False,
        top_k: int = 0,
    ) -> list[Translation]:
        """One :class:`Translation` per sentence, in input order; a blank sentence gives an empty
        translation without running the model. Sentences go to the search in chunks of 16
        batches, so a progress bar (``progress``) moves while a long file is translated.
        ``prefixes``, one per sentence ("" for none), fix how each translation starts: the search
        continues from it (interactive translation: fix a word, see the rest change). Past
        ``deadline`` (a ``time.monotonic()`` value) the search stops with
        :class:`seq2seq.errors.DecodingTimeout` (``seq2seq-serve``'s limit per request).
        ``beam_tree``: keep each search step by step (``Translation.beam``: kept, finished and
        pruned candidates, for drawing the beam as a tree; nothing is recorded otherwise);
        ``top_k``: the ``top_k`` most probable tokens at each output position
        (``Translation.alternatives``: pick one and translate again with its ``prefix``)."""
        if isinstance(sentences, str):
            raise TypeError("translate() takes a list of sentences; wrap one sentence in a list")
        if prefixes is not None and len(prefixes) != len(sentences):
            raise ValueError(f'{len(prefixes)} prefixes for {len(sentences)} sentences: give one each ("" for none)')
        todo = [i for i, s in enumerate(sentences) if s.strip()]
        done: list[Translation] = []
        d = self.decoding
        step = max(d.batch_size * 16, 1)
        with tqdm(total=len(todo), disable=not progress, file=sys.stderr, unit="sent") as bar:
            for start in range(0, len(todo), step):
                chunk = [sentences[i].strip() for i in todo[start : start + step]]
                starts = None if prefixes is None else [prefixes[i].strip() for i in todo[start : start + step]]
                done += translate_sentences(
                    self.loaded.model, self.loaded.src_tokenizer, self.loaded.tgt_tokenizer, chunk,
                    batch_size=d.batch_size, cfg=d.search, device=d.device, autocast=d.autocast, prefixes=starts,
                    deadline=deadline, beam_tree=beam_tree, top_k=top_k, shortlist=self.loaded.shortlist,
                )  # fmt: skip
                bar.update(len(chunk))
        results = [Translation(s, "", [], ["</s>"], torch.zeros(0, 1), 0.0) for s in sentences]
        for i, t in zip(todo, done, strict=True):
            results[i] = t
        return results

    @torch.no_grad()
    def read(self, source: str, target: str) -> Translation:
        """``target`` as if the model had written it for ``source`` (teacher forcing): its pieces,
        its log-probability (EOS included) and where the model looked while writing each piece
        (``attention``, as a translation's). What the page's gold view draws: the reference's map
        against the gold alignments."""
        model = self.loaded.model.eval()
        src_tok, tgt_tok = self.loaded.src_tokenizer, self.loaded.tgt_tokenizer
        target_ids = tgt_tok.encode(target)
        batch = collate(src_tok.encode_batch([source]), [target_ids]).to(self.device)
        with torch.autocast(self.device.type, dtype=self.decoding.autocast, enabled=self.decoding.autocast is not None):
            logits, weights = model(batch.src, batch.src_mask, batch.tgt_in)  # (1, T+1, V), (1, T+1, S)
        log_probs = torch.log_softmax(logits.float(), dim=-1)[0]
        score = float(log_probs.gather(1, batch.tgt_out[0].unsqueeze(1)).sum())
        n = len(target_ids)
        return Translation(
            source=source, text=tgt_tok.decode(target_ids), tokens=tgt_tok.id_to_piece(target_ids),
            source_tokens=src_tok.pieces(source) + ["</s>"], attention=weights[0, :n].float().cpu(), score=score,
            token_ids=target_ids,
        )  # fmt: skip

    @torch.no_grad()
    def attention_maps(self, t: Translation) -> AttentionMaps:
        """Every attention map behind one translation, per layer, heads kept (``(h, rows, columns)``):

        - ``encoder``: the self-attention encoder's, source x source (its tokens end in ``</s>``);
        - ``decoder``: the Transformer decoder's masked self-attention, one row per output token,
          over the tokens read before writing it (``<s>`` and the output so far);
        - ``cross``: output x source, as ``t.attention`` but for every layer and head.

        Empty lists where the model has no such attention (RNNs); an RNN decoder has one cross
        layer with one head. The maps are read by teacher forcing on the output, which gives the
        numbers the search saw (the decoder's cache makes no difference)."""
        model = self.loaded.model.eval()
        batch = collate(self.loaded.src_tokenizer.encode_batch([t.source]), [t.token_ids]).to(self.device)
        maps = model.attention_maps(batch.src, batch.src_mask, batch.tgt_in)
        n = len(t.token_ids)  # the row that writes EOS is left out, as in t.attention
        return AttentionMaps(
            encoder=[m[0].float().cpu() for m in maps.encoder],  # (h, S, S)
            decoder=[m[0, :, :n, :n].float().cpu() for m in maps.decoder],  # (h, T, T)
            cross=[m[0, :, :n].float().cpu() for m in maps.cross],  # (h, T, S)
        )
