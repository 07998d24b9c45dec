"""Read aligned plain-text files (line i of the source translates line i of the target) and
validate them before any training: every problem is reported with its file and line."""

from __future__ import annotations

from dataclasses import dataclass
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
    """The lines of a UTF-8 text file without line endings, and how many CRLF endings were read.

    Lines end at ``\n`` only. Raises :class:`CorpusError` naming the file (and line) for a
    missing file, invalid UTF-8, a CR or NUL inside a line, or a line over ``max_chars`` characters.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CorpusError(f"{path}:{line}: invalid UTF-8 (byte {data[e.start]:#04x})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")  # lines end at \n only: a CR inside a line must not shift the pairs
    if lines and lines[-1] == "":
        lines.pop()
    n_cr = 0
    for i, line in enumerate(lines, 1):
        if line.endswith("\r"):  # a CRLF line ending
            line = lines[i - 1] = line[:-1]
            n_cr += 1
        if "\r" in line:
            raise CorpusError(
                f"{path}:{i}: a carriage return (CR) inside the line; lines end at \\n only "
                "(old Mac line endings? convert the file, e.g. with tr '\\r' '\\n')"
            )
        if "\x00" in line:
            raise CorpusError(f"{path}:{i}: a NUL byte inside the line")
        if len(line) > max_chars:
            raise CorpusError(f"{path}:{i}: line has {len(line):,} characters (limit {max_chars:,})")
    return lines, n_cr


def read_alignments(path: str | Path) -> list[list[tuple[int, int]]]:
    """Pharaoh ``i-j`` links, one sentence per line."""
    result = []
    for n, line in enumerate(read_lines(path), 1):
        links = []
        for item in line.split():
            try:
                i, j = item.split("-")
                links.append((int(i), int(j)))
            except ValueError:
                raise CorpusError(f"{path}:{n}: {item!r} is not an i-j alignment link") from None
        result.append(links)
    return result


def read_parallel(
    src_path: str | Path,
    tgt_path: str | Path,
    align_path: str | Path | None = None,
    drop_empty: bool = False,
) -> ParallelCorpus:
    """Read and validate an aligned pair of files (and optional Pharaoh alignments).

    A pair with an empty side is an error, or with ``drop_empty`` left out and counted in
    ``notes``; so are CR line endings (normalised).
    """
    (src, src_cr), (tgt, tgt_cr) = read_text(src_path), read_text(tgt_path)
    if len(src) != len(tgt):
        raise CorpusError(
            f"{src_path} has {len(src):,} lines but {tgt_path} has {len(tgt):,}: the files must be aligned"
        )
    notes = [f"{p}: normalised {n:,} CR line endings" for p, n in ((src_path, src_cr), (tgt_path, tgt_cr)) if n]
    empty = [i for i in range(len(src)) if not src[i].strip() or not tgt[i].strip()]
    if empty and not drop_empty:
        i = empty[0]
        path = src_path if not src[i].strip() else tgt_path
        raise CorpusError(f"{path}:{i + 1}: empty line (every line must hold a sentence)")
    if empty:
        keep = sorted(set(range(len(src))) - set(empty))
        notes.append(f"{src_path}: left out {len(empty):,} pairs with an empty side (first: line {empty[0] + 1})")
        src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
    if not src:
        raise CorpusError(f"{src_path} and {tgt_path} hold no sentences")
    alignments = None
    if align_path is not None and Path(align_path).is_file():
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
    if alignments is not None and empty:
        raise CorpusError(f"{align_path}: gold alignments need every pair; {src_path} has empty lines")
    return ParallelCorpus(src, tgt, alignments, tuple(notes))


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
