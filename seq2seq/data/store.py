"""The prepared training corpus: token ids in flat memory-mapped files, made once and shared.

A store is a folder ``{data.store_dir}/{key}/``, the key a hash of the training files' paths and
every setting that changes their ids (languages, tokenizer settings, ``max_len``). It holds:

- ``src.ids``, ``tgt.ids``: every pair's ids end to end, ``uint16`` when both vocabularies have
  at most 65,536 pieces (2 bytes a token, as fairseq's binarised data), else ``int32``;
- ``src.len``, ``tgt.len``: each pair's length in tokens (``uint16``: a line holds at most 10,000
  characters, but normalisation may expand them: a pair over 65,535 tokens is left out);
- ``src.off``, ``tgt.off``: where each sentence starts in the ids (``int64``, their running sums);
  with the lengths, the index: 10 bytes a pair and side on disk, mapped like the ids;
- ``by_length.idx``: the pairs sorted by source, then target length, the batches' sort done once
  (``int32``, 4 bytes a pair);
- ``links.ids``, ``links.len``, ``links.off`` (only for guided alignment, from the Pharaoh
  ``.align`` file beside each training corpus): each pair's gold links as piece links
  (:mod:`seq2seq.data.links`), flat ``uint16`` source, target piece numbers, for guided alignment;
- ``src.model``, ``tgt.model``: the SentencePiece models the ids were made with;
- ``meta.json``: the corpora (their names and pair ranges: several training corpora stay apart),
  the sizes and mtimes of the corpus files read, the notes of reading, and a sha256 of the index
  and the models, checked on every opening.

Why numpy's ``memmap`` (as fairseq's ``MMapIndexedDataset``, nanoGPT and Megatron): the ids are
one flat array per side, which is all a memory map needs; the pages are the operating system's
(shared by every process and run that maps the files, read only where a batch needs them), and
numpy is already installed with sacreBLEU. Arrow would add a dependency for columns we do not have.

The store is made under an exclusive ``flock`` on ``{key}.lock``: of several processes (torchrun,
two runs at once) one prepares, the others wait and then map what it wrote. It is written into a
temporary folder and renamed into place, so a store that exists is whole; one whose files no
longer match ``meta.json`` (damaged), or whose corpus files changed since (stale), is prepared
anew with a message, never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from seq2seq.data.batching import length_order
from seq2seq.data.corpus import PairStream, TextStream, filter_long, parse_links
from seq2seq.data.links import piece_links
from seq2seq.errors import CorpusError
from seq2seq.tokenizer import Tokenizer, training_threads

log = logging.getLogger("seq2seq")
STORE_VERSION = 2  # 2: offsets and the length order in files
SIDES = ("src", "tgt")
META = "meta.json"
ORDER = "by_length.idx"  # the pairs sorted by source, then target length (stable), for the batches
CHUNK = 20_000  # pairs encoded at a time
MAX_TOKENS = (1 << 16) - 1  # a length file's uint16: NFKC makes up to 18 characters of one (U+FDFA)


class TokenIds:
    """One side of a corpus as ids: ``flat`` (every sentence end to end), ``lengths`` and
    ``offsets`` (where each sentence starts; one more than sentences); a sentence is ``ids[i]``
    (a list), its length ``ids.lengths[i]``. Memory-mapped when opened from a store (a process
    then holds in memory only the pages it reads), arrays in memory when made with
    :meth:`from_lists` (tests, small data)."""

    def __init__(self, flat: np.ndarray, lengths: np.ndarray, offsets: np.ndarray | None = None) -> None:
        self.flat, self.lengths = flat, lengths
        self.offsets = running_sum(lengths) if offsets is None else offsets

    @classmethod
    def from_lists(cls, seqs: list[list[int]]) -> TokenIds:
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        return cls(np.fromiter((i for s in seqs for i in s), dtype=np.int64, count=int(lengths.sum())), lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> list[int]:
        return self.flat[self.offsets[i] : self.offsets[i + 1]].tolist()


def running_sum(lengths: np.ndarray) -> np.ndarray:
    """The offsets of sentences of ``lengths`` laid end to end: 0, l0, l0 + l1, ... (int64)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, dtype=np.int64, out=offsets[1:])
    return offsets


@dataclass
class StoreInfo:
    """What :func:`open_store` found or made: the folder, whether it was made now, its figures."""

    folder: Path
    made: bool
    pairs: int
    tokens: tuple[int, int]  # source, target
    bytes: int  # the store's files on disk
    seconds: float  # to prepare (made) or to open (reused)


