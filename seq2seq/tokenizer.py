"""SentencePiece tokenizers, one per language, trained in memory and stored inside checkpoints."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID, TOKENIZER_TYPES, UNK_ID

SAMPLING = threading.Lock()  # one sampled encoding at a time: SentencePiece's seed is global
WORD_START = "\u2581"  # "▁": SentencePiece's mark of a piece that starts a word


def piece_word(piece: str) -> str:
    """A piece as shown to a reader (terminal, JSON, page, figures): the word it spells, without
    the word-start mark; a piece that is only the mark stays ``▁`` so it is still seen."""
    return piece.replace(WORD_START, "") or WORD_START


def training_threads(threads: int) -> int:
    """SentencePiece's training threads for ``data.tokenizer.threads`` (0: every core). The pieces
    depend on this count, so caches are keyed by it, not by the setting."""
    return threads or os.cpu_count() or 1


class Tokenizer:
    """Text <-> ids for one language. ``pad=0, unk=1, bos=2, eos=3`` in every vocabulary."""

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        if (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) != (
            PAD_ID,
            UNK_ID,
            BOS_ID,
            EOS_ID,
        ):
            raise ValueError("SentencePiece model has unexpected special ids (need pad=0 unk=1 bos=2 eos=3)")

    @classmethod
    def train(
        cls,
        sentences: Iterable[str],
        vocab_size: int,
        model_type: str = "unigram",
        normalization: str = "nmt_nfkc",
        character_coverage: float = 1.0,
        threads: int = 1,
    ) -> Tokenizer:
        """Train on ``sentences``; ``vocab_size`` is a soft limit (a small corpus may give fewer).
        ``threads`` > 1 (0: every core) trains faster, but its pieces depend on the thread count."""
        if model_type not in TOKENIZER_TYPES:
            raise ValueError(f"tokenizer model_type {model_type!r}: choose one of {', '.join(TOKENIZER_TYPES)}")
        buffer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=buffer,
            vocab_size=vocab_size,
            model_type=model_type,
            normalization_rule_name=normalization,
            character_coverage=character_coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            hard_vocab_limit=False,
            num_threads=training_threads(threads),
            minloglevel=2,
        )
        return cls(buffer.getvalue())

    @classmethod
    def train_cached(
        cls,
        sentences: list[str],
        vocab_size: int,
        model_type: str,
        normalization: str,
        cache_dir: str | Path | None,
        threads: int = 1,
    ) -> tuple[Tokenizer, bool]:
        """:meth:`train`, or the model a previous run trained on the same sentences with the same
        settings, found in ``cache_dir`` by a hash of both. Returns the tokenizer and whether it
        came from the cache."""
        if not cache_dir:
            return cls.train(sentences, vocab_size, model_type, normalization, threads=threads), False
        settings = {"vocab_size": vocab_size, "model_type": model_type, "normalization": normalization, "v": 1}
        if training_threads(threads) != 1:
            settings["threads"] = training_threads(threads)  # the pieces depend on it; one thread's keep their names
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for sentence in sentences:
            digest.update(sentence.encode("utf-8") + b"\n")
        path = Path(cache_dir) / f"{digest.hexdigest()[:32]}.model"
        if path.is_file():
            try:
                return cls(path.read_bytes()), True
            except (RuntimeError, ValueError):  # a damaged cache entry: train anew
                pass
        tok = cls.train(sentences, vocab_size, model_type, normalization, threads=threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{id(tok)}")
        tmp.write_bytes(tok.model_proto)
        tmp.replace(path)
        return tok, False

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def encode_batch(self, texts: list[str], threads: int = 1) -> list[list[int]]:
        """Ids of each text; ``threads`` > 1 encodes on as many cores (the same ids)."""
        return self.sp.encode(texts, num_threads=threads)

    def sample_batch(self, texts: list[str], alpha: float, nbest_size: int, seed: int) -> list[list[int]]:
        """Ids of each text in a segmentation *sampled* from the model (subword regularisation,
        Kudo 2018; for ``bpe`` models BPE-dropout with ``alpha`` the dropout rate): ``alpha``
        sharpens the unigram model's distribution (smaller: more varied), ``nbest_size`` samples
        among the best n (-1: every segmentation). The same ``seed`` gives the same ids.

        SentencePiece draws from a generator per thread, seeded from its global seed when the
        thread first samples, so each call samples in a thread of its own, made after the seed
        is set: the result depends on ``seed`` alone, not on what was sampled before."""
        out: list[list[list[int]]] = []

        def draw() -> None:
            out.append(self.sp.encode(texts, enable_sampling=True, alpha=alpha, nbest_size=nbest_size, num_threads=1))

        with SAMPLING:  # the seed is global to the process
            spm.set_random_generator_seed(seed)
            thread = threading.Thread(target=draw, name="subword-sampling")
            thread.start()
            thread.join()
        if not out:
            raise RuntimeError("SentencePiece's sampling failed (see the thread's error above)")
        return out[0]

    def pieces(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def id_to_piece(self, ids: Iterable[int]) -> list[str]:
        return [self.sp.id_to_piece(i) for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> detokenised text; special ids (pad/bos/eos) are dropped."""
        return self.sp.decode([i for i in ids if i > EOS_ID or i == UNK_ID])


def word_index(pieces: list[str]) -> list[int]:
    """The word each SentencePiece piece belongs to (a piece starting with ``▁`` starts a word)."""
    index, word = [], -1
    for piece in pieces:
        if piece.startswith(WORD_START) or word < 0:
            word += 1
        index.append(word)
    return index
