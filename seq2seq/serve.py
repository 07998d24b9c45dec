"""``seq2seq-serve``: a local web page and a JSON API over one or more checkpoints.

The page (``seq2seq/static/index.html``: one file of HTML, CSS and plain JavaScript, nothing
fetched from elsewhere) translates what is typed and draws, for every model side by side, the
cross-attention heatmap: target words as rows, source words as columns; pointing at a target
word lights up the source words it looked at. The API is what the page uses:

- ``POST /translate`` with ``{"text": [...], "beam": 5, "nbest": 1, "attention": true, "model": NAME,
  "prefix": [...]}`` (``prefix``: the start of each translation, which the search continues)
  -> ``{"model": NAME, "search": ..., "translations": [...]}``, one translation per input, in
  order, each :meth:`seq2seq.translator.Translation.to_dict` (``source``, ``text``, ``score``,
  ``tokens`` and ``source_tokens`` as words, ``nbest``, ``attention``): the shape of
  ``seq2seq-translate format=json``;
- ``GET /models``, ``GET /health``; the OpenAPI page at ``/docs``.

Every bad request is a 4xx with ``{"error": "..."}``: a body without a Content-Length (411) or
over ``max_body_bytes`` (413), invalid JSON (400), a wrong type, an unknown key or model, an
empty list, too many sentences, a sentence over ``max_chars`` characters or that is not valid
Unicode (a lone surrogate), a beam or n-best out of range, more than ``max_search_tokens``
source pieces times the beam, an answer over ``max_response_bytes`` (422), an unknown address
(404) or method (405); a sentence over 400 pieces is cut there, as ``seq2seq-translate`` does.
Models are loaded once (``weights_only=True``, as everywhere) and requests are decoded one at a
time, so concurrent clients each get their own complete answer; before each, torch's threads
are set to the cores other processes leave free (:mod:`seq2seq.threads`).

Safe on a shared machine (:class:`Guard`, in front of the app, and :func:`guarded_protocol`):

- **DNS rebinding**: a page on 127.0.0.1 can be reached from any web site the user visits once
  that site's name resolves to 127.0.0.1. Only a ``Host`` that is the bound address, a loopback
  address, ``localhost`` or a name of ``allowed_hosts`` is answered (400 otherwise; when bound to
  every network, any IP address); a POST whose ``Origin`` is not the page's own is refused (403).
- **A token** (``token=``, or one generated and printed at start on any host but loopback): every
  request carries it (``Authorization: Bearer ...``, or ``?token=`` in the page's address, which
  the page then sends with each of its own requests); 401 otherwise.
- **Bounded waiting**: one request decodes and at most ``max_queue`` wait; more get 503 with a
  ``Retry-After``, and a client that leaves while waiting gives its place up. A decoding stops
  after ``max_seconds`` (503).
- **Slow clients**: a request's head must arrive within ``client_timeout`` seconds of connecting
  (or of the previous answer), else the connection is closed; its body then within as long (408).

FastAPI and uvicorn are the optional extra ``seq2seq-attention[serve]``.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import ipaddress
import json
import logging
import secrets
import socket
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
except ImportError as e:  # the optional extra
    raise ImportError("seq2seq-serve needs FastAPI and uvicorn: pip install 'seq2seq-attention[serve]'") from e

from seq2seq.config import ServeConfig, check_serve, checkpoint_files
from seq2seq.decoding import decoding_for
from seq2seq.errors import ConfigError, CorpusError, DecodingTimeout
from seq2seq.models.transformer import alignment_layer
from seq2seq.runfolder import BEST
from seq2seq.search import check_deadline, describe
from seq2seq.threads import ThreadGovernor
from seq2seq.translator import Translator
from seq2seq.views import GoldSplit, auto_gold, has_examples, training_view

log = logging.getLogger(__name__)


LIMITS = ServeConfig.LIMITS  # what one request may ask for
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # hosts that serve this machine only: no token needed
RETRY_AFTER = 5  # seconds a refused client is told to wait (503: the queue is full, or a decoding was too long)
TOKEN_META = '<meta name="seq2seq-token" content="">'  # where the page carries the token
MAX_ALTERNATIVES = 10  # tokens offered per output position (the page's "what if")


class TranslateRequest(BaseModel):
    """The body of ``POST /translate``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: list[str] = Field(description="sentences to translate, one per item")
    beam: int | None = Field(None, description="beam size (1: greedy); default: the server's")
    nbest: int | None = Field(None, description="hypotheses per sentence (at most beam); default: the server's")
    attention: bool = Field(True, description="include each translation's attention matrix")
    model: str | None = Field(None, description="one of GET /models; default: the first")
    prefix: list[str] | None = Field(
        None, description='the start of each translation, one per sentence ("" for none): the search goes on from it'
    )
    layers: bool = Field(False, description="every attention map: each layer and head (encoder, decoder, cross)")
    return_beam: bool = Field(False, description="the search step by step: each step's kept, finished, pruned")
    alternatives: int = Field(
        0, description=f"the k (0 to {MAX_ALTERNATIVES}) most probable tokens at each output position, each "
        "with the prefix that writes it there",
    )  # fmt: skip


