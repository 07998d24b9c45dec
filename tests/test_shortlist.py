"""The vocabulary shortlist: a batch's candidates by hand, a shortlist of every piece changes
nothing, a narrower one normalises over its pieces and writes only them (beam = exhaustive
search over them), prefixes and ensembles keep working, and the file round-trips and is
checked; the commands take shortlist=FILE."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from serving import BIN, PAIRS, train_tiny
from test_search import DECODERS, SRC, model_of, sequence_log_prob

from seq2seq import Translator
from seq2seq.checkpoint import load_model
from seq2seq.config import SearchConfig, ServeConfig, ShortlistConfig
from seq2seq.data.batching import collate
from seq2seq.data.corpus import PairStream
from seq2seq.errors import ConfigError, CorpusError, Seq2SeqError
from seq2seq.models.ensemble import Ensemble
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.models.state import OutputRows
from seq2seq.search import beam_search, greedy_search, search
from seq2seq.serve import run_serve
from seq2seq.shortlist import (
    Shortlist,
    build_shortlist,
    co_occurrences,
    lexical_probabilities,
    read_shortlist,
    run_shortlist,
    write_shortlist,
)
from seq2seq.tokenizer import UNK_ID, Tokenizer


def everything(vocab: int) -> Shortlist:
    """A shortlist that lists every piece for every source piece."""
    return Shortlist(torch.arange(vocab).expand(vocab, vocab).clone(), torch.empty(0, dtype=torch.long))


def test_candidates_by_hand() -> None:
    table = torch.full((12, 2), -1)
    table[4] = torch.tensor([7, 9])
    table[5] = torch.tensor([9, -1])
    shortlist = Shortlist(table, torch.tensor([11]))
    src = torch.tensor([[4, 5, 0], [5, 0, 0]])  # PAD (0) lists nothing
    assert shortlist.candidates(src).tolist() == [0, 1, 2, 3, 7, 9, 11]  # specials, lists, frequent; sorted
    prefix = torch.tensor([[10, 0], [6, 8]])  # a forced prefix's pieces are candidates too
    assert shortlist.candidates(src, prefix).tolist() == [0, 1, 2, 3, 6, 7, 8, 9, 10, 11]


def test_ibm_model_1_by_hand() -> None:
    """Pairs "a b" -> "x y" and "a" -> "x" (a, x = 4; b, y = 5): after one EM iteration from
    uniform, t(x|a) = 1.5 / 2, t(y|a) = 0.5 / 2, t(x|b) = t(y|b) = 0.5; after two, "b" -> "y"
    wins (2/3 against 0.4 of their shares), which co-occurrence alone cannot tell."""
    pairs = ([[4, 5], [4]], [[4, 5], [4]])  # one chunk: source ids, target ids

    def chunks() -> list[tuple[list[list[int]], list[list[int]]]]:
        return [pairs]

    keys, counts, src_pairs, tgt_pairs = co_occurrences(chunks(), 6, 6)
    assert keys.tolist() == [4 * 6 + 4, 4 * 6 + 5, 5 * 6 + 4, 5 * 6 + 5] and counts.tolist() == [2, 1, 1, 1]
    assert src_pairs[4:].tolist() == [2, 1] and tgt_pairs[4:].tolist() == [2, 1]
    one = lexical_probabilities(chunks, keys, 6, iterations=1)
    assert one.tolist() == pytest.approx([0.75, 0.25, 0.5, 0.5])
    two = lexical_probabilities(chunks, keys, 6, iterations=2)
    assert two.tolist() == pytest.approx([1.6 / (1.6 + 1 / 3), (1 / 3) / (1.6 + 1 / 3), 0.4 / (0.4 + 2 / 3),
                                          (2 / 3) / (0.4 + 2 / 3)])  # fmt: skip


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_shortlist_of_every_piece_changes_nothing(decoder: str) -> None:
    model = model_of(decoder)
    batch = collate(SRC)
    for cfg in (SearchConfig(), SearchConfig(beam=4, nbest=3)):
        plain = search(model, batch.src, batch.src_mask, cfg=cfg)
        listed = search(model, batch.src, batch.src_mask, cfg=cfg, shortlist=everything(12))
        for a, b in zip(plain, listed, strict=True):
            assert [h.tokens for h in a] == [h.tokens for h in b]
            for x, y in zip(a, b, strict=True):
                assert x.score == pytest.approx(y.score, abs=1e-5)
                assert torch.allclose(x.weights, y.weights, atol=1e-6)


@pytest.mark.parametrize("decoder", ["bahdanau", "luong-lstm", "transformer"])
def test_a_wide_beam_over_a_shortlist_is_exhaustive_search_over_its_pieces(decoder: str) -> None:
    """Only the listed pieces are written, and their probabilities are renormalised over them."""
    vocab, max_len, src = 7, 3, [4, 5, 4]
    table = torch.full((vocab, 1), -1)
    table[4], table[5] = 4, 6  # piece 5 is listed by no source piece: never written
    shortlist = Shortlist(table, torch.empty(0, dtype=torch.long))
    listed = [0, 1, 2, 3, 4, 6]
    for seed in range(2):
        model = model_of(decoder, vocab, seed)

        def restricted_log_prob(tokens: list[int], model: Seq2Seq = model) -> float:
            batch = collate([src], [tokens])
            with torch.no_grad():
                logits, _ = model(batch.src, batch.src_mask, batch.tgt_in)
            log_probs = torch.log_softmax(logits[0][:, listed].float(), dim=-1)  # over the listed pieces only
            return float(sum(log_probs[t, listed.index(y)] for t, y in enumerate(batch.tgt_out[0].tolist())))

        outputs = [list(seq) for n in range(max_len + 1) for seq in itertools.product([UNK_ID, 4, 6], repeat=n)]
        best_score, best = max((restricted_log_prob(c), c) for c in outputs)
        batch = collate([src])
        cfg = SearchConfig(beam=64, length_norm="none", max_len_a=0, max_len_b=max_len)
        (hyps,) = beam_search(model, batch.src, batch.src_mask, cfg, shortlist=shortlist)
        assert hyps[0].tokens == best
        assert hyps[0].score == pytest.approx(best_score, abs=1e-5)
        assert best_score > sequence_log_prob(model, src, best)  # renormalised: more than over every piece
        (greedy,) = greedy_search(model, batch.src, batch.src_mask, SearchConfig(max_len_a=0, max_len_b=max_len),
                                  shortlist=shortlist)  # fmt: skip
        assert 5 not in greedy.tokens
        assert greedy.score == pytest.approx(restricted_log_prob(greedy.tokens), abs=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
def test_a_prefix_outside_the_shortlist_is_still_written(beam: int) -> None:
    model = model_of("transformer")
    table = torch.full((12, 1), -1)
    table[4:12] = 4  # every source piece lists piece 4 only
    shortlist = Shortlist(table, torch.empty(0, dtype=torch.long))
    batch = collate(SRC)
    cfg = SearchConfig(beam=beam)
    found = search(model, batch.src, batch.src_mask, cfg=cfg, prefixes=[[9, 10], [], [11]], shortlist=shortlist)
    assert found[0][0].tokens[:2] == [9, 10] and found[2][0].tokens[:1] == [11]
    allowed = {UNK_ID, 4, 9, 10, 11}
    assert all(set(h.tokens) <= allowed for hyps in found for h in hyps)


def test_an_ensemble_decodes_with_a_shortlist() -> None:
    ensemble = Ensemble([model_of("bahdanau", 12, 0), model_of("transformer", 12, 1)])
    batch = collate(SRC)
    for cfg in (SearchConfig(), SearchConfig(beam=3)):
        plain = search(ensemble, batch.src, batch.src_mask, cfg=cfg)
        listed = search(ensemble, batch.src, batch.src_mask, cfg=cfg, shortlist=everything(12))
        assert [h[0].tokens for h in plain] == [h[0].tokens for h in listed]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("shortlist"))


def test_the_output_rows_are_the_layers_own_in_fp32_and_int8(tiny: Path) -> None:
    """The cut layer gives the whole layer's logits at its pieces: fp32 to rounding, and int8
    exactly (its rows are packed anew from the same int8 weights)."""
    ids = torch.tensor([0, 1, 2, 3, 5, 8])
    for quantize, tolerance in (("none", 1e-6), ("int8", 0.0)):
        generator = load_model(tiny, quantize=quantize).model.decoder.generator
        x = torch.randn(4, 1, generator.in_features)
        with torch.no_grad():
            cut = OutputRows.of(generator, ids)(x)
            assert cut.shape == (4, 1, 6)
            assert torch.allclose(cut, generator(x)[..., ids], atol=tolerance, rtol=0), quantize


def test_built_from_the_corpus_it_lists_each_words_translation(tiny: Path, tmp_path: Path) -> None:
    loaded = load_model(tiny)
    data = tiny.parent.parent / "data"
    src, tgt = loaded.src_tokenizer, loaded.tgt_tokenizer
    shortlist = build_shortlist(PairStream(data / "train.en", data / "train.zh"), src, tgt, per_source=3, frequent=0)
    for word, translation in (("Tom", "汤姆"), ("Jerry", "杰瑞"), ("chase", "追逐"), ("like", "喜欢")):
        (piece,) = [i for i in src.encode(word)]  # one piece each in this tiny vocabulary
        listed = set(tgt.id_to_piece(t for t in shortlist.table[piece].tolist() if t >= 0))
        assert set(tgt.pieces(translation)) <= listed, (word, listed)
    path = tmp_path / "vmap.txt"
    write_shortlist(shortlist, path, src, tgt)
    again = read_shortlist(path, src, tgt)
    for row, back in zip(shortlist.table.tolist(), again.table.tolist(), strict=False):
        assert {t for t in row if t >= 0} == {t for t in back if t >= 0}
    assert again.frequent.tolist() == shortlist.frequent.tolist()
    batch = collate([src.encode("Tom chase Jerry")])
    assert torch.equal(shortlist.candidates(batch.src), again.candidates(batch.src))


def test_counting_in_chunks_gives_the_counts_of_one_pass() -> None:
    """The pending chunks are merged into the table as it doubles, not at every chunk: the
    counts are those of counting all the pairs at once, however the pairs are chunked."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 9, (300, 2), generator=gen).tolist()
    pairs = [
        (torch.randint(4, 40, (n,), generator=gen).tolist(), torch.randint(4, 30, (m,), generator=gen).tolist())
        for n, m in lengths
    ]
    whole = co_occurrences([([s for s, _ in pairs], [t for _, t in pairs])], 40, 30)
    for size in (1, 7, 64):
        chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
        chunked = co_occurrences((([s for s, _ in c], [t for _, t in c]) for c in chunks), 40, 30)
        assert all(torch.equal(a, b) for a, b in zip(whole, chunked, strict=True)), size


