"""Fetch the real corpora that configs/data/ knows into data/, as plain aligned text, and check them.

    python scripts/download_corpora.py multi30k       # data/multi30k/{train,valid,test2016}.{de,en}
    python scripts/download_corpora.py tatoeba_cmn    # data/tatoeba-cmn/{train,valid,test}.{en,zh,attribution}
    python scripts/download_corpora.py multi30k --source DIR   # the same files from a local folder (offline)

Multi30k: the official repository's task-1 raw files (gzip), renamed val -> valid and
test_2016_flickr -> test2016; 29,000 / 1,014 / 1,000 lines are checked. Tatoeba: the tab-separated
English / Chinese / attribution pairs (cmn.txt), split as the project's shared copy was: BOM and
zero-width spaces removed, exact duplicate pairs dropped, pairs sharing an English or a Chinese
sentence kept in one split, groups of at most 3 pairs shuffled (seed 20240601) into test (1,000)
then valid (1,000), the rest train; each split in source order. Tatoeba sentences are CC-BY 2.0
(France): the .attribution files carry each pair's credit and must stay with the text.
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
import sys
import urllib.request
from pathlib import Path

MULTI30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/"
MULTI30K = {"train": ("train", 29_000), "val": ("valid", 1_014), "test_2016_flickr": ("test2016", 1_000)}
TATOEBA_URL = "https://raw.githubusercontent.com/DaoChaShao/py-st-dl-translater-2.0/master/data/cmn.txt"


def fetch(name: str, url: str, source: Path | None, dest: Path) -> Path:
    """``name`` from the local folder ``source``, else downloaded from ``url``, into ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        local = source / name
        if not local.is_file():
            sys.exit(f"error: {local}: file not found")
        shutil.copyfile(local, dest)
    else:
        print(f"downloading {url}", file=sys.stderr)
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:  # noqa: S310
            shutil.copyfileobj(response, out)
    return dest


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def multi30k(out: Path, source: Path | None) -> dict[str, int]:
    counts = {}
    for name, (split, expected) in MULTI30K.items():
        for lang in ("de", "en"):
            gz = fetch(f"{name}.{lang}.gz", f"{MULTI30K_URL}{name}.{lang}.gz", source, out / f".{name}.{lang}.gz")
            lines = gzip.decompress(gz.read_bytes()).decode("utf-8").splitlines()
            gz.unlink()
            if len(lines) != expected:
                sys.exit(f"error: {name}.{lang}: {len(lines):,} lines, expected {expected:,}")
            write_lines(out / f"{split}.{lang}", lines)
            counts[f"{split}.{lang}"] = len(lines)
    return counts


def split_tatoeba(
    rows: list[tuple[str, str, str]], test: int = 1_000, valid: int = 1_000, seed: int = 20240601
) -> dict[str, list[tuple[str, str, str]]]:
    """Deduplicate, group pairs that share a sentence, and draw test/valid from small groups."""
    seen, pairs = set(), []
    for en, zh, attribution in rows:
        if (en, zh) not in seen:
            seen.add((en, zh))
            pairs.append((en, zh, attribution))
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, (en, zh, _) in enumerate(pairs):
        for key in (("en", en), ("zh", zh)):
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    chosen: dict[str, list[int]] = {"test": [], "valid": []}
    taken: set[int] = set()
    for split, size in (("test", test), ("valid", valid)):
        for group in order:
            if len(chosen[split]) >= size:
                break
            if len(group) <= 3 and not taken & set(group) and len(chosen[split]) + len(group) <= size:
                chosen[split] += group
                taken.update(group)
    train = [i for i in range(len(pairs)) if i not in taken]
    return {split: [pairs[i] for i in sorted(idx)] for split, idx in (("train", train), *chosen.items())}


def tatoeba(out: Path, source: Path | None) -> dict[str, int]:
    raw = fetch("cmn.txt", TATOEBA_URL, source, out / ".cmn.txt")
    rows = []
    for n, line in enumerate(raw.read_text(encoding="utf-8").splitlines(), 1):
        line = line.replace("\ufeff", "").replace("\u200b", "")
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3:
            sys.exit(f"error: cmn.txt:{n}: expected 3 tab-separated fields, found {len(fields)}")
        rows.append((fields[0], fields[1], fields[2]))
    raw.unlink()
    counts = {}
    for split, pairs in split_tatoeba(rows).items():
        for k, suffix in enumerate(("en", "zh", "attribution")):
            write_lines(out / f"{split}.{suffix}", [p[k] for p in pairs])
        counts[split] = len(pairs)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", choices=["multi30k", "tatoeba_cmn"])
    parser.add_argument("--out", help="output folder (default: data/multi30k or data/tatoeba-cmn)")
    parser.add_argument("--source", help="a local folder holding the files to fetch (no network)")
    args = parser.parse_args()
    source = Path(args.source) if args.source else None
    if args.corpus == "multi30k":
        out = Path(args.out or "data/multi30k")
        counts = multi30k(out, source)
    else:
        out = Path(args.out or "data/tatoeba-cmn")
        counts = tatoeba(out, source)
    print(f"wrote {out}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