class GoldRequest(BaseModel):
    """The body of ``POST /gold``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    index: int = Field(description="a sentence of GET /gold's split (from 0)")
    model: str | None = Field(None, description="one of GET /models; default: the first")
    layers: bool = Field(False, description="every attention map: each layer and head")


class BadRequest(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def model_names(models: list[list[str]]) -> list[str]:
    """A short name per model (its checkpoint files; several: an ensemble): each file's run folder
    name (``runs/demo/attention/best.pt`` -> ``attention``), joined by ``+`` for an ensemble, or
    the paths where two models would share one; an ensemble says so, ``m30k (ensemble of 2)``."""

    def short(files: list[str]) -> str:
        folders = "+".join(dict.fromkeys(Path(p).parent.name or Path(p).stem for p in files))
        return folders if len(files) == 1 else f"{folders} (ensemble of {len(files)})"

    def full(files: list[str]) -> str:
        return "+".join(shown_path(p) for p in files)

    names = [short(m) for m in models]
    return [n if names.count(n) == 1 else full(m) for n, m in zip(names, models, strict=True)]


def shown_path(path: str) -> str:
    """A checkpoint's path as the page and the API show it: relative to the working folder where
    it lies inside it, else its last three parts, never this machine's absolute path."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(Path("...", *resolved.parts[-3:]))