def test_pieces_with_unicode_spaces_round_trip_through_the_file(tmp_path: Path) -> None:
    """Lines end at \\n and pieces part at one space, as CTranslate2 reads them: an ideographic
    space, U+2028 or NEL inside a piece (kept by identity normalisation) is read back as written;
    a piece holding a TAB cannot be written and is left out."""
    targets = ["汤姆\u3000追逐\u2028杰瑞\x85", "杰瑞\u3000追逐\u2028汤姆\x85", "玛丽\u3000喜欢\t汤姆"] * 20
    sources = ["Tom chase Jerry", "Jerry chase Tom", "Mary like Tom"] * 20
    src = Tokenizer.train(sources, 20, "unigram", "nmt_nfkc")
    tgt = Tokenizer.train(targets, 30, "unigram", "identity")
    odd = [i for i in range(len(tgt)) if any(c in tgt.sp.id_to_piece(i) for c in "\u3000\u2028\x85")]
    tab = [i for i in range(len(tgt)) if "\t" in tgt.sp.id_to_piece(i)]
    assert len(odd) >= 3 and tab, [tgt.sp.id_to_piece(i) for i in range(len(tgt))]
    table = torch.full((len(src), 2), -1)
    table[4] = torch.tensor([odd[0], tab[0]])
    path = tmp_path / "vmap.txt"
    write_shortlist(Shortlist(table, torch.tensor(odd + tab)), path, src, tgt)
    again = read_shortlist(path, src, tgt)
    assert again.frequent.tolist() == odd and again.table[4].tolist() == [odd[0]]
    assert (again.table[torch.arange(len(src)) != 4] == -1).all()


