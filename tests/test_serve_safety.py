"""seq2seq-serve on a shared machine: the Host check against DNS rebinding (IPv4, localhost, [::1],
allowed_hosts), cross-origin POSTs refused, the token, a bounded queue (503 with Retry-After, a
place given up by a client that leaves), a time limit per decoding, slow clients disconnected,
404/405 in the API's error shape and no absolute paths in what the API says."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="seq2seq-serve's extra (pip install 'seq2seq-attention[serve]')")
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serving import free_port, train_tiny  # noqa: E402
from test_serve import make_app  # noqa: E402

from seq2seq.config import ServeConfig, check_serve  # noqa: E402
from seq2seq.errors import ConfigError, DecodingTimeout  # noqa: E402
from seq2seq.search import search  # noqa: E402
from seq2seq.serve import guarded_protocol, model_names  # noqa: E402
from seq2seq.translator import Translator  # noqa: E402

TOKEN = "a-long-enough-token"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("safety"))


def post(client: TestClient, **headers: str) -> httpx.Response:
    return client.post("/translate", json={"text": ["Tom chase Jerry"]}, headers=headers)


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "127.0.0.1", "LOCALHOST:80"])
def test_the_servers_own_names_are_answered(checkpoint: Path, host: str) -> None:
    with TestClient(make_app(checkpoint), base_url=f"http://{host}") as client:
        assert client.get("/health").status_code == 200
        assert post(client).status_code == 200


@pytest.mark.parametrize("host", ["attacker.example:8000", "attacker.example", "127.0.0.1.attacker.example:8000"])
def test_a_rebound_name_is_refused(checkpoint: Path, host: str) -> None:
    with TestClient(make_app(checkpoint), base_url=f"http://{host}") as client:
        for answer in (client.get("/"), client.get("/models"), post(client)):
            assert answer.status_code == 400
            assert "DNS rebinding" in answer.json()["error"]


def test_allowed_hosts_and_every_network(checkpoint: Path) -> None:
    app = make_app(checkpoint, allowed_hosts=["MyBox.lan"])
    with TestClient(app, base_url="http://mybox.lan:8000") as client:
        assert post(client).status_code == 200
    with TestClient(app, base_url="http://other.lan:8000") as client:
        assert post(client).status_code == 400
    with TestClient(make_app(checkpoint, host="0.0.0.0"), base_url="http://192.168.1.20:8000") as client:
        assert post(client, Authorization=f"Bearer {TOKEN}").status_code == 200  # an address, never rebound
    with TestClient(make_app(checkpoint, host="0.0.0.0"), base_url="http://nas.example:8000") as client:
        assert post(client).status_code == 400
    with TestClient(make_app(checkpoint, allowed_hosts=["*"]), base_url="http://any.example") as client:
        assert post(client).status_code == 200


def test_a_post_from_another_site_is_refused(checkpoint: Path) -> None:
    with TestClient(make_app(checkpoint), base_url="http://127.0.0.1:8000") as client:
        refused = post(client, Origin="http://attacker.example")
        assert refused.status_code == 403 and "another site" in refused.json()["error"]
        assert post(client, Origin="null").status_code == 403
        assert post(client, Origin="http://127.0.0.1:8000").status_code == 200  # the page's own
        assert post(client).status_code == 200  # curl and scripts send none
        assert client.get("/models", headers={"Origin": "http://attacker.example"}).status_code == 200  # unreadable


def test_the_token_is_needed_and_the_page_carries_it(checkpoint: Path) -> None:
    with TestClient(make_app(checkpoint, token=TOKEN), base_url="http://127.0.0.1:8000") as client:
        for answer in (client.get("/"), client.get("/models"), post(client), post(client, Authorization="Bearer x")):
            assert answer.status_code == 401 and "token" in answer.json()["error"]
        page = client.get(f"/?token={TOKEN}")
        assert page.status_code == 200 and f'<meta name="seq2seq-token" content="{TOKEN}">' in page.text
        assert post(client, Authorization=f"Bearer {TOKEN}").json()["translations"][0]["text"] == "汤姆 追逐 杰瑞"
        assert client.get(f"/models?token={TOKEN}").status_code == 200
    with TestClient(make_app(checkpoint), base_url="http://127.0.0.1:8000") as client:
        assert '<meta name="seq2seq-token" content="">' in client.get("/").text  # none on loopback


def test_a_bad_token_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 8 printable ASCII"):
        check_serve(ServeConfig(checkpoint="x.pt", token="short"))
    with pytest.raises(ConfigError, match="max_queue=-1 must be >= 0"):
        check_serve(ServeConfig(checkpoint="x.pt", max_queue=-1))


def test_unknown_addresses_and_methods_answer_in_the_apis_shape(checkpoint: Path) -> None:
    with TestClient(make_app(checkpoint), base_url="http://127.0.0.1:8000") as client:
        missing = client.get("/nope")
        assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
        wrong = client.get("/translate")
        assert wrong.status_code == 405 and wrong.json() == {"error": "Method Not Allowed"}
        assert wrong.headers["allow"] == "POST"


def test_an_answer_over_its_size_is_refused_with_what_to_do(checkpoint: Path) -> None:
    app = make_app(checkpoint, max_response_bytes=900)  # the answer below: 1,115 bytes with attention, 761 without
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        body = {"text": ["Tom chase Jerry", "Jerry see Tom", "Mary like Tom"]}
        too_big = client.post("/translate", json=body)
        assert too_big.status_code == 422 and '"attention": false' in too_big.json()["error"]
        assert client.post("/translate", json={**body, "attention": False}).status_code == 200


def test_no_absolute_path_is_shown(tmp_path: Path) -> None:
    outside = [[str(tmp_path / "a" / "run" / "best.pt")], [str(tmp_path / "b" / "run" / "best.pt")]]
    names = model_names(outside)
    assert names == [str(Path("...", "a", "run", "best.pt")), str(Path("...", "b", "run", "best.pt"))]
    assert not any(str(tmp_path) in n for n in names)


def test_a_search_past_its_deadline_stops(checkpoint: Path) -> None:
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    model = translator.loaded.model
    batch = translator.loaded.src_tokenizer.encode_batch(["Tom chase Jerry"])
    src = __import__("torch").tensor([batch[0] + [3]])
    for beam in (1, 3):
        cfg = translator.decoding.with_search(beam=beam).search
        with pytest.raises(DecodingTimeout):
            search(model, src, src != 0, cfg=cfg, deadline=time.monotonic() - 1)
        assert search(model, src, src != 0, cfg=cfg, deadline=time.monotonic() + 60)  # in time: as without


@contextmanager
def slow_decoding(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[None]:
    """Every translation takes ``seconds`` more (before its search, which still keeps the deadline)."""
    real = Translator.translate

    def slow(self: Translator, *args: object, **kwargs: object) -> object:
        time.sleep(seconds)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate", slow)
    yield


@contextmanager
def live(app: object, client_timeout: int = 10) -> Iterator[int]:
    """``app`` served by uvicorn (with seq2seq-serve's guarded protocol) in a thread; yields its port."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=guarded_protocol(client_timeout)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_decoding_past_max_seconds_is_a_503(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        slow_decoding(monkeypatch, 1.2),
        TestClient(make_app(checkpoint, max_seconds=1), base_url="http://localhost") as c,
    ):
        late = post(c)
    assert late.status_code == 503 and "max_seconds=1" in late.json()["error"]
    assert late.headers["retry-after"] == "5"


