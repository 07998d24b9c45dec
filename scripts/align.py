"""Gold-ish word alignments for guided alignment (``trainer.guided_alignment``): run the eflomal
aligner on a split's two files and write ``{split}.align`` beside them, in the Pharaoh ``i-j``
format seq2seq reads (source word i, target word j, from 0; words as split by spaces).

    pip install eflomal                 # a statistical aligner (Östling and Tiedemann, 2016)
    python scripts/align.py data/multi30k train de en          # -> data/multi30k/train.align
    python scripts/align.py data/multi30k train de en --symmetrize intersect

eflomal aligns both ways (source -> target and target -> source); the two are combined by
``grow-diag-final-and`` (Koehn et al., 2003: the intersection, grown by neighbours from the union,
then the union's links of still unaligned words when both ends are unaligned; the recipe of
Moses, Marian's guided-alignment examples and fast_align's atools), or by their intersection
(fewer, surer links). A word left without a link teaches nothing: its row of the loss is zero.
Chinese text must be split into words first (or by characters): eflomal reads space-separated
tokens, and so does seq2seq's word numbering.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

Links = set[tuple[int, int]]
NEIGHBOURS = [(-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]


def parse(line: str) -> Links:
    return {(int(i), int(j)) for i, j in (item.split("-") for item in line.split())}


def grow_diag_final_and(forward: Links, reverse: Links) -> Links:
    """Koehn et al.'s symmetrisation of two directional alignments of one sentence pair (both
    as source-target links): start from their intersection; add a union link next to (also
    diagonally) an aligned link while one of its words is unaligned, until nothing changes; then
    add union links both of whose words are still unaligned."""
    union, links = forward | reverse, forward & reverse
    src_done = {i for i, _ in links}
    tgt_done = {j for _, j in links}
    grown = True
    while grown:
        grown = False
        for i, j in sorted(links):
            for di, dj in NEIGHBOURS:
                link = (i + di, j + dj)
                if link in union and link not in links and (link[0] not in src_done or link[1] not in tgt_done):
                    links.add(link)
                    src_done.add(link[0])
                    tgt_done.add(link[1])
                    grown = True
    for link in sorted(union - links):  # final-and: both words unaligned
        if link[0] not in src_done and link[1] not in tgt_done:
            links.add(link)
            src_done.add(link[0])
            tgt_done.add(link[1])
    return links


def symmetrize(forward: list[str], reverse: list[str], how: str) -> list[str]:
    """One Pharaoh line per pair from the two directions' lines (both source-target)."""
    out = []
    for f, r in zip(forward, reverse, strict=True):
        a, b = parse(f), parse(r)
        links = a & b if how == "intersect" else grow_diag_final_and(a, b)
        out.append(" ".join(f"{i}-{j}" for i, j in sorted(links)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the corpus folder")
    parser.add_argument("split", help="the split's file prefix, e.g. train")
    parser.add_argument("src_lang")
    parser.add_argument("tgt_lang")
    parser.add_argument("--symmetrize", choices=["grow-diag-final-and", "intersect"], default="grow-diag-final-and")
    parser.add_argument("--model", type=int, choices=[1, 2, 3], default=3, help="eflomal's model (3: with fertility)")
    args = parser.parse_args(argv)
    try:
        import eflomal
    except ImportError:
        sys.exit("error: eflomal is not installed: pip install eflomal")
    src, tgt = args.root / f"{args.split}.{args.src_lang}", args.root / f"{args.split}.{args.tgt_lang}"
    for path in (src, tgt):
        if not path.is_file():
            sys.exit(f"error: {path}: file not found")
    with tempfile.TemporaryDirectory() as tmp:
        fwd, rev = Path(tmp) / "fwd", Path(tmp) / "rev"
        with src.open(encoding="utf-8") as s, tgt.open(encoding="utf-8") as t:
            eflomal.Aligner(model=args.model).align(s, t, links_filename_fwd=str(fwd), links_filename_rev=str(rev))
        forward = fwd.read_text(encoding="utf-8").splitlines()
        reverse = rev.read_text(encoding="utf-8").splitlines()
    corpus_lines = sum(1 for _ in src.open("rb"))
    if not len(forward) == len(reverse) == corpus_lines:
        sys.exit(f"error: eflomal wrote {len(forward):,} and {len(reverse):,} lines for {corpus_lines:,} pairs")
    lines = symmetrize(forward, reverse, args.symmetrize)
    out = args.root / f"{args.split}.align"
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"{out}: {len(lines):,} pairs, {sum(len(line.split()) for line in lines):,} links ({args.symmetrize})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
