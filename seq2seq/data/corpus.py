"""Read aligned plain-text files (line i of the source translates line i of the target) and
validate them before any training: every problem is reported with its file and line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path

from seq2seq.errors import CorpusError

MAX_LINE_CHARS = 10_000  # a line longer than this is almost surely not a sentence


@dataclass(frozen=True)
class ParallelCorpus:
    src: list[str]
    tgt: list[str]
    alignments: list[list[tuple[int, int]]] | None = None  # gold links, when the corpus has them
    notes: tuple[str, ...] = ()  # what reading changed: CR line endings normalised, empty pairs left out

    def __len__(self) -> int:
        return len(self.src)


def read_lines(path: str | Path, max_chars: int = MAX_LINE_CHARS) -> list[str]:
    """The lines of a UTF-8 text file, without line endings (see :func:`read_text`)."""
    return read_text(path, max_chars)[0]


def read_text(path: str | Path, max_chars: int = MAX_LINE_CHARS) -> tuple[list[str], int]:
    """The lines of a UTF-8 text file without line endings, and how many CRLF endings were read
    (the file read through :class:`TextStream`, with its errors)."""
    stream = TextStream(path, max_chars)
    return list(stream), stream.crlf


class TextStream:
    """The lines of a UTF-8 text file without line endings, read one at a time (memory bounded by
    the longest line allowed, not the file). Lines end at ``\n`` only; a CRLF ending is one
    (counted in ``crlf``). Raises :class:`CorpusError` naming the file (and line) for a missing
    file, invalid UTF-8, a CR or NUL inside a line, or a line over ``max_chars`` characters."""

    def __init__(self, path: str | Path, max_chars: int = MAX_LINE_CHARS) -> None:
        self.path, self.max_chars = Path(path), max_chars
        if not self.path.is_file():
            raise CorpusError(f"{self.path}: file not found")
        self.crlf = 0  # CRLF endings read so far
        self.lines = 0  # lines read so far

    def __iter__(self) -> Iterator[str]:
        limit = 4 * self.max_chars + 3  # bytes: the longest allowed line in UTF-8, its CRLF and one more
        self.crlf = self.lines = 0
        with self.path.open("rb") as f:
            while raw := f.readline(limit):
                self.lines += 1
                yield self.decode(raw, len(raw) == limit and not raw.endswith(b"\n"))

    def decode(self, raw: bytes, cut: bool) -> str:
        """One line read as bytes (``cut``: no end within the read limit) as checked text."""
        where = f"{self.path}:{self.lines}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if not cut or e.start < len(raw) - 3:  # a cut may split a character: the limit's error comes next
                raise CorpusError(f"{where}: invalid UTF-8 (byte {raw[e.start]:#04x})") from None
            line = raw[: e.start].decode("utf-8")
        if cut:
            raise CorpusError(f"{where}: line has over {len(line):,} characters (limit {self.max_chars:,})")
        if self.lines == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):  # a CRLF line ending
            line = line[:-1]
            self.crlf += 1
        if "\r" in line:
            raise CorpusError(
                f"{where}: a carriage return (CR) inside the line; lines end at \\n only "
                "(old Mac line endings? convert the file, e.g. with tr '\\r' '\\n')"
            )
        if "\x00" in line:
            raise CorpusError(f"{where}: a NUL byte inside the line")
        if len(line) > self.max_chars:
            raise CorpusError(f"{where}: line has {len(line):,} characters (limit {self.max_chars:,})")
        return line


def read_alignments(path: str | Path) -> list[list[tuple[int, int]]]:
    """Pharaoh ``i-j`` links, one sentence per line."""
    return [parse_links(line, f"{path}:{n}") for n, line in enumerate(read_lines(path), 1)]


def parse_links(line: str, where: str) -> list[tuple[int, int]]:
    """One line of Pharaoh links, ``i-j`` (source word i, target word j, from 0) apart by spaces."""
    links = []
    for item in line.split():
        try:
            i, j = item.split("-")
            links.append((int(i), int(j)))
        except ValueError:
            raise CorpusError(f"{where}: {item!r} is not an i-j alignment link") from None
        if links[-1][0] < 0 or links[-1][1] < 0:
            raise CorpusError(f"{where}: {item!r} is not an i-j alignment link")
    return links


class PairStream:
    """The sentence pairs of two aligned files, read one at a time and checked as
    :class:`TextStream` checks lines; iterate it again to read them again. Line counts that differ
    are an error when the shorter file ends. A pair with an empty side is an error, or with
    ``drop_empty`` left out and counted; after a full pass, ``notes`` says what reading changed
    (CR line endings normalised, pairs left out) and ``pairs`` how many were yielded. While it is
    read, ``line`` is the line number of the pair just yielded (a file beside it, such as
    alignments, follows it by that number)."""

    def __init__(self, src_path: str | Path, tgt_path: str | Path, drop_empty: bool = False) -> None:
        self.src_path, self.tgt_path, self.drop_empty = Path(src_path), Path(tgt_path), drop_empty
        TextStream(src_path), TextStream(tgt_path)  # both exist: said before anything is read
        self.notes: tuple[str, ...] = ()
        self.pairs = 0
        self.line = 0
        self.lines = 0  # the source file's lines, after a full pass

    def __iter__(self) -> Iterator[tuple[str, str]]:
        src, tgt = TextStream(self.src_path), TextStream(self.tgt_path)
        src_lines, tgt_lines = iter(src), iter(tgt)
        pairs, empty, first_empty = 0, 0, 0
        for s, t in zip_longest(src_lines, tgt_lines):
            if s is None or t is None:
                for _ in chain(src_lines, tgt_lines):  # the rest of the longer file, checked and counted
                    pass
                raise CorpusError(
                    f"{self.src_path} has {src.lines:,} lines but {self.tgt_path} has {tgt.lines:,}: "
                    "the files must be aligned"
                )
            if not s.strip() or not t.strip():
                if not self.drop_empty:
                    path = self.src_path if not s.strip() else self.tgt_path
                    raise CorpusError(f"{path}:{src.lines}: empty line (every line must hold a sentence)")
                empty, first_empty = empty + 1, first_empty or src.lines
                continue
            pairs += 1
            self.line = src.lines
            yield s, t
        if not pairs:
            raise CorpusError(f"{self.src_path} and {self.tgt_path} hold no sentences")
        notes = [f"{p.path}: normalised {p.crlf:,} CR line endings" for p in (src, tgt) if p.crlf]
        if empty:
            notes.append(f"{self.src_path}: left out {empty:,} pairs with an empty side (first: line {first_empty})")
        self.notes, self.pairs, self.lines = tuple(notes), pairs, src.lines


def read_parallel(
    src_path: str | Path,
    tgt_path: str | Path,
    align_path: str | Path | None = None,
    drop_empty: bool = False,
) -> ParallelCorpus:
    """Read and validate an aligned pair of files (:class:`PairStream`) and optional Pharaoh
    alignments, into memory: for the valid and test splits, and small corpora."""
    stream = PairStream(src_path, tgt_path, drop_empty)
    pairs = list(stream)
    src, tgt = [s for s, _ in pairs], [t for _, t in pairs]
    alignments = None
    if align_path is not None and Path(align_path).is_file():
        if any("pairs with an empty side" in note for note in stream.notes):
            raise CorpusError(f"{align_path}: gold alignments need every pair; {src_path} has empty lines")
        alignments = read_alignments(align_path)
        if len(alignments) != len(src):
            raise CorpusError(f"{align_path} has {len(alignments):,} lines but {src_path} has {len(src):,}")
        for n, (links, s, t) in enumerate(zip(alignments, src, tgt, strict=True), 1):
            n_src, n_tgt = len(s.split()), len(t.split())
            for i, j in links:
                if not (0 <= i < n_src and 0 <= j < n_tgt):
                    raise CorpusError(
                        f"{align_path}:{n}: link {i}-{j} is outside the sentence pair ({n_src} x {n_tgt} words)"
                    )
    return ParallelCorpus(src, tgt, alignments, stream.notes)


def split_paths(root: str | Path, split: str, src_lang: str, tgt_lang: str) -> tuple[Path, Path, Path]:
    root = Path(root)
    return root / f"{split}.{src_lang}", root / f"{split}.{tgt_lang}", root / f"{split}.align"


def load_split(root: str | Path, split: str, src_lang: str, tgt_lang: str, drop_empty: bool = False) -> ParallelCorpus:
    """``{root}/{split}.{src_lang}`` and ``.{tgt_lang}``, plus ``{split}.align`` if present."""
    return read_parallel(*split_paths(root, split, src_lang, tgt_lang), drop_empty=drop_empty)


def filter_long(src_ids: list[list[int]], tgt_ids: list[list[int]], max_len: int) -> tuple[list[int], str | None]:
    """Indices of the pairs whose both sides have at most ``max_len`` tokens, and a note on
    how many were left out (None when none was, or ``max_len`` is 0)."""
    if max_len <= 0:
        return list(range(len(src_ids))), None
    pairs = zip(src_ids, tgt_ids, strict=True)
    keep = [i for i, (s, t) in enumerate(pairs) if len(s) <= max_len and len(t) <= max_len]
    dropped = len(src_ids) - len(keep)
    if not dropped:
        return keep, None
    return keep, f"kept {len(keep):,} of {len(src_ids):,} pairs: {dropped:,} longer than {max_len} tokens"