def test_a_bad_shortlist_file_is_a_clear_error(tiny: Path, tmp_path: Path) -> None:
    loaded = load_model(tiny)
    src, tgt = loaded.src_tokenizer, loaded.tgt_tokenizer
    bad = tmp_path / "bad.txt"
    cases = {
        "▁Tom\t▁汤姆\nnosuchpiece\t▁汤姆\n": r"bad.txt:2: 'nosuchpiece' is not in the model's source vocabulary",
        "▁Tom\tnosuchpiece\n": r"bad.txt:1: 'nosuchpiece' is not in the model's target vocabulary",
        "▁Tom ▁汤姆\n": "bad.txt:1: no TAB",
        "▁Tom ▁chase\t▁汤姆\n": "bad.txt:1: an n-gram key",
        "": "bad.txt: lists no target pieces",  # it would let the search write only <unk> and </s>
        "\t\n▁Tom\t\n": "bad.txt: lists no target pieces",
    }
    for text, message in cases.items():
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(CorpusError, match=message):
            read_shortlist(bad, src, tgt)
    bad.write_bytes(b"\xff\xfe\t\n")
    with pytest.raises(CorpusError, match="not UTF-8"):
        read_shortlist(bad, src, tgt)
    with pytest.raises(CorpusError, match="no such shortlist file"):
        read_shortlist(tmp_path / "missing.txt", src, tgt)
    with pytest.raises(ConfigError, match="no such file"):
        Translator.from_checkpoint(tiny, device="cpu", shortlist=tmp_path / "missing.txt")