def host_name(host: str) -> str:
    """The name or address of a ``Host`` header, without its port or IPv6 brackets, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def ip_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class Guard:
    """ASGI middleware in front of the app: the ``Host`` and ``Origin`` checks, the token, and
    the body (it must give its length, at most ``max_body_bytes``, and arrive within
    ``client_timeout`` seconds; read here whole, then handed to the app)."""

    def __init__(self, app: Any, cfg: Any, token: str) -> None:
        self.app, self.token = app, token
        self.max_bytes, self.timeout = cfg.max_body_bytes, cfg.client_timeout
        self.bound = host_name(cfg.host)
        self.names = {"localhost", self.bound, *(host_name(h) for h in cfg.allowed_hosts)}

    def host_allowed(self, name: str) -> bool:
        """A request for ``name`` (its ``Host``) is for this server, not for a name rebound to it."""
        if "*" in self.names or name in self.names:
            return True
        ip = ip_address(name)
        bound = ip_address(self.bound)
        every = bound is not None and bound.is_unspecified  # 0.0.0.0 or ::
        return ip is not None and (ip.is_loopback or every or ip == bound)

    def token_given(self, scope: dict[str, Any], headers: dict[bytes, bytes]) -> str:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return (query.get("token") or [""])[0]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        refusal = None
        if not self.host_allowed(host_name(host)):
            refusal = (
                400, f"Host {host!r} is not this server's (a guard against DNS rebinding): open it as "
                f"http://localhost:PORT/, or start it with allowed_hosts=[{host_name(host) or 'NAME'}]",
            )  # fmt: skip
        elif scope["method"] not in ("GET", "HEAD", "OPTIONS") and b"origin" in headers:
            origin = headers[b"origin"].decode("latin-1")
            if origin != f"{scope.get('scheme', 'http')}://{host}":
                refusal = (403, f"a request from another site ({origin}) is refused: use this server's own page")
        if (
            refusal is None
            and self.token
            and not hmac.compare_digest(self.token_given(scope, headers).encode(), self.token.encode())
        ):
            refusal = (401, "this server needs its token: open the address it printed at start (with ?token=...)")
        if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
            declared = headers.get(b"content-length", b"")
            if not declared.isdigit():
                refusal = (411, "the request must give its Content-Length")
            elif int(declared) > self.max_bytes:
                refusal = (413, f"the request body is over {self.max_bytes} bytes")
            else:
                body = await self.read_body(receive)
                if body is None:
                    refusal = (408, f"the request body did not arrive within {self.timeout} s")
                else:
                    receive = replay(body, receive)
        if refusal is not None:
            await JSONResponse({"error": refusal[1]}, status_code=refusal[0])(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def read_body(self, receive: Any) -> bytes | None:
        """The whole body, or None when it is not in within ``client_timeout`` seconds."""
        chunks, more = [], True
        deadline = time.monotonic() + self.timeout
        try:
            while more:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
                if message["type"] == "http.disconnect":
                    return None
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
        except TimeoutError:
            return None
        return b"".join(chunks)[: self.max_bytes + 1]


def replay(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that gives ``body`` first, then what the client sends (its disconnect)."""
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def guarded_protocol(seconds: float) -> type:
    """uvicorn's HTTP/1.1 protocol with a clock on each request's head: a client that has not
    sent a whole one within ``seconds`` of connecting, or of its previous answer, is
    disconnected (uvicorn alone waits for it forever)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(H11Protocol):
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.arm()

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a request's head is in
                self.disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self.disarm()
            super().connection_lost(exc)

        def arm(self) -> None:
            self.disarm()
            self.head_timer = self.loop.call_later(seconds, self.too_slow)

        def disarm(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def too_slow(self) -> None:
            self.head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return Guarded


def create_app(
    translators: dict[str, Translator],
    cfg: Any,
    *,
    follow_load: bool = True,
    token: str = "",
    runs: dict[str, Path] | None = None,
    gold: GoldSplit | None = None,
) -> Any:
    """The app over ``translators`` (name -> a loaded :class:`Translator`, whose search is the
    default of a request that names none); ``cfg``: the checked :class:`ServeConfig` whose limits
    (:data:`LIMITS`) a request must keep; ``follow_load``: set torch's CPU threads from the
    machine's load before each request; ``token``: what every request must carry ("": nothing);
    ``runs``: run folders with attention examples (name -> folder) for the training view;
    ``gold``: a split with gold alignments for the view against gold."""
    if not translators:
        raise ConfigError("seq2seq-serve needs at least one checkpoint")
    names = list(translators)
    one_at_a_time = asyncio.Lock()  # one decoding at a time: every request gets a whole answer
    admitted = 0  # the request decoding and those waiting for it
    cpu = any(t.device.type == "cpu" for t in translators.values())
    governor = ThreadGovernor(0, interval=2.0) if cpu and follow_load else None
    app = FastAPI(
        title="seq2seq",
        description="Translate, and see where the model looked (cross-attention weights).",
        version="1",
    )
    add_error_handlers(app)
    page_html = resources.files("seq2seq").joinpath("static/index.html").read_text(encoding="utf-8")
    page_html = page_html.replace(TOKEN_META, TOKEN_META.replace('content=""', f'content="{html.escape(token)}"'))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:  # async: answered while a translation holds the worker threads
        return page_html

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": names}

    @app.get("/models")
    async def models() -> dict[str, Any]:
        default = translators[names[0]].search
        return {
            "models": [describe_translator(name, translators[name]) for name in names],
            "default_search": {"beam": default.beam, "nbest": default.nbest},
            "limits": {key: cfg[key] for key in LIMITS},
        }

    async def in_turn(request: Request, work: Any) -> Any:
        """``work()`` run in a worker thread once it is this request's turn: one at a time, at
        most ``max_queue`` waiting (503 beyond), none for a client that left (503), stopped
        past ``max_seconds`` (``work`` takes the deadline; 503)."""
        nonlocal admitted
        if admitted > cfg.max_queue:  # one decoding, max_queue waiting
            raise BadRequest(503, "busy: too many requests wait for the model; try again", retry_after())
        admitted += 1
        try:
            if not await wait_for_turn(one_at_a_time, request):
                raise BadRequest(503, "the client left while it waited")
            try:
                if governor is not None:
                    governor.update()
                return await run_in_threadpool(work, time.monotonic() + cfg.max_seconds)
            except ValueError as e:  # a prefix word the model cannot write
                raise BadRequest(422, str(e)) from None
            except DecodingTimeout:
                raise BadRequest(
                    503, f"decoding ran past max_seconds={cfg.max_seconds}: send fewer or shorter sentences, "
                    "or a smaller beam", retry_after(),
                ) from None  # fmt: skip
            finally:
                one_at_a_time.release()
        finally:
            admitted -= 1

    async def json_answer(obj: dict[str, Any], hint: str) -> Response:
        """``obj`` as the JSON answer, written in a worker thread (a large answer would hold up
        the event loop, and every other client's page and health check with it); refused (422,
        with ``hint``) over ``max_response_bytes``."""
        answer = await run_in_threadpool(lambda: json.dumps(obj, ensure_ascii=False).encode())
        if len(answer) > cfg.max_response_bytes:
            raise BadRequest(
                422, f"the answer is {len(answer):,} bytes, over max_response_bytes={cfg.max_response_bytes:,}: {hint}"
            )
        return Response(answer, media_type="application/json")

    @app.post("/translate")
    async def translate(body: TranslateRequest, request: Request) -> Response:
        translator = request_translator(body, translators, cfg)
        text = [translator.clip(sentence, f"text[{i}]: ") for i, sentence in enumerate(body.text)]
        work = sum(len(ids) for ids in translator.loaded.src_tokenizer.encode_batch(text)) * translator.search.beam
        if work > cfg.max_search_tokens:
            raise BadRequest(
                422, f"{work} source pieces times the beam: at most max_search_tokens={cfg.max_search_tokens} "
                "(send fewer or shorter sentences, or a smaller beam)",
            )  # fmt: skip

        def decode(deadline: float) -> list[dict[str, Any]]:
            out = translator.translate(
                text, prefixes=body.prefix, deadline=deadline, beam_tree=body.return_beam, top_k=body.alternatives
            )
            if body.layers:  # every map of every sentence: refused before it is made when it cannot be sent
                numbers = sum(map_numbers(translator, t) for t in out)
                if numbers * BYTES_PER_NUMBER > cfg.max_response_bytes:
                    raise BadRequest(
                        422, f"every layer's maps of these sentences would be about {numbers * BYTES_PER_NUMBER:,} "
                        f"bytes, over max_response_bytes={cfg.max_response_bytes:,}: ask for layers with fewer "
                        "or shorter sentences",
                    )  # fmt: skip
            found = []
            for t in out:
                check_deadline(deadline)
                maps = translator.attention_maps(t) if body.layers and t.tokens else None
                found.append(t.to_dict(attention=body.attention, layers=maps, heads=True))
            return found

        translations = await in_turn(request, decode)
        return await json_answer(
            {"model": body.model or names[0], "search": describe(translator.search), "translations": translations},
            'ask with "attention": false (and without layers, return_beam, alternatives), or for fewer sentences',
        )

    @app.get("/training")
    async def training() -> Response:
        """Each run folder's validations with their attention examples (the training view)."""
        found = await run_in_threadpool(lambda: [{"name": n, **training_view(f)} for n, f in (runs or {}).items()])
        return await json_answer({"runs": found}, "the run has too many attention examples for one answer")

    @app.get("/gold")
    async def gold_list() -> dict[str, Any]:
        """The split with gold alignments, and its first sentences (the view against gold)."""
        if gold is None:
            raise BadRequest(404, "no split with gold alignments is served (gold=ROOT/SPLIT)")
        return gold.listing()

    @app.post("/gold")
    async def gold_view(body: GoldRequest, request: Request) -> Response:
        if gold is None:
            raise BadRequest(404, "no split with gold alignments is served (gold=ROOT/SPLIT)")
        name = served_model(body.model, translators)
        if not 0 <= body.index < len(gold.src):
            raise BadRequest(422, f"index={body.index}: the split has sentences 0 to {len(gold.src) - 1}")

        def read(deadline: float) -> dict[str, Any]:
            try:
                return gold.view(translators[name], body.index, heads=body.layers, deadline=deadline)
            except (CorpusError, ConfigError) as e:  # a line the model cannot read (too long, or links off it)
                raise BadRequest(422, f"sentence {body.index} of {gold.name}: {e}") from None

        view = await in_turn(request, read)
        return await json_answer({"model": name, "split": gold.name, **view}, "ask without layers")

    return Guard(app, cfg, token)


