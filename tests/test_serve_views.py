"""The page's views through seq2seq-serve's API: every layer and head of a Transformer, the beam
as a tree, the alternatives at each output word (and the prefix each makes), a run's attention
examples over its validations, and a sentence's attention against its gold alignments."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="seq2seq-serve's extra (pip install 'seq2seq-attention[serve]')")
from fastapi.testclient import TestClient  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from serving import PAIRS, served, train_tiny  # noqa: E402

from seq2seq.checkpoint import Loaded  # noqa: E402
from seq2seq.config import ModelConfig, SearchConfig, ServeConfig, check_serve  # noqa: E402
from seq2seq.errors import ConfigError  # noqa: E402
from seq2seq.models.seq2seq import build_model  # noqa: E402
from seq2seq.serve import create_app, gold_split, run_folders  # noqa: E402
from seq2seq.tokenizer import Tokenizer  # noqa: E402
from seq2seq.translator import Translator  # noqa: E402
from seq2seq.views import GoldSplit  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("views"), examples=True)


def transformer() -> Translator:
    """An untrained Transformer (2 encoder layers, 3 decoder layers, 2 heads) over word vocabularies."""
    src = Tokenizer.train([s for s, _ in PAIRS], 100, "word", "identity")
    tgt = Tokenizer.train([t for _, t in PAIRS], 100, "word", "identity")
    cfg = ModelConfig(
        decoder="transformer", encoder="self_attention", hidden_size=16, encoder_layers=2, decoder_layers=3
    )
    cfg.self_attention.heads = 2
    cfg.dropout = 0.0
    torch.manual_seed(0)
    model = build_model(cfg, len(src), len(tgt)).eval()
    config = {"model": OmegaConf.to_container(OmegaConf.structured(cfg)), "data": {"src_lang": "en", "tgt_lang": "zh"}}
    return Translator(Loaded(model, src, tgt, config), SearchConfig(min_len=3, beam=1))


@pytest.fixture(scope="module")
def client(checkpoint: Path) -> Iterator[TestClient]:
    translators = {"tiny": Translator.from_checkpoint(checkpoint, device="cpu", beam=3), "tf": transformer()}
    cfg = check_serve(ServeConfig(checkpoint=str(checkpoint), max_queue=8))
    runs = run_folders(cfg, [[str(checkpoint)]])
    gold = gold_split(cfg, translators["tiny"])
    app = create_app(translators, cfg, follow_load=False, runs=runs, gold=gold)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c


def post(client: TestClient, path: str, **body: object) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_layer_and_head_of_a_transformer(client: TestClient) -> None:
    assert [m["layers"] for m in client.get("/models").json()["models"]] == [False, True]
    (t,) = post(client, "/translate", text=["Tom chase Jerry"], model="tf", layers=True)["translations"]
    layers, n_out, n_src = t["layers"], len(t["tokens"]), len(t["source_tokens"])
    assert n_out >= 3 and n_src == 4  # three words and </s>
    shapes = {kind: [torch.tensor(layer).shape for layer in maps] for kind, maps in layers.items()}
    assert shapes == {
        "encoder": [(2, n_src, n_src)] * 2,  # layers, then heads: source x source
        "decoder": [(2, n_out, n_out)] * 3,  # output x (<s> and the output before it)
        "cross": [(2, n_out, n_src)] * 3,
    }
    for maps in layers.values():
        for layer in maps:
            rows = torch.tensor(layer).sum(dim=-1)
            torch.testing.assert_close(rows, torch.ones_like(rows), atol=2e-3, rtol=0)
    decoder_self = torch.tensor(layers["decoder"][0])  # masked: no row looks ahead
    assert torch.equal(decoder_self.triu(diagonal=1), torch.zeros_like(decoder_self))
    (tf,) = [m for m in client.get("/models").json()["models"] if m["name"] == "tf"]
    assert tf["alignment_layer"] == 1  # 0-based: the last but one, model.alignment_layer's default
    shown = torch.tensor(layers["cross"][1]).mean(dim=0)  # "where it looked": that layer, heads averaged
    torch.testing.assert_close(shown, torch.tensor(t["attention"]), atol=2e-3, rtol=0)
    (rnn,) = post(client, "/translate", text=["Tom chase Jerry"], model="tiny", layers=True)["translations"]
    assert (len(rnn["layers"]["encoder"]), len(rnn["layers"]["cross"])) == (0, 1)  # an RNN: one cross map, one head


def test_the_beam_comes_back_as_a_tree_only_when_asked(client: TestClient) -> None:
    (plain,) = post(client, "/translate", text=["Tom chase Jerry"], beam=3)["translations"]
    assert "beam" not in plain and "alternatives" not in plain and "layers" not in plain
    (t,) = post(client, "/translate", text=["Tom chase Jerry"], beam=3, return_beam=True)["translations"]
    steps = t["beam"]
    assert steps[0][0]["parent"] is None and {c["state"] for s in steps for c in s} <= {"kept", "finished", "pruned"}
    # the best translation is a path of kept candidates ending in a finished one
    slots: dict[int, list[str]] = {}
    finished = []
    for step in steps:
        now = {}
        for c in step:
            before = [] if c["parent"] is None else slots[c["parent"]]
            if c["state"] == "kept":
                now[c["slot"]] = before + [c["token"]]
            elif c["state"] == "finished":
                assert c["token"] == "</s>"
                finished.append((before, c["score"]))
        slots = now
    assert (t["tokens"], t["score"]) in [(words, score) for words, score in finished]
    (greedy,) = post(client, "/translate", text=["Tom chase Jerry"], beam=1, return_beam=True)["translations"]
    assert [s[0]["token"] for s in greedy["beam"]] == greedy["tokens"] + ["</s>"]


def test_alternatives_and_the_prefix_each_makes(client: TestClient) -> None:
    (t,) = post(client, "/translate", text=["Tom chase Jerry"], beam=1, alternatives=3)["translations"]
    assert t["text"] == "汤姆 追逐 杰瑞"
    assert [len(a) for a in t["alternatives"]] == [3, 3, 3]
    assert [a[0]["token"] for a in t["alternatives"]] == t["tokens"]  # greedy wrote the most probable word
    for position in t["alternatives"]:
        assert [a["score"] for a in position] == sorted((a["score"] for a in position), reverse=True)
    other = next(a for a in t["alternatives"][1][1:] if a["token"] != "</s>")  # what if the second word were another?
    eos = [a for position in t["alternatives"] for a in position if a["token"] == "</s>"]
    assert all(a["prefix"] is None for a in eos)  # no prefix can force the end
    assert other["prefix"] == f"汤姆 {other['token']}"
    (steered,) = post(client, "/translate", text=["Tom chase Jerry"], beam=1, prefix=[other["prefix"]])["translations"]
    assert steered["tokens"][:2] == ["汤姆", other["token"]]
    for bad, message in [(11, "alternatives=11: give 0 (none) to 10"), (-1, "alternatives=-1")]:
        response = client.post("/translate", json={"text": ["Tom chase Jerry"], "alternatives": bad})
        assert response.status_code == 422 and message in response.json()["error"]


def test_the_training_view_follows_the_run_validation_by_validation(client: TestClient) -> None:
    (run,) = client.get("/training").json()["runs"]
    assert run["name"] == "run"
    steps = run["steps"]
    assert [s["step"] for s in steps] == list(range(5, 151, 5))  # 30 validations, 5 updates apart
    assert all(s["epoch"] == i + 1 for i, s in enumerate(steps))
    assert steps[-1]["valid_bleu"] == 100.0 and steps[-1]["alignment_accuracy"] == 1.0
    for s in steps:
        assert [e["sentence"] for e in s["examples"]] == [0, 1]
        for e in s["examples"]:
            assert e["step"] == s["step"] and len(e["attention"]) == len(e["tokens"])
    assert steps[-1]["examples"][0]["text"] == PAIRS[0][1]


def test_a_gold_sentence_against_its_alignments(client: TestClient) -> None:
    listing = client.get("/gold").json()
    assert listing["size"] == len(PAIRS) and listing["sentences"][0] == {"index": 0, "source": PAIRS[0][0]}
    assert not Path(listing["name"]).is_absolute()
    view = post(client, "/gold", index=0)
    assert (view["source"], view["reference"]) == PAIRS[0]
    assert view["tokens"] == PAIRS[0][1].split() and view["source_tokens"] == PAIRS[0][0].split() + ["</s>"]
    assert view["gold"] == [[0, 0], [1, 1], [2, 2]]  # (target piece, source piece) cells
    looked = torch.tensor(view["attention"])[:, :3].argmax(dim=1).tolist()  # the most-attended source word
    assert view["accuracy"] == pytest.approx(sum(i == j for i, j in enumerate(looked)) / 3)
    assert view["accuracy"] == 1.0  # the tiny model looks where gold says
    assert len(post(client, "/gold", index=2, model="tf", layers=True)["layers"]["cross"]) == 3
    for body, status, message in [
        ({"index": 10}, 422, "index=10: the split has sentences 0 to 9"),
        ({"index": 0, "model": "nope"}, 422, "model 'nope' is not served"),
        ({"index": "0"}, 422, "index"),
    ]:
        response = client.post("/gold", json=body)
        assert response.status_code == status and message in response.json()["error"], response.text


def test_what_is_served_for_the_views(checkpoint: Path, tmp_path: Path) -> None:
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    none = check_serve(ServeConfig(checkpoint=str(checkpoint), gold="none"))
    assert gold_split(none, translator) is None
    data = checkpoint.parent.parent / "data"
    given = gold_split(check_serve(ServeConfig(checkpoint=str(checkpoint), gold=str(data / "valid"))), translator)
    assert isinstance(given, GoldSplit) and len(given.src) == len(PAIRS)
    with pytest.raises(ConfigError, match="no train.align"):
        (tmp_path / "train.en").write_text("a\n", encoding="utf-8")
        gold_split(check_serve(ServeConfig(checkpoint=str(checkpoint), gold=str(tmp_path / "train"))), translator)
    (tmp_path / "train.zh").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "train.align").write_text("0-0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="gold=.*train.*lines"):
        gold_split(check_serve(ServeConfig(checkpoint=str(checkpoint), gold=str(tmp_path / "train"))), translator)
    with pytest.raises(ConfigError, match="run=.*not a run folder"):
        check_serve(ServeConfig(checkpoint=str(checkpoint), run=str(tmp_path / "missing")))
    app = create_app({"tiny": translator}, none, follow_load=False)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/training").json() == {"runs": []}
        response = c.get("/gold")
        assert response.status_code == 404 and "gold=ROOT/SPLIT" in response.json()["error"]


def test_serve_run_folder_serves_its_best_weights_and_its_training(checkpoint: Path) -> None:
    with served(f"run={checkpoint.parent}", "device=cpu") as url:
        with urllib.request.urlopen(url + "models", timeout=30) as r:
            assert [m["name"] for m in json.load(r)["models"]] == ["run"]
        with urllib.request.urlopen(url + "training", timeout=30) as r:
            assert len(json.load(r)["runs"][0]["steps"]) == 30
        with urllib.request.urlopen(url + "gold", timeout=30) as r:  # auto: the model's own test split
            assert json.load(r)["size"] == len(PAIRS)


def test_the_gold_listing_stays_small() -> None:
    split = GoldSplit("long", ["word " * 600] * 700, ["词"] * 700, [[(0, 0)]] * 700)
    listing = split.listing()
    assert listing["size"] == 700 and len(listing["sentences"]) == 500  # the first 500
    assert all(len(s["source"]) == 120 and s["source"].endswith("…") for s in listing["sentences"])


def test_every_map_of_too_many_sentences_is_refused_before_it_is_made(checkpoint: Path) -> None:
    cfg = check_serve(ServeConfig(checkpoint=str(checkpoint), max_response_bytes=20_000))
    app = create_app({"tf": transformer()}, cfg, follow_load=False)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        one = c.post("/translate", json={"text": ["Tom chase Jerry"], "layers": True})
        assert one.status_code == 200 and len(one.json()["translations"][0]["layers"]["cross"]) == 3
        many = c.post("/translate", json={"text": [s for s, _ in PAIRS], "layers": True})
        assert many.status_code == 422
        assert "ask for layers with fewer or shorter sentences" in many.json()["error"]
        assert c.post("/translate", json={"text": [s for s, _ in PAIRS]}).status_code == 200  # without: fine


def test_the_training_view_picks_validations_by_name_and_skips_a_broken_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seq2seq import views

    folder = tmp_path / "attention"
    folder.mkdir()
    for step in range(1, 11):
        (folder / f"step{step:08d}-0.json").write_text(json.dumps({"sentence": 0, "step": step}), encoding="utf-8")
    (folder / "step00000010-1.json").write_text("{half", encoding="utf-8")  # a run writing it just now
    monkeypatch.setattr(views, "MAX_STEPS", 4)
    steps = views.training_view(tmp_path)["steps"]
    assert [s["step"] for s in steps] == [1, 4, 7, 10]  # evenly spread, first and last kept
    assert [len(s["examples"]) for s in steps] == [1, 1, 1, 1]