def test_the_commands_build_and_decode_with_a_shortlist(tiny: Path, tmp_path: Path) -> None:
    data = tiny.parent.parent / "data"
    vmap = tmp_path / "vmap.txt"
    proc = subprocess.run(
        [str(BIN / "seq2seq-shortlist"), f"checkpoint={tiny}", f"src={data / 'train.en'}", f"tgt={data / 'train.zh'}",
         f"output={vmap}", "per_source=4", "frequent=2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and "from 10 sentence pairs" in proc.stdout, proc.stderr[-2000:]
    by_default = run_shortlist(ShortlistConfig(checkpoint=str(tiny), per_source=4, frequent=2))  # its training data
    assert by_default.output == tiny.parent / "vmap.txt" and by_default.pairs == 10
    assert by_default.output.read_text(encoding="utf-8") == vmap.read_text(encoding="utf-8")
    for wrong, message in (
        ({"src": str(data / "train.en")}, "give both src= and tgt="),
        ({"per_source": 0}, "per_source=0 must be at least 1"),
        ({"src": str(data / "none.en"), "tgt": str(data / "train.zh")}, "none.en"),
    ):
        with pytest.raises(Seq2SeqError, match=message):
            run_shortlist(ShortlistConfig(checkpoint=str(tiny), **wrong))  # type: ignore[arg-type]
    sources = [s for s, _ in PAIRS]
    plain = Translator.from_checkpoint(tiny, device="cpu", beam=3).translate(sources)
    for quantize in ("none", "int8"):
        listed = Translator.from_checkpoint(tiny, device="cpu", beam=3, shortlist=vmap, quantize=quantize)
        assert [t.text for t in listed.translate(sources)] == [t.text for t in plain]  # the model is sure
    shortlist, src = listed.loaded.shortlist, listed.loaded.src_tokenizer
    assert shortlist is not None
    (tree,) = listed.translate(["Tom like Jerry"], beam_tree=True, prefixes=["玛丽"])  # a prefix it would not list
    candidates = set(shortlist.candidates(collate([src.encode("Tom like Jerry")]).src).tolist())
    written = {c.token for step in tree.beam for c in step}  # every candidate of every step: token ids
    prefix = set(listed.loaded.tgt_tokenizer.encode("玛丽"))
    assert written <= candidates | prefix and tree.text.startswith("玛丽")
    proc = subprocess.run(
        [str(BIN / "seq2seq-eval"), f"checkpoint={tiny}", f"data.root={data}", "device=cpu", f"shortlist={vmap}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (report,) = tiny.parent.glob("eval-*-shortlist-vmap.json")  # two files' reports would not overwrite each other
    assert json.loads(report.read_text(encoding="utf-8"))["shortlist"] == str(vmap)
    proc = subprocess.run(
        [str(BIN / "seq2seq-translate"), f"checkpoint={tiny}", "device=cpu", f"shortlist={vmap}"],
        input="Tom chase Jerry\n", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == plain[0].text, proc.stderr[-2000:]
    proc = subprocess.run(
        [str(BIN / "seq2seq-gather"), f"runs={tiny.parent}", f"shortlist={vmap}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1 and "seq2seq-gather decodes several runs" in proc.stderr
    other = shutil.copy(tiny, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="serves several side by side"):  # each model has its own vocabulary
        run_serve(ServeConfig(checkpoints=[str(tiny), str(other)], shortlist=str(vmap)))
