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

    def __len__(self) -> int:
        return len(self.src)


def read_lines(path: str | Path, max_chars: int = MAX_LINE_CHARS) -> list[str]:
    """The lines of a UTF-8 text file, without line endings.

    Raises :class:`CorpusError` naming the file (and line) for a missing file, invalid UTF-8 or a
    line over ``max_chars`` characters.
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
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines, 1):
        if len(line) > max_chars:
            raise CorpusError(f"{path}:{i}: line has {len(line):,} characters (limit {max_chars:,})")
    return lines


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


def read_parallel(src_path: str | Path, tgt_path: str | Path, align_path: str | Path | None = None) -> ParallelCorpus:
    """Read and validate an aligned pair of files (and optional Pharaoh alignments)."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise CorpusError(
            f"{src_path} has {len(src):,} lines but {tgt_path} has {len(tgt):,}: the files must be aligned"
        )
    for path, lines in ((src_path, src), (tgt_path, tgt)):
        for i, line in enumerate(lines, 1):
            if not line.strip():
                raise CorpusError(f"{path}:{i}: empty line (every line must hold a sentence)")
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
    return ParallelCorpus(src, tgt, alignments)


def split_paths(root: str | Path, split: str, src_lang: str, tgt_lang: str) -> tuple[Path, Path, Path]:
    root = Path(root)
    return root / f"{split}.{src_lang}", root / f"{split}.{tgt_lang}", root / f"{split}.align"


def load_split(root: str | Path, split: str, src_lang: str, tgt_lang: str) -> ParallelCorpus:
    """``{root}/{split}.{src_lang}`` and ``.{tgt_lang}``, plus ``{split}.align`` if present."""
    return read_parallel(*split_paths(root, split, src_lang, tgt_lang))