def store_key(data: Any, sources: list[tuple[Path, Path]], aligns: list[Path] | None = None) -> str:
    """The store's folder name: a hash of the training files' paths (and alignment files'), and
    every setting that changes their ids. Their contents are not hashed (a corpus of gigabytes);
    their sizes and mtimes are checked on opening instead (:func:`problem`)."""
    tok = data.tokenizer
    settings = {
        "v": STORE_VERSION,
        "files": [[str(s.resolve()), str(t.resolve())] for s, t in sources],
        "langs": [data.src_lang, data.tgt_lang],
        "max_len": data.max_len,
        "threads": training_threads(tok.threads),  # the pieces depend on the count, not on "0"
        "tokenizer": {k: getattr(tok, k) for k in ("model_type", "src_vocab_size", "tgt_vocab_size", "normalization",
                                          "tgt_normalization", "joint", "sample_size")},
    }  # fmt: skip
    if aligns:  # a corpus without alignment files keeps the key it had before they existed
        settings["align"] = [str(a.resolve()) for a in aligns]
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def file_stamp(path: Path) -> dict[str, Any]:
    """What tells a corpus file changed: its size and modification time (and where it is)."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def index_digest(folder: Path) -> str:
    """sha256 of the length and offset files (the links' too, where stored) and the tokenizer
    models: what every batch and id depends on (the id files, the bulk, are checked by size)."""
    digest = hashlib.sha256()
    links = [name for name in ("links.len", "links.off") if (folder / name).exists()]
    for name in ("src.len", "tgt.len", "src.off", "tgt.off", ORDER, "src.model", "tgt.model", *links):
        with (folder / name).open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def problem(folder: Path) -> str | None:
    """Why the store in ``folder`` must not be used (damaged or stale), or None when it is sound."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        itemsize = np.dtype(meta["dtype"]).itemsize
        for side, tokens in zip(SIDES, meta["tokens"], strict=True):
            if (folder / f"{side}.ids").stat().st_size != tokens * itemsize:
                return f"damaged: {side}.ids is not {tokens:,} tokens long"
            if (folder / f"{side}.len").stat().st_size != meta["pairs"] * 2:
                return f"damaged: {side}.len does not hold {meta['pairs']:,} lengths"
            if (folder / f"{side}.off").stat().st_size != (meta["pairs"] + 1) * 8:
                return f"damaged: {side}.off does not hold {meta['pairs'] + 1:,} offsets"
        if "links" in meta and (
            (folder / "links.ids").stat().st_size != meta["links"] * 2
            or (folder / "links.len").stat().st_size != meta["pairs"] * 4
            or (folder / "links.off").stat().st_size != (meta["pairs"] + 1) * 8
        ):
            return "damaged: its links files do not hold the links of every pair"
        if (folder / ORDER).stat().st_size != meta["pairs"] * np.dtype(meta["order_dtype"]).itemsize:
            return f"damaged: {ORDER} does not hold {meta['pairs']:,} indices"
        if index_digest(folder) != meta["index_sha256"]:
            return "damaged: its lengths or tokenizers do not match their checksum"
        stamps = list(meta["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"damaged: {e}"
    for then in stamps:
        path = Path(then["path"])
        if not path.is_file():  # an unmounted disk must not cost the store: say so, keep it
            raise CorpusError(f"{path}: file not found (the corpus store {folder} was prepared from it)")
        if file_stamp(path) != then:
            return f"stale: {path} changed since it was prepared"
    return None


class StoreLock:
    """An exclusive ``flock`` on ``{folder}.lock`` while one process checks or prepares the store."""

    def __init__(self, folder: Path) -> None:
        self.path = folder.with_name(folder.name + ".lock")

    def __enter__(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process preparing the corpus store %s", self.path.with_suffix(""))
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock; the file stays (removing it would race a waiter)


def sample_sentences(stream: PairStream | Concat, size: int, seed: int) -> tuple[list[str], list[str]]:
    """Both sides of up to ``size`` pairs drawn uniformly from ``stream`` (reservoir sampling, one
    pass, seeded); every pair in file order when the corpus has at most ``size``."""
    rng = np.random.default_rng(seed)
    src: list[str] = []
    tgt: list[str] = []
    for n, (s, t) in enumerate(stream):
        if n < size:
            src.append(s)
            tgt.append(t)
            continue
        j = int(rng.integers(n + 1))
        if j < size:
            src[j], tgt[j] = s, t
    if stream.pairs > size:
        order = rng.permutation(size)  # SentencePiece reads a sample in no particular order
        src, tgt = [src[i] for i in order], [tgt[i] for i in order]
    return src, tgt


def write_store(
    folder: Path,
    corpora: list[tuple[str, PairStream]],
    tokenizers: tuple[Tokenizer, Tokenizer],
    max_len: int,
    aligns: list[Path] | None = None,
) -> dict[str, Any]:
    """Encode every pair of ``corpora`` in chunks straight into ``folder``'s files; pairs with a
    side over ``max_len`` tokens (when > 0, and at most :data:`MAX_TOKENS`) are left out and counted.
    Encoding runs on every core (the ids do not depend on it). With ``aligns`` (one Pharaoh file
    per corpus, a line per pair), each pair's links are stored as piece links too. Returns
    ``meta.json``'s content."""
    limit = max_len if 0 < max_len <= MAX_TOKENS else MAX_TOKENS
    dtype = ids_dtype(tokenizers)
    folder.mkdir(parents=True)
    threads = training_threads(0)  # every core
    files: dict[str, BinaryIO] = {}
    parts, tokens, notes, start, n_links = [], [0, 0], [], 0, 0
    kinds = [(side, kind) for side in (*SIDES, "links") if side != "links" or aligns for kind in ("ids", "len")]
    try:
        files |= {f"{side}.{kind}": (folder / f"{side}.{kind}").open("wb") for side, kind in kinds}
        for c, (name, stream) in enumerate(corpora):
            kept = long = 0
            links = AlignReader(aligns[c], stream) if aligns else None
            pairs = ((s, t, stream.line) for s, t in stream)  # each with its line, which the links follow
            for chunk in chunks(pairs, CHUNK):
                ids = [tok.encode_batch([p[k] for p in chunk], threads) for k, tok in enumerate(tokenizers)]
                keep, _ = filter_long(ids[0], ids[1], limit)  # the corpus's note is written once, below
                for k, side in enumerate(SIDES):
                    tokens[k] += append(files[f"{side}.ids"], files[f"{side}.len"], [ids[k][i] for i in keep], dtype)
                if links is not None:
                    rows = links.piece_links(chunk, tokenizers)
                    kept_rows = [rows[i] for i in keep]
                    n_links += append(files["links.ids"], files["links.len"], kept_rows, np.uint16, np.uint32)
                kept, long = kept + len(keep), long + len(chunk) - len(keep)
            if links is not None:
                links.check_end()
            notes += list(stream.notes)
            if not kept:
                raise CorpusError(
                    f"{name}: none of its {long:,} pairs has at most {limit} tokens a side (data.max_len)"
                )
            if long:
                notes.append(f"{name}: kept {kept:,} of {kept + long:,} pairs: {long:,} longer than {limit} tokens")
            parts.append({"name": name, "start": start, "pairs": kept})
            start += kept
    finally:
        for f in files.values():
            f.close()
    for side, tok in zip(SIDES, tokenizers, strict=True):
        write_offsets(folder / f"{side}.len", folder / f"{side}.off")
        (folder / f"{side}.model").write_bytes(tok.model_proto)
    if aligns:
        write_offsets(folder / "links.len", folder / "links.off", np.uint32)
    lengths = [np.fromfile(folder / f"{side}.len", dtype=np.uint16) for side in SIDES]
    by_length = length_order(*lengths)  # the batches' sort, done once here rather than in every run
    by_length.tofile(folder / ORDER)
    meta = {"version": STORE_VERSION, "dtype": np.dtype(dtype).name, "pairs": start, "tokens": tokens,
            "order_dtype": by_length.dtype.name, "corpora": parts, "notes": notes,
            "index_sha256": index_digest(folder)}  # fmt: skip
    return meta | ({"links": n_links} if aligns else {})


def ids_dtype(tokenizers: tuple[Tokenizer, Tokenizer]) -> type:
    """The ids' type on disk: ``uint16`` when both vocabularies have at most 65,536 pieces."""
    return np.uint16 if max(len(t) for t in tokenizers) <= 1 << 16 else np.int32


def write_offsets(lengths: Path, offsets: Path, dtype: type = np.uint16) -> None:
    """Each sentence's start in the ids file (int64, one more than sentences), from the lengths
    file (of ``dtype``), a million at a time: mapped on opening, so a training process holds none of it."""
    size = np.dtype(dtype).itemsize
    n = lengths.stat().st_size // size
    with offsets.open("wb") as out:
        out.write(np.zeros(1, np.int64).tobytes())
        total = 0
        for start in range(0, n, 1 << 20):
            part = np.fromfile(lengths, dtype=dtype, count=min(1 << 20, n - start), offset=size * start)
            sums = total + np.cumsum(part, dtype=np.int64)
            out.write(sums.tobytes())
            total = int(sums[-1])


def append(ids: BinaryIO, lengths: BinaryIO, rows: list[list[int]], dtype: type, length_dtype: type = np.uint16) -> int:
    """Write ``rows`` end to end to ``ids`` and their lengths to ``lengths``; returns the tokens."""
    n = np.array([len(r) for r in rows], dtype=length_dtype)
    flat = np.fromiter((i for r in rows for i in r), dtype=dtype, count=int(n.sum(dtype=np.int64)))
    lengths.write(n.tobytes())
    ids.write(flat.tobytes())
    return len(flat)


def chunks(pairs: Iterable[tuple[str, str, int]], size: int) -> Iterator[list[tuple[str, str, int]]]:
    chunk: list[tuple[str, str, int]] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class Store:
    """An opened store: both sides' ids (memory-mapped), the tokenizers, the training corpora's
    pair ranges (``name``, ``start``, ``pairs``), what reading them noted, and the gold piece
    links where the corpora had alignment files."""

    src: TokenIds
    tgt: TokenIds
    by_length: np.ndarray  # the pairs sorted by length (:func:`seq2seq.data.batching.length_order`)
    tokenizers: tuple[Tokenizer, Tokenizer]
    corpora: list[dict[str, Any]]
    notes: list[str]
    info: StoreInfo
    links: TokenIds | None = None  # per pair: flat source, target piece numbers (seq2seq.data.links)


def mapped(path: Path, dtype: str, count: int) -> np.ndarray:
    """The ``count`` values in ``path``, memory-mapped read-only (numpy cannot map an empty file)."""
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,)) if count else np.zeros(0, dtype)


def load_store(folder: Path, made: bool, seconds: float) -> Store:
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    sides = [
        TokenIds(
            mapped(folder / f"{side}.ids", meta["dtype"], tokens),
            mapped(folder / f"{side}.len", "uint16", meta["pairs"]),
            mapped(folder / f"{side}.off", "int64", meta["pairs"] + 1),
        )
        for side, tokens in zip(SIDES, meta["tokens"], strict=True)
    ]
    tokenizers = (Tokenizer((folder / "src.model").read_bytes()), Tokenizer((folder / "tgt.model").read_bytes()))
    size = sum(p.stat().st_size for p in folder.iterdir())
    info = StoreInfo(folder, made, meta["pairs"], tuple(meta["tokens"]), size, seconds)
    by_length = mapped(folder / ORDER, meta["order_dtype"], meta["pairs"])
    links = None
    if "links" in meta:
        links = TokenIds(
            mapped(folder / "links.ids", "uint16", meta["links"]),
            mapped(folder / "links.len", "uint32", meta["pairs"]),
            mapped(folder / "links.off", "int64", meta["pairs"] + 1),
        )
    return Store(sides[0], sides[1], by_length, tokenizers, meta["corpora"], meta["notes"], info, links)


def open_store(
    data: Any,
    sources: list[tuple[str, Path, Path]],
    train_tokenizers: Callable[[list[str], list[str]], tuple[Tokenizer, Tokenizer]],
    aligns: list[Path] | None = None,
) -> Store:
    """The store of ``data``'s training corpora ``sources`` (name, source file, target file):
    opened when one is there and sound, else prepared (under the lock, said in the log).
    ``train_tokenizers(src_sample, tgt_sample)`` makes the tokenizers from a sample of the pairs."""
    start = time.perf_counter()
    files = [(s, t) for _, s, t in sources]
    folder = Path(data.store_dir) / store_key(data, files, aligns)
    read = [*(p for pair in files for p in pair), *(aligns or [])]  # every file the store is made from
    with StoreLock(folder):
        if folder.is_dir():
            why = problem(folder)
            if why is None:
                store = load_store(folder, False, time.perf_counter() - start)
                log.info("corpus store %s: reused (%s pairs)", folder, f"{store.info.pairs:,}")
                return logged_notes(store)
            log.warning("corpus store %s is %s: preparing it anew", folder, why)
            shutil.rmtree(folder)
        for left in folder.parent.glob(f"{folder.name}.tmp*"):  # a preparer stopped midway (we hold the lock)
            shutil.rmtree(left, ignore_errors=True)
        tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        try:
            streams = [(name, PairStream(s, t, drop_empty=True)) for name, s, t in sources]  # they exist
            stamps = [file_stamp(p) for p in read]  # before reading: a change later is seen
            tokenizers = train_tokenizers(*joint_sample(streams, data.tokenizer.sample_size))
            meta = write_store(tmp, streams, tokenizers, data.max_len, aligns)
            if [file_stamp(p) for p in read] != stamps:
                raise CorpusError(f"the training files changed while the corpus store {folder} was prepared")
            meta["files"] = stamps
            (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            sync(tmp)
            tmp.rename(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # never leave gigabytes behind (a full disk, Ctrl-C)
            raise
        store = load_store(folder, True, time.perf_counter() - start)
        log.info(
            "corpus store %s: prepared %s pairs, %s + %s tokens, %s bytes in %.1f s",
            folder, f"{store.info.pairs:,}", *(f"{n:,}" for n in store.info.tokens), f"{store.info.bytes:,}",
            store.info.seconds,
        )  # fmt: skip
        return logged_notes(store)


class AlignReader:
    """A corpus's Pharaoh file read in step with its pairs: line ``n`` holds the links of the pair
    on line ``n`` of the corpus files (the lines of pairs left out, empty ones, are skipped)."""

    def __init__(self, path: Path, stream: PairStream) -> None:
        self.path, self.stream = path, stream
        self.lines = iter(TextStream(path, max_chars=1 << 20))  # a long pair has many links
        self.line = 0

    def piece_links(
        self, chunk: list[tuple[str, str, int]], tokenizers: tuple[Tokenizer, Tokenizer]
    ) -> list[list[int]]:
        """The links of the ``chunk``'s pairs (source, target, line number) as piece links: word
        numbers from the pieces as written (an unknown word keeps its ``▁``, unlike ``<unk>``)."""
        rows = []
        for src, tgt, number in chunk:
            line = None
            while self.line < number:
                line = next(self.lines, None)
                self.line += 1
                if line is None:
                    raise CorpusError(
                        f"{self.path} has {self.line - 1:,} lines but {self.stream.src_path} has more: "
                        "an alignment file needs a line for every line of the corpus"
                    )
            where = f"{self.path}:{self.line}"
            pieces = [tok.pieces(text) for tok, text in zip(tokenizers, (src, tgt), strict=True)]
            rows.append(piece_links(*pieces, parse_links(line or "", where), where))
        return rows

    def check_end(self) -> None:
        """The file ends with the corpus: as many lines as its source file."""
        extra = sum(1 for _ in self.lines)
        total = self.stream.lines  # read by the pass just made
        if self.line + extra != total:
            raise CorpusError(
                f"{self.path} has {self.line + extra:,} lines but {self.stream.src_path} has {total:,}: "
                "an alignment file needs a line for every line of the corpus"
            )


def logged_notes(store: Store) -> Store:
    """``store``, once what reading its corpora noted (pairs left out, line endings) is in the log."""
    for note in store.notes:
        log.info("%s", note)
    return store


def sync(folder: Path, files: bool = True) -> None:
    """Every file of ``folder`` (unless not ``files``) and the folder's entries on disk, before
    it is renamed into place (or after, for the rename itself): after a power loss a store or an
    export is whole or absent, not the right size and full of zeros."""
    for path in folder.iterdir() if files else ():
        with path.open("rb") as f:
            os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def joint_sample(streams: list[tuple[str, PairStream]], size: int) -> tuple[list[str], list[str]]:
    """The tokenizers' sample: up to ``size`` pairs over all training corpora (each corpus's
    share by its size would need a pass to count them; one pass over their concatenation does)."""
    return sample_sentences(Concat([s for _, s in streams]), size, seed=SAMPLE_SEED)


SAMPLE_SEED = 12345  # the tokenizers' sample is the same whatever the run's seed: one store serves every seed


class Concat:
    """Several pair streams read one after the other, with the total of pairs after a pass."""

    def __init__(self, streams: list[PairStream]) -> None:
        self.streams = streams
        self.pairs = 0

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for stream in self.streams:
            yield from stream
        self.pairs = sum(s.pairs for s in self.streams)