BYTES_PER_NUMBER = 7  # a weight in the JSON answer: "0.1234," and its share of brackets


def map_numbers(translator: Translator, t: Any) -> int:
    """How many numbers every layer's maps of translation ``t`` hold (heads kept): encoder
    self-attention (source x source), decoder self-attention (output x output) and cross-attention
    (output x source), per layer and head, from the model's config."""
    model = translator.config.get("model", {})
    heads = (model.get("self_attention") or {}).get("heads", 1)
    s, n = len(t.source_tokens), len(t.tokens)
    encoder = model.get("encoder_layers", 1) * heads * s * s if model.get("encoder") == "self_attention" else 0
    if model.get("decoder") == "transformer":
        decoder = model.get("decoder_layers", 1) * heads * (n * n + n * s)
    else:
        decoder = n * s  # an RNN decoder: one cross map, one head
    return encoder + decoder


def retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER)}


async def wait_for_turn(lock: asyncio.Lock, request: Request) -> bool:
    """Hold ``lock`` (True), or give the place up when the client disconnects while it waits (False)."""
    turn = asyncio.ensure_future(lock.acquire())
    while True:
        done, _ = await asyncio.wait({turn}, timeout=0.2)
        if done:
            return True
        if await request.is_disconnected():
            if not turn.cancel():  # it got the lock just now
                lock.release()
            return False


