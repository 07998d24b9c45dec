"""Bad corpus files give one clear error naming the file and line."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from seq2seq.data.corpus import TextStream, filter_long, load_split, read_lines, read_parallel
from seq2seq.errors import CorpusError


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_reads_aligned_files(tmp_path: Path) -> None:
    src = write(tmp_path / "a.en", b"Tom chase Jerry\nMary see Tom\n")
    tgt = write(tmp_path / "a.zh", "汤姆 追逐 杰瑞\n玛丽 看见 汤姆\n".encode())
    corpus = read_parallel(src, tgt)
    assert corpus.src == ["Tom chase Jerry", "Mary see Tom"]
    assert corpus.tgt[0] == "汤姆 追逐 杰瑞"
    assert corpus.alignments is None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"nope\.en: file not found"):
        read_lines(tmp_path / "nope.en")


def test_mismatched_line_counts(tmp_path: Path) -> None:
    src = write(tmp_path / "a.en", b"one\ntwo\nthree\n")
    tgt = write(tmp_path / "a.zh", b"one\ntwo\n")
    with pytest.raises(CorpusError, match="has 3 lines but .*a.zh has 2"):
        read_parallel(src, tgt)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.en", b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(CorpusError, match=r"a\.en:3: invalid UTF-8"):
        read_lines(path)


def test_empty_line_names_the_line(tmp_path: Path) -> None:
    src = write(tmp_path / "a.en", b"one\n\nthree\n")
    tgt = write(tmp_path / "a.zh", b"one\ntwo\nthree\n")
    with pytest.raises(CorpusError, match=r"a\.en:2: empty line"):
        read_parallel(src, tgt)


def test_huge_line_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.en", b"short\n" + b"x" * 20_000 + b"\n")
    with pytest.raises(CorpusError, match=r"a\.en:2: line has 20,000 characters"):
        read_lines(path)


def test_crlf_and_bom_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path / "a.en", "\ufeffone\r\ntwo\r\n".encode())
    assert read_lines(path) == ["one", "two"]


def test_empty_corpus(tmp_path: Path) -> None:
    src = write(tmp_path / "a.en", b"")
    tgt = write(tmp_path / "a.zh", b"")
    with pytest.raises(CorpusError, match="hold no sentences"):
        read_parallel(src, tgt)


def test_alignment_link_outside_the_sentence(tmp_path: Path) -> None:
    src = write(tmp_path / "a.en", b"a b\n")
    tgt = write(tmp_path / "a.zh", b"x y\n")
    align = write(tmp_path / "a.align", b"0-0 2-1\n")
    with pytest.raises(CorpusError, match=r"a\.align:1: link 2-1 is outside"):
        read_parallel(src, tgt, align)


def test_bad_alignment_link(tmp_path: Path) -> None:
    src = write(tmp_path / "a.en", b"a b\n")
    tgt = write(tmp_path / "a.zh", b"x y\n")
    align = write(tmp_path / "a.align", b"0-0 1:1\n")
    with pytest.raises(CorpusError, match=r"a\.align:1: '1:1'"):
        read_parallel(src, tgt, align)


def test_empty_pairs_left_out_and_counted_when_asked(tmp_path: Path) -> None:
    src = write(tmp_path / "a.en", b"one\n\nthree\nfour\n")
    tgt = write(tmp_path / "a.zh", b"1\n2\n3\n \n")
    corpus = read_parallel(src, tgt, drop_empty=True)
    assert corpus.src == ["one", "three"] and corpus.tgt == ["1", "3"]
    assert any("left out 2 pairs with an empty side (first: line 2)" in n for n in corpus.notes)


def test_crlf_is_counted(tmp_path: Path) -> None:
    src = write(tmp_path / "a.en", b"one\r\ntwo\r\n")
    tgt = write(tmp_path / "a.zh", b"1\n2\n")
    corpus = read_parallel(src, tgt)
    assert corpus.src == ["one", "two"]
    assert corpus.notes == (f"{src}: normalised 2 CR line endings",)


def test_long_pairs_filtered_and_counted() -> None:
    keep, note = filter_long([[1] * 3, [1] * 120, [1] * 5], [[1] * 4, [1] * 6, [1] * 101], 100)
    assert keep == [0]
    assert note == "kept 1 of 3 pairs: 2 longer than 100 tokens"
    assert filter_long([[1]], [[1]], 0) == ([0], None)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/corpora beside the checkout")
@pytest.mark.parametrize(
    ("corpus", "split", "src", "tgt"),
    [("multi30k", "train", "de", "en"), ("multi30k", "test2016", "de", "en"), ("tatoeba-cmn", "valid", "en", "zh")],
)
def test_loader_reads_the_first_200_lines_of_the_shared_corpora(
    corpus: str, split: str, src: str, tgt: str, tmp_path: Path
) -> None:
    for lang in (src, tgt):
        lines = (SHARED / corpus / f"{split}.{lang}").read_bytes().split(b"\n")[:200]
        (tmp_path / f"{split}.{lang}").write_bytes(b"\n".join(lines) + b"\n")
    data = load_split(tmp_path, split, src, tgt)
    assert len(data) == 200 and data.notes == ()
    assert all(s.strip() and t.strip() for s, t in zip(data.src, data.tgt, strict=True))


def test_a_carriage_return_inside_a_line_is_an_error_not_a_line_break(tmp_path: Path) -> None:
    # one stray CR on line 10 of the source and line 1010 of the target would pair the 1,000
    # lines between with the wrong targets if CR broke lines: the counts even match
    src_lines = [f"s{i}" for i in range(2000)]
    tgt_lines = [f"t{i}" for i in range(2000)]
    src_lines[9] = "half\rother half"
    tgt_lines[1009] = "half\rother half"
    src = write(tmp_path / "train.en", ("\n".join(src_lines) + "\n").encode())
    tgt = write(tmp_path / "train.zh", ("\n".join(tgt_lines) + "\n").encode())
    with pytest.raises(CorpusError, match=r"train\.en:10: a carriage return \(CR\) inside the line"):
        read_parallel(src, tgt)
    nul = write(tmp_path / "nul.en", b"fine\nbad\x00byte\n")
    with pytest.raises(CorpusError, match=r"nul\.en:2: a NUL byte inside the line"):
        read_lines(nul)
    crlf = write(tmp_path / "crlf.en", b"one\r\ntwo\r\n")
    assert read_lines(crlf) == ["one", "two"]  # a CRLF ending is still just a line ending


def test_a_huge_line_is_refused_after_reading_a_bounded_part_of_it(tmp_path: Path) -> None:
    path = write(tmp_path / "a.en", b"short\n" + b"x" * 8_000_000)  # 8 MB and no line end
    tracemalloc.start()
    try:
        with pytest.raises(CorpusError, match=r"a\.en:2: line has over 40,003 characters \(limit 10,000\)"):
            list(TextStream(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # the limit's 40,003 bytes and their text, not the 8 MB line
