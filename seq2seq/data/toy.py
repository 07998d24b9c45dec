"""The toy corpus: English -> Chinese sentences in the lecture note's style, with gold alignments.

"Tom chase Jerry" -> "汤姆 追逐 杰瑞" is the shortest sentence. A small grammar grows it with the
reorderings that make a fixed summary vector struggle and attention shine:

- time and place phrases move in front of the verb (``Tom chase Jerry in the garden yesterday``
  -> ``汤姆 昨天 在 花园 里 追逐 杰瑞``), ``in X`` as the circumposition ``在 X 里``;
- manner adverbs move in front of the verb (``quickly`` -> ``快速地``);
- determiners and numbers take a measure word chosen by the noun (``two book`` -> ``两 本 书``);
- relative clauses put the modifier first (``the cat which chase Jerry`` -> ``追逐 杰瑞 的 猫``);
- clauses join with ``and``/``but``, and ``because``/``when`` swap the two clauses
  (``A because B`` -> ``因为 B ， 所以 A``).

English words stay uninflected, as in the lecture note. Every pair carries its gold word
alignment, built alongside the words: each target word records the source words it translates,
so the links are right by construction (``i-j``: source word i, target word j, 0-based, Pharaoh
format). Sentence lengths are drawn evenly over the buckets of :data:`LENGTH_BUCKETS`, so that
long sentences are as common as short ones.

Runnable: ``python -m seq2seq.data.toy --out data/toy`` writes 20,000 / 500 / 1,000 pairs
(``--train N --valid N --test N --seed S`` to change them).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path


def _rows(text: str) -> list[list[str]]:
    """``"a b, c d, ..."`` -> ``[[a, b], [c, d], ...]``, in that order (the order the grammar draws from)."""
    return [row.split() for row in text.split(", ")]


def _table(text: str) -> dict[str, str]:
    """``"en zh, en zh, ..."`` -> ``{en: zh}``."""
    return {en: zh for en, zh in _rows(text)}


NAMES = _table(
    "Tom 汤姆, Jerry 杰瑞, Mary 玛丽, John 约翰, Lucy 露西, Jack 杰克, Anna 安娜, Peter 彼得, Lily 莉莉, David 大卫"
)
VERBS = _table(
    "chase 追逐, see 看见, like 喜欢, help 帮助, find 找到, visit 拜访, follow 跟随, watch 观看, meet 遇见, love 爱"
)
# noun -> (Chinese noun, measure word)
NOUNS = {
    en: (zh, measure)
    for en, zh, measure in _rows(
        "cat 猫 只, dog 狗 只, bird 鸟 只, book 书 本, car 车 辆, apple 苹果 个, teacher 老师 位, student 学生 个, "
        "horse 马 匹, fish 鱼 条, letter 信 封, flower 花 朵"
    )
}
ADJECTIVES = _table("big 大, small 小, black 黑, white 白, red 红, new 新")
# determiner -> Chinese word before the measure word; "the" has none (a bare noun)
DETERMINERS = {"the": None, "this": "这", "that": "那", "a": "一", "two": "两", "three": "三"}
PLACES = _table(
    "garden 花园, park 公园, school 学校, kitchen 厨房, library 图书馆, station 车站, river 河, market 市场"
)
# preposition -> (word before the place, word after it or None). Each preposition has its own
# first word, so that word can only be chosen by looking at the preposition.
PREPOSITIONS = {
    "in": ("在", "里"),
    "from": ("从", None),
    "towards": ("朝", None),
    "along": ("沿着", None),
    "near": ("靠近", None),
}
ADVERBS = _table("quickly 快速地, slowly 慢慢地, happily 高兴地, quietly 安静地")
# one- and two-word time phrases; each English word -> the Chinese words it aligns to
TIMES: list[tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[int, int], ...]]] = [
    (("yesterday",), ("昨天",), ((0, 0),)),
    (("today",), ("今天",), ((0, 0),)),
    (("tomorrow",), ("明天",), ((0, 0),)),
    (("every", "day"), ("每天",), ((0, 0), (1, 0))),
    (("on", "Monday"), ("星期一",), ((0, 0), (1, 0))),
    (("on", "Sunday"), ("星期天",), ((0, 0), (1, 0))),
    (("last", "week"), ("上周",), ((0, 0), (1, 0))),
    (("next", "year"), ("明年",), ((0, 0), (1, 0))),
]

LENGTH_BUCKETS: tuple[tuple[int, int], ...] = ((3, 10), (11, 20), (21, 30), (31, 40), (41, 50))


class _Src:
    """One source word; target words point at these objects, so links survive reordering."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_TgtWord = tuple[str, tuple[_Src, ...]]
_Phrase = tuple[list[_Src], list[_TgtWord]]


@dataclass(frozen=True)
class ToyPair:
    """A source sentence, its translation and the gold links ``(source index, target index)``."""

    src: str
    tgt: str
    alignment: tuple[tuple[int, int], ...]

    def pharaoh(self) -> str:
        return " ".join(f"{i}-{j}" for i, j in self.alignment)