def served_model(name: str | None, translators: dict[str, Translator]) -> str:
    """The model a request names (None: the first served), or a :class:`BadRequest` (422)."""
    name = name or next(iter(translators))
    if name not in translators:
        raise BadRequest(422, f"model {name!r} is not served: choose one of {', '.join(translators)}")
    return name


def request_translator(request: TranslateRequest, translators: dict[str, Translator], cfg: Any) -> Translator:
    """The translator a request asks for: its model with its beam and n-best (the model's own
    search where it gives none), once the request is checked against ``cfg``'s limits; a
    :class:`BadRequest` (422) says what is out of bounds."""
    name = served_model(request.model, translators)
    if not request.text:
        raise BadRequest(422, "text is empty: give a list of one or more sentences")
    if len(request.text) > cfg.max_sentences:
        raise BadRequest(422, f"text has {len(request.text)} sentences: at most {cfg.max_sentences}")
    for i, sentence in enumerate(request.text):
        if len(sentence) > cfg.max_chars:
            raise BadRequest(422, f"text[{i}] has {len(sentence)} characters: at most {cfg.max_chars}")
        check_unicode(sentence, f"text[{i}]")
    if request.prefix is not None and len(request.prefix) != len(request.text):
        raise BadRequest(422, f"prefix has {len(request.prefix)} items for {len(request.text)} sentences: one each")
    for i, start in enumerate(request.prefix or []):
        if len(start) > cfg.max_chars:
            raise BadRequest(422, f"prefix[{i}] has {len(start)} characters: at most {cfg.max_chars}")
        check_unicode(start, f"prefix[{i}]")
    if not 0 <= request.alternatives <= MAX_ALTERNATIVES:
        raise BadRequest(422, f"alternatives={request.alternatives}: give 0 (none) to {MAX_ALTERNATIVES}")
    base = translators[name]
    beam = base.search.beam if request.beam is None else request.beam
    if not 1 <= beam <= cfg.max_beam:
        raise BadRequest(422, f"beam={beam}: give 1 (greedy) to {cfg.max_beam}")
    nbest = min(base.search.nbest, beam) if request.nbest is None else request.nbest
    if not 1 <= nbest <= beam:
        raise BadRequest(422, f"nbest={nbest}: give 1 to the beam size ({beam})")
    return Translator.using(base.loaded, base.decoding.with_search(beam=beam, nbest=nbest))


def check_unicode(text: str, where: str) -> None:
    """``text`` is valid Unicode: JSON's ``\\ud800`` escapes can carry a lone surrogate, which no
    encoding can write (422, not a 500 from deep inside the tokenizer)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadRequest(
            422, f"{where} is not valid Unicode: a lone surrogate U+{ord(text[e.start]):04X} at character {e.start}"
        ) from None


def add_error_handlers(app: Any) -> None:
    """Every error answers ``{"error": "..."}``: 400 for invalid JSON, 422 for a body of the wrong
    shape, a :class:`BadRequest`'s own status, 404 and 405 as they are, 500 (logged, no traceback
    sent) for anything else."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"error": "the body is not valid JSON"}, status_code=400)
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(BadRequest)
    async def bad(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> JSONResponse:  # 404, 405: the same shape
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def broken(request: Request, exc: Exception) -> JSONResponse:  # no traceback in a response
        log.exception("request failed")
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)