def test_beyond_the_queue_clients_get_503_with_retry_after(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with slow_decoding(monkeypatch, 0.6), live(make_app(checkpoint, max_queue=2)) as port:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(
                    lambda _: httpx.post(f"http://127.0.0.1:{port}/translate", json={"text": ["Tom"]}, timeout=60),
                    range(8),
                )
            )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 200, 503, 503, 503, 503, 503]  # one decoding and two waiting
    busy = [a for a in answers if a.status_code == 503]
    assert all(a.headers["retry-after"] == "5" and "busy" in a.json()["error"] for a in busy)


def test_a_client_that_leaves_gives_its_place_up(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps({"text": ["Tom chase Jerry"]}).encode()
    head = (
        "POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with slow_decoding(monkeypatch, 1.5), live(make_app(checkpoint, max_queue=1)) as port:
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(
                httpx.post, f"http://127.0.0.1:{port}/translate", json={"text": ["Tom chase Jerry"]}, timeout=60
            )
            time.sleep(0.4)  # the first one decodes
            leaving = socket.create_connection(("127.0.0.1", port))
            leaving.sendall(head.encode() + body)  # waits for the first: the queue is full
            time.sleep(0.4)
            leaving.close()
            time.sleep(0.5)  # the server notices and frees the place
            third = pool.submit(
                httpx.post, f"http://127.0.0.1:{port}/translate", json={"text": ["Tom chase Jerry"]}, timeout=60
            )
            assert first.result().status_code == 200
            assert third.result().status_code == 200  # not 503: the leaver's place was free again


def test_slow_clients_are_disconnected(checkpoint: Path) -> None:
    with live(make_app(checkpoint, client_timeout=1), client_timeout=1) as port:
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET /health HTTP/1.1\r\nHo")  # never finishes its head
        idle.settimeout(5)
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the server
        assert time.monotonic() - started < 4
        slow_body = socket.create_connection(("127.0.0.1", port))
        slow_body.sendall(b'POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n\r\n{"text"')
        slow_body.settimeout(5)
        answer = read_all(slow_body)
        assert answer.startswith("HTTP/1.1 408") and "did not arrive within 1 s" in answer
        fine = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)  # others are still served
        assert fine.status_code == 200


def read_all(connection: socket.socket) -> str:
    """What the server sends until it closes the connection (the head and body may come apart)."""
    chunks = []
    while chunk := connection.recv(4000):
        chunks.append(chunk)
    return b"".join(chunks).decode()
