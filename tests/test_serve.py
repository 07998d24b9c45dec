"""seq2seq-serve's JSON API (FastAPI's test client and a real server process): the same
translations as seq2seq-translate, attention rows summing to 1, a 4xx with a JSON error for
every bad request, and concurrent clients each getting their own complete answer."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="seq2seq-serve's extra (pip install 'seq2seq-attention[serve]')")
from fastapi.testclient import TestClient  # noqa: E402
from serving import BIN, PAIRS, free_port, served, train_tiny  # noqa: E402

from seq2seq.config import ServeConfig, check_serve  # noqa: E402
from seq2seq.serve import create_app, model_names  # noqa: E402
from seq2seq.translator import Translator  # noqa: E402

SOURCES = [s for s, _ in PAIRS]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("serve"))


LIMITS = {"max_sentences": 12, "max_chars": 60, "max_beam": 8, "max_body_bytes": 4000, "max_search_tokens": 300}


def make_app(checkpoint: Path, token: str = "", **settings: object) -> object:
    translators = {name: Translator.from_checkpoint(checkpoint, device="cpu", beam=1) for name in ("tiny", "again")}
    cfg = check_serve(ServeConfig(checkpoint=str(checkpoint), **{**LIMITS, "max_queue": 32, **settings}))
    return create_app(translators, cfg, follow_load=False, token=token)


@pytest.fixture(scope="module")
def client(checkpoint: Path) -> Iterator[TestClient]:
    with TestClient(make_app(checkpoint), base_url="http://127.0.0.1:8000") as c:  # one event loop, as uvicorn's
        yield c


def test_the_tiny_model_has_learned_its_sentences(client: TestClient) -> None:
    answer = client.post("/translate", json={"text": ["Tom chase Jerry"]}).json()
    assert answer["translations"][0]["text"] == "汤姆 追逐 杰瑞"


def test_translations_equal_the_translate_command(client: TestClient, checkpoint: Path) -> None:
    command = subprocess.run(
        [str(BIN / "seq2seq-translate"), f"checkpoint={checkpoint}", "beam=3", "nbest=2", "format=json", "device=cpu"],
        input="".join(s + "\n" for s in SOURCES),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert command.returncode == 0, command.stderr[-2000:]
    expected = [json.loads(line) for line in command.stdout.splitlines()]
    answer = client.post("/translate", json={"text": SOURCES, "beam": 3, "nbest": 2}).json()
    assert answer["model"] == "tiny" and "beam 3" in answer["search"]
    got = answer["translations"]
    assert [t["source"] for t in got] == SOURCES  # one per input, in order
    for t, e in zip(got, expected, strict=True):
        assert t.keys() == e.keys()  # one shape: Translation.to_dict
        assert (t["text"], t["tokens"], t["source_tokens"]) == (e["text"], e["tokens"], e["source_tokens"])
        assert [h["text"] for h in t["nbest"]] == [h["text"] for h in e["nbest"]]
        assert t["score"] == pytest.approx(e["score"], abs=1e-3)
        for row, expected_row in zip(t["attention"], e["attention"], strict=True):
            assert row == pytest.approx(expected_row, abs=1e-3)


def test_attention_rows_sum_to_one_and_can_be_left_out(client: TestClient) -> None:
    t = client.post("/translate", json={"text": ["Tom chase Jerry"], "beam": 5}).json()["translations"][0]
    assert t["tokens"] == ["汤姆", "追逐", "杰瑞"] and t["source_tokens"] == ["Tom", "chase", "Jerry", "</s>"]
    assert len(t["attention"]) == 3 and all(len(row) == 4 for row in t["attention"])
    assert all(abs(sum(row) - 1) < 1e-3 for row in t["attention"])
    bare = client.post("/translate", json={"text": ["Tom chase Jerry"], "attention": False}).json()["translations"][0]
    assert "attention" not in bare and bare["text"] == "汤姆 追逐 杰瑞"


def test_models_and_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "models": ["tiny", "again"]}
    models = client.get("/models").json()
    assert [m["name"] for m in models["models"]] == ["tiny", "again"]
    assert models["models"][0]["attention"] is True and models["models"][0]["parameters"] > 0
    assert models["limits"]["max_beam"] == 8
    other = client.post("/translate", json={"text": ["Jerry see Tom"], "model": "again"}).json()
    assert other["model"] == "again" and other["translations"][0]["text"] == "杰瑞 看见 汤姆"
    assert client.get("/openapi.json").json()["paths"]["/translate"]["post"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ('{"text": ["Tom chase', 400, "not valid JSON"),
        ('"Tom chase Jerry"', 422, "body"),
        ('{"text": "Tom chase Jerry"}', 422, "text: Input should be a valid list"),
        ('{"text": [1, 2]}', 422, "text.0: Input should be a valid string"),
        ('{"text": ["Tom"], "beam": "5"}', 422, "beam: Input should be a valid integer"),
        ('{"text": ["Tom"], "colour": "red"}', 422, "colour: Extra inputs are not permitted"),
        ('{"beam": 5}', 422, "text: Field required"),
        ('{"text": []}', 422, "text is empty"),
        ('{"text": ["Tom"], "beam": 0}', 422, "beam=0: give 1 (greedy) to 8"),
        ('{"text": ["Tom"], "beam": 99}', 422, "beam=99: give 1 (greedy) to 8"),
        ('{"text": ["Tom"], "beam": 2, "nbest": 3}', 422, "nbest=3: give 1 to the beam size (2)"),
        ('{"text": ["Tom"], "model": "nope"}', 422, "model 'nope' is not served: choose one of tiny, again"),
        (json.dumps({"text": ["Tom"] * 13}), 422, "text has 13 sentences: at most 12"),
        (json.dumps({"text": ["Tom", "x" * 61]}), 422, "text[1] has 61 characters: at most 60"),
        (json.dumps({"text": ["Tom " * 1200]}), 413, "over 4000 bytes"),
        ('{"text": ["Tom", "Jerry"], "prefix": ["汤姆"]}', 422, "prefix has 1 items for 2 sentences: one each"),
        (json.dumps({"text": ["Tom"], "prefix": ["y" * 61]}), 422, "prefix[0] has 61 characters: at most 60"),
        (json.dumps({"text": ["Tom"], "prefix": ["Spike"]}), 422, "'▁Spike' is not in the target vocabulary"),
        (
            '{"text": ["Tom \\ud800 Jerry"]}',
            422,
            "text[0] is not valid Unicode: a lone surrogate U+D800 at character 4",
        ),
        ('{"text": ["Tom"], "prefix": ["\\udfff"]}', 422, "prefix[0] is not valid Unicode: a lone surrogate U+DFFF"),
        (
            json.dumps({"text": ["Tom chase Jerry " * 3] * 12, "beam": 8}),
            422,
            "times the beam: at most max_search_tokens=300",
        ),
    ],
)
def test_every_bad_request_is_a_4xx_with_a_json_error(client: TestClient, body: str, status: int, message: str) -> None:
    r = client.post("/translate", content=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error and "Traceback" not in r.text


def test_a_prefix_fixes_the_start_and_the_search_goes_on_from_it(client: TestClient) -> None:
    free = client.post("/translate", json={"text": ["Tom chase Jerry", "Jerry see Tom"]}).json()["translations"]
    body = {"text": ["Tom chase Jerry", "Jerry see Tom"], "prefix": ["杰瑞", ""], "beam": 3}
    steered = client.post("/translate", json=body).json()["translations"]
    assert steered[0]["text"].startswith("杰瑞") and steered[0]["tokens"][0] == "杰瑞"
    assert steered[0]["text"] != free[0]["text"]  # the user fixed a word: the rest is the model's again
    assert steered[1]["text"] == free[1]["text"]  # "" leaves a sentence free
    assert len(steered[0]["attention"]) == len(steered[0]["tokens"])  # where the forced word looked, too


def test_blank_sentences_get_empty_translations_in_place(client: TestClient) -> None:
    got = client.post("/translate", json={"text": ["", "Tom chase Jerry", "   "]}).json()["translations"]
    assert [t["text"] for t in got] == ["", "汤姆 追逐 杰瑞", ""]


def test_twenty_concurrent_requests_each_get_their_own_answer(client: TestClient) -> None:
    jobs = [([SOURCES[i % len(SOURCES)], SOURCES[(i * 3 + 1) % len(SOURCES)]], 1 + i % 4) for i in range(20)]
    expected = [client.post("/translate", json={"text": t, "beam": b}).json() for t, b in jobs]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda job: client.post("/translate", json={"text": job[0], "beam": job[1]}), jobs))
    assert all(a.status_code == 200 for a in answers)
    assert [a.json() for a in answers] == expected


def test_the_page_is_one_offline_file_that_shows_text_as_text(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert "innerHTML" not in html and "textContent" in html


def test_names_are_run_folders_unless_two_share_one() -> None:
    assert model_names([["runs/demo/attention/best.pt"], ["runs/demo/fixed_context/best.pt"]]) == [
        "attention",
        "fixed_context",
    ]
    assert model_names([["a/run/best.pt"], ["b/run/best.pt"]]) == ["a/run/best.pt", "b/run/best.pt"]
    ensembles = [["a/run/best.pt", "a/run/step00000010.pt"], ["a/run/best.pt", "b/other/best.pt"]]
    assert model_names(ensembles) == ["run (ensemble of 2)", "run+other (ensemble of 2)"]


def test_the_command_serves_over_http_and_says_what_is_wrong(checkpoint: Path, tmp_path: Path) -> None:
    with served(f"checkpoint={checkpoint}", "device=cpu", "beam=2") as url:
        request = urllib.request.Request(
            url + "translate",
            data=json.dumps({"text": ["Tom chase Jerry"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = json.load(r)
        assert answer["translations"][0]["text"] == "汤姆 追逐 杰瑞" and "beam 2" in answer["search"]
        with pytest.raises(urllib.error.HTTPError) as bad:
            broken = urllib.request.Request(url + "translate", data=b"{", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(broken, timeout=60)
        assert bad.value.code == 400 and "error" in json.loads(bad.value.read())
        port = int(url.rsplit(":", 1)[1].strip("/"))
        busy = run_serve_command(f"checkpoint={checkpoint}", f"port={port}")
        assert busy.returncode == 1 and f"cannot serve on 127.0.0.1:{port}" in busy.stderr
    missing = run_serve_command()
    assert missing.returncode == 1
    assert "give checkpoint=FILE or 'checkpoints=[A,B]'" in missing.stderr and "Traceback" not in missing.stderr
    gone = run_serve_command(f"checkpoint={tmp_path / 'none.pt'}", f"port={free_port()}")
    assert gone.returncode == 1 and "none.pt" in gone.stderr and "Traceback" not in gone.stderr


def test_without_the_extra_the_command_names_it(checkpoint: Path) -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.argv[1:] = sys.argv[2:]\nfrom seq2seq.cli import serve; serve()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--", f"checkpoint={checkpoint}"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "pip install 'seq2seq-attention[serve]'" in proc.stderr and "Traceback" not in proc.stderr


def run_serve_command(*overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "seq2seq-serve"), *overrides], capture_output=True, text=True, timeout=120)