def describe_translator(name: str, translator: Translator) -> dict[str, Any]:
    """What ``GET /models`` says of one model: its decoder, attention, languages and size (an
    ensemble: the first model's decoder and score, every model's parameters, ``models`` their count)."""
    config = translator.config
    model = config.get("model", {})
    data = config.get("data", {})
    return {
        "name": name,
        "decoder": model.get("decoder"),
        "attention": translator.loaded.attends,
        "score": (model.get("attention") or {}).get("score"),
        "src_lang": data.get("src_lang"),
        "tgt_lang": data.get("tgt_lang"),
        "layers": model.get("decoder") == "transformer" or model.get("encoder") == "self_attention",
        "alignment_layer": (  # 0-based: the cross-attention layer whose heads' mean is "where it looked"
            alignment_layer(model.get("alignment_layer", 0), model.get("decoder_layers", 1))
            if model.get("decoder") == "transformer"
            else 0
        ),
        "parameters": translator.loaded.model.num_parameters,
        "models": max(1, len(translator.loaded.paths)),  # 2 or more: an ensemble
    }


def run_folders(cfg: Any, models: list[list[str]]) -> dict[str, Path]:
    """The run folders of the training view: ``run=``, then each served model's own folder (its
    first checkpoint's), those that hold attention examples, each under a short name."""
    folders = [Path(cfg.run)] if cfg.run else []
    folders += [Path(files[0]).parent for files in models]
    kept = [f for f in dict.fromkeys(f.resolve() for f in folders) if has_examples(f)]
    names = model_names([[str(f / BEST)] for f in kept])
    return dict(zip(names, kept, strict=True))


def gold_split(cfg: Any, translator: Translator) -> GoldSplit | None:
    """The split of the view against gold: ``gold=ROOT/SPLIT``, the first model's own test split
    where it has gold alignments (``auto``), or none."""
    path = auto_gold(translator) if cfg.gold == "auto" else None if cfg.gold == "none" else cfg.gold
    if path is None:
        return None
    data = translator.config.get("data", {})
    return GoldSplit.read(path, data.get("src_lang"), data.get("tgt_lang"), shown_path(path))


def run_serve(cfg: ServeConfig) -> None:
    """``seq2seq-serve``: load the checkpoints once, then serve until Ctrl-C (``run=DIR`` alone:
    that run's ``best.pt``)."""
    if cfg.run is not None and cfg.checkpoint is None and not cfg.checkpoints:
        cfg.checkpoint = str(Path(cfg.run) / BEST)
    cfg = check_serve(cfg)
    given = [cfg.checkpoint] if cfg.checkpoint is not None else list(cfg.checkpoints)
    models = [checkpoint_files("checkpoint", c) for c in given]  # each: one file, or an ensemble's
    check_port(cfg.host, cfg.port)
    decoding = decoding_for(cfg)
    translators = {
        name: Translator.using(decoding.load(files), decoding)
        for name, files in zip(model_names(models), models, strict=True)
    }
    token = cfg.token or ("" if cfg.host in LOOPBACK else secrets.token_urlsafe(18))
    first = next(iter(translators.values()))
    app = create_app(translators, cfg, token=token, runs=run_folders(cfg, models), gold=gold_split(cfg, first))
    if cfg.host not in LOOPBACK:
        print(
            f"warning: host={cfg.host} serves every network this machine is on: only who has the token "
            "below can use it (host=127.0.0.1 keeps it to this machine)",
            flush=True,
        )
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    address = f"http://{shown}:{cfg.port}/" + (f"?token={token}" if token else "")
    print(f"seq2seq-serve: {address} ({', '.join(translators)}); Ctrl-C stops", flush=True)
    uvicorn.run(
        app, host=cfg.host, port=cfg.port, log_level="warning", http=guarded_protocol(cfg.client_timeout),
        timeout_keep_alive=min(5, cfg.client_timeout),
    )  # fmt: skip


def check_port(host: str, port: int) -> None:
    """A port another program holds, or a host this machine is not, as one line before loading."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            message = f"cannot serve on {host}:{port} ({e.strerror}): give another port, e.g. port=8080"
            raise ConfigError(message) from None