class ToyGrammar:
    """Samples sentence pairs; ``rng`` alone decides every choice, so a seed fixes the corpus."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def _pick(self, table: dict) -> str:
        return self.rng.choice(list(table))

    def _word(self, table: dict[str, str]) -> _Phrase:
        """One word drawn from ``table``, and its translation."""
        en = self._pick(table)
        w = _Src(en)
        return [w], [(table[en], (w,))]

    def name(self) -> _Phrase:
        return self._word(NAMES)

    def noun_phrase(self, depth: int) -> _Phrase:
        det_en, noun_en = self._pick(DETERMINERS), self._pick(NOUNS)
        det, noun = _Src(det_en), _Src(noun_en)
        noun_zh, measure = NOUNS[noun_en]
        adjs = [_Src(a) for a in self.rng.sample(list(ADJECTIVES), k=self._n_adjectives())]
        src = [det, *adjs, noun]
        tgt: list[_TgtWord] = []
        if DETERMINERS[det_en] is not None:
            tgt += [(DETERMINERS[det_en], (det,)), (measure, (det, noun))]
        tgt += [(ADJECTIVES[a.text], (a,)) for a in adjs] + [(noun_zh, (noun,))]
        if depth > 0 and self.rng.random() < 0.25:
            rel_src, rel_tgt = self.relative_clause(depth - 1)
            src, tgt = src + rel_src, rel_tgt + tgt  # the modifier goes first in Chinese
        return src, tgt

    def _n_adjectives(self) -> int:
        return self.rng.choices((0, 1, 2), weights=(5, 3, 1))[0]

    def relative_clause(self, depth: int) -> _Phrase:
        which = _Src("which")
        verb_src, verb_tgt = self.verb()
        de = [("的", (which,))]
        if self.rng.random() < 0.5:  # "which chase Jerry" -> "追逐 杰瑞 的"
            obj_src, obj_tgt = self.argument(depth)
            return [which, *verb_src, *obj_src], verb_tgt + obj_tgt + de
        subj_src, subj_tgt = self.argument(depth)  # "which Tom chase" -> "汤姆 追逐 的"
        return [which, *subj_src, *verb_src], subj_tgt + verb_tgt + de

    def argument(self, depth: int) -> _Phrase:
        return self.name() if self.rng.random() < 0.5 else self.noun_phrase(depth)

    def verb(self) -> _Phrase:
        return self._word(VERBS)

    def place(self) -> _Phrase:
        prep_en, place_en = self._pick(PREPOSITIONS), self._pick(PLACES)
        prep, the, place = _Src(prep_en), _Src("the"), _Src(place_en)
        adjs = [_Src(a) for a in self.rng.sample(list(ADJECTIVES), k=self._n_adjectives())]
        before, after = PREPOSITIONS[prep_en]
        tgt: list[_TgtWord] = [(before, (prep,))]
        tgt += [(ADJECTIVES[a.text], (a,)) for a in adjs] + [(PLACES[place_en], (place,))]
        if after is not None:
            tgt.append((after, (prep,)))
        return [prep, the, *adjs, place], tgt

    def time(self) -> _Phrase:
        en, zh, links = self.rng.choice(TIMES)
        src = [_Src(w) for w in en]
        tgt = [(z, tuple(src[i] for i, j in links if j == k)) for k, z in enumerate(zh)]
        return src, tgt

    def adverb(self) -> _Phrase:
        en = self._pick(ADVERBS)
        w = _Src(en)
        return [w], [(ADVERBS[en], (w,))]

    def clause(self, richness: float) -> _Phrase:
        """English ``S V O [Adv] [Place] [Time]``; Chinese ``S [Time] [Place] [Adv] V O``."""
        depth = 1 if self.rng.random() < richness else 0
        subj_src, subj_tgt = self.argument(depth)
        verb_src, verb_tgt = self.verb()
        obj_src, obj_tgt = self.argument(depth)
        adv = self.adverb() if self.rng.random() < richness * 0.5 else ([], [])
        place = self.place() if self.rng.random() < richness else ([], [])
        time = self.time() if self.rng.random() < richness else ([], [])
        src = subj_src + verb_src + obj_src + adv[0] + place[0] + time[0]
        tgt = subj_tgt + time[1] + place[1] + adv[1] + verb_tgt + obj_tgt
        return src, tgt

    def sentence(self, n_clauses: int, richness: float) -> _Phrase:
        src, tgt = self.clause(richness)
        for _ in range(n_clauses - 1):
            conj_en = self.rng.choice(("and", "but", "because", "when"))
            conj = _Src(conj_en)
            c_src, c_tgt = self.clause(richness)
            comma: _TgtWord = ("，", ())
            if conj_en == "and":
                tgt = tgt + [comma, ("而且", (conj,))] + c_tgt
            elif conj_en == "but":
                tgt = tgt + [comma, ("但是", (conj,))] + c_tgt
            elif conj_en == "because":  # A because B -> 因为 B ， 所以 A
                tgt = [("因为", (conj,))] + c_tgt + [comma, ("所以", (conj,))] + tgt
            else:  # A when B -> 当 B 的 时候 ， A
                tgt = [("当", (conj,))] + c_tgt + [("的", (conj,)), ("时候", (conj,)), comma] + tgt
            src = src + [conj] + c_src
        return src, tgt

    def pair(self, min_len: int, max_len: int) -> ToyPair:
        """A pair whose source has ``min_len..max_len`` words (rejection sampling)."""
        mid = (min_len + max_len) / 2
        n_clauses = max(1, round(mid / 11))
        richness = min(1.0, mid / 25)
        while True:
            src, tgt = self.sentence(n_clauses + self.rng.choice((-1, 0, 0, 1)), richness)
            if min_len <= len(src) <= max_len:
                return _to_pair(src, tgt)


def _to_pair(src: list[_Src], tgt: list[_TgtWord]) -> ToyPair:
    index = {id(w): i for i, w in enumerate(src)}
    links = sorted((index[id(w)], j) for j, (_, ws) in enumerate(tgt) for w in ws)
    return ToyPair(
        src=" ".join(w.text for w in src),
        tgt=" ".join(z for z, _ in tgt),
        alignment=tuple(links),
    )


def generate(
    n: int,
    seed: int,
    buckets: tuple[tuple[int, int], ...] = LENGTH_BUCKETS,
    exclude: set[str] | None = None,
) -> list[ToyPair]:
    """``n`` distinct pairs, spread evenly over the source-length ``buckets``.

    Sources in ``exclude`` (e.g. the training set, when drawing a test set) are skipped.
    Short buckets hold few distinct sentences; drawing stops trying after many repeats.
    """
    grammar = ToyGrammar(random.Random(seed))
    seen = set(exclude or ())
    pairs: list[ToyPair] = []
    for k, (lo, hi) in enumerate(buckets):
        want = n // len(buckets) + (1 if k < n % len(buckets) else 0)
        got, misses = 0, 0
        while got < want and misses < 50 * want + 1000:
            pair = grammar.pair(lo, hi)
            if pair.src in seen:
                misses += 1
                continue
            seen.add(pair.src)
            pairs.append(pair)
            got += 1
    random.Random(seed + 1).shuffle(pairs)
    return pairs


def write_corpus(
    root: str | Path,
    sizes: dict[str, int],
    seed: int = 1,
    src_lang: str = "en",
    tgt_lang: str = "zh",
) -> dict[str, int]:
    """Write ``{split}.{src_lang}``, ``{split}.{tgt_lang}`` and ``{split}.align`` for each split.

    Splits are disjoint: no source sentence appears in two of them. Returns the line counts.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    counts = {}
    for k, (split, n) in enumerate(sizes.items()):
        pairs = generate(n, seed=seed * 1000 + k, exclude=used)
        used.update(p.src for p in pairs)
        for suffix, lines in (
            (src_lang, [p.src for p in pairs]),
            (tgt_lang, [p.tgt for p in pairs]),
            ("align", [p.pharaoh() for p in pairs]),
        ):
            (root / f"{split}.{suffix}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[split] = len(pairs)
    return counts


def lexicon() -> dict[str, set[str]]:
    """Every source word and the target words the grammar may align it to (for tests)."""
    lex: dict[str, set[str]] = {}

    def add(en: str, *zh: str | None) -> None:
        lex.setdefault(en, set()).update(z for z in zh if z)

    for table in (NAMES, VERBS, ADJECTIVES, PLACES):
        for en, zh in table.items():
            add(en, zh)
    for en, (zh, measure) in NOUNS.items():
        add(en, zh, measure)
    measures = {m for _, m in NOUNS.values()}
    for en, zh in DETERMINERS.items():
        add(en, zh, *(measures if zh else ()))
    for en, pair in PREPOSITIONS.items():
        add(en, *pair)
    for en, zh in ADVERBS.items():
        add(en, zh)
    for en_words, zh_words, links in TIMES:
        for i, j in links:
            add(en_words[i], zh_words[j])
    add("which", "的")
    add("and", "而且")
    add("but", "但是")
    add("because", "因为", "所以")
    add("when", "当", "的", "时候")
    return lex


def main(argv: list[str] | None = None) -> None:
    """``python -m seq2seq.data.toy [--out DIR] [--train N] [--valid N] [--test N] [--seed S]``."""
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.data.toy",
        description="Write the toy English -> Chinese corpus (with gold alignments) as aligned text files.",
    )
    parser.add_argument("--out", default="data/toy", help="output folder (default: data/toy)")
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--valid", type=int, default=500)
    parser.add_argument("--test", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    counts = write_corpus(args.out, {"train": args.train, "valid": args.valid, "test": args.test}, seed=args.seed)
    print(f"wrote {args.out}: " + ", ".join(f"{split} {n:,}" for split, n in counts.items()) + " pairs")


if __name__ == "__main__":
    main()
