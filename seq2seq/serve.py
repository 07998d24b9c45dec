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
empty list, too many sentences, a sentence over ``max_chars`` characters, a beam or n-best out
of range (422); a sentence over 400 pieces is cut there, as ``seq2seq-translate`` does. Models are loaded once
(``weights_only=True``, as everywhere) and requests are decoded one at a time, so concurrent
clients each get their own complete answer; before each, torch's threads are set to the cores
other processes leave free (:mod:`seq2seq.threads`).

FastAPI and uvicorn are the optional extra ``seq2seq-attention[serve]``.
"""

from __future__ import annotations

import logging
import socket
import threading
from importlib import resources
from pathlib import Path
from typing import Any

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, ConfigDict, Field
except ImportError as e:  # the optional extra
    raise ImportError("seq2seq-serve needs FastAPI and uvicorn: pip install 'seq2seq-attention[serve]'") from e

from seq2seq.checkpoint import load_model
from seq2seq.config import ServeConfig, check_serve, checkpoint_files
from seq2seq.decoding import decoding_for
from seq2seq.errors import ConfigError
from seq2seq.search import describe
from seq2seq.threads import ThreadGovernor
from seq2seq.translator import Translator

log = logging.getLogger(__name__)


LIMITS = ServeConfig.LIMITS  # what one request may ask for


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


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def model_names(models: list[list[str]]) -> list[str]:
    """A short name per model (its checkpoint files; several: an ensemble): each file's run folder
    name (``runs/demo/attention/best.pt`` -> ``attention``), joined by ``+`` for an ensemble, or
    the paths where two models would share one; an ensemble says so, ``m30k (ensemble of 2)``."""

    def short(files: list[str]) -> str:
        folders = "+".join(dict.fromkeys(Path(p).parent.name or Path(p).stem for p in files))
        return folders if len(files) == 1 else f"{folders} (ensemble of {len(files)})"

    def full(files: list[str]) -> str:
        return "+".join(files)

    names = [short(m) for m in models]
    return [n if names.count(n) == 1 else full(m) for n, m in zip(names, models, strict=True)]


class BodyLimit:
    """ASGI middleware: a request body must say its length (411 otherwise; the server then holds
    the client to it) and stay within ``max_bytes`` (413), checked before anything is read."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            declared = dict(scope.get("headers") or []).get(b"content-length", b"")
            if not declared.isdigit():
                answer = JSONResponse({"error": "the request must give its Content-Length"}, status_code=411)
                await answer(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                answer = JSONResponse({"error": f"the request body is over {self.max_bytes} bytes"}, status_code=413)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(translators: dict[str, Translator], cfg: Any, *, follow_load: bool = True) -> Any:
    """The app over ``translators`` (name -> a loaded :class:`Translator`, whose search is the
    default of a request that names none); ``cfg``: the checked :class:`ServeConfig` whose limits
    (:data:`LIMITS`) a request must keep; ``follow_load``: set torch's CPU threads from the
    machine's load before each request."""
    if not translators:
        raise ConfigError("seq2seq-serve needs at least one checkpoint")
    names = list(translators)
    one_at_a_time = threading.Lock()  # one decoding at a time: every request gets a whole answer
    cpu = any(t.device.type == "cpu" for t in translators.values())
    governor = ThreadGovernor(0, interval=2.0) if cpu and follow_load else None
    app = FastAPI(
        title="seq2seq",
        description="Translate, and see where the model looked (cross-attention weights).",
        version="1",
    )
    add_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:  # async: answered while a translation holds the worker threads
        return resources.files("seq2seq").joinpath("static/index.html").read_text(encoding="utf-8")

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

    @app.post("/translate")
    def translate(request: TranslateRequest) -> dict[str, Any]:
        translator = request_translator(request, translators, cfg)
        text = [translator.clip(sentence, f"text[{i}]: ") for i, sentence in enumerate(request.text)]
        with one_at_a_time:
            if governor is not None:
                governor.update()
            try:
                out = translator.translate(text, prefixes=request.prefix)
            except ValueError as e:  # a prefix word the model cannot write
                raise BadRequest(422, str(e)) from None
        return {
            "model": request.model or names[0],
            "search": describe(translator.search),
            "translations": [t.to_dict(attention=request.attention) for t in out],
        }

    return BodyLimit(app, cfg.max_body_bytes) if cfg.max_body_bytes > 0 else app


def request_translator(request: TranslateRequest, translators: dict[str, Translator], cfg: Any) -> Translator:
    """The translator a request asks for: its model with its beam and n-best (the model's own
    search where it gives none), once the request is checked against ``cfg``'s limits; a
    :class:`BadRequest` (422) says what is out of bounds."""
    name = request.model or next(iter(translators))
    if name not in translators:
        raise BadRequest(422, f"model {name!r} is not served: choose one of {', '.join(translators)}")
    if not request.text:
        raise BadRequest(422, "text is empty: give a list of one or more sentences")
    if len(request.text) > cfg.max_sentences:
        raise BadRequest(422, f"text has {len(request.text)} sentences: at most {cfg.max_sentences}")
    for i, sentence in enumerate(request.text):
        if len(sentence) > cfg.max_chars:
            raise BadRequest(422, f"text[{i}] has {len(sentence)} characters: at most {cfg.max_chars}")
    if request.prefix is not None and len(request.prefix) != len(request.text):
        raise BadRequest(422, f"prefix has {len(request.prefix)} items for {len(request.text)} sentences: one each")
    for i, start in enumerate(request.prefix or []):
        if len(start) > cfg.max_chars:
            raise BadRequest(422, f"prefix[{i}] has {len(start)} characters: at most {cfg.max_chars}")
    base = translators[name]
    beam = base.search.beam if request.beam is None else request.beam
    if not 1 <= beam <= cfg.max_beam:
        raise BadRequest(422, f"beam={beam}: give 1 (greedy) to {cfg.max_beam}")
    nbest = min(base.search.nbest, beam) if request.nbest is None else request.nbest
    if not 1 <= nbest <= beam:
        raise BadRequest(422, f"nbest={nbest}: give 1 to the beam size ({beam})")
    return Translator.using(base.loaded, base.decoding.with_search(beam=beam, nbest=nbest))


def add_error_handlers(app: Any) -> None:
    """Every error answers ``{"error": "..."}``: 400 for invalid JSON, 422 for a body of the wrong
    shape or a :class:`BadRequest`, 500 (logged, no traceback sent) for anything else."""

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
        return JSONResponse({"error": exc.message}, status_code=exc.status)

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
        "parameters": translator.loaded.model.num_parameters,
        "models": max(1, len(translator.loaded.paths)),  # 2 or more: an ensemble
    }


def run_serve(cfg: ServeConfig) -> None:
    """``seq2seq-serve``: load the checkpoints once, then serve until Ctrl-C."""
    cfg = check_serve(cfg)
    given = [cfg.checkpoint] if cfg.checkpoint is not None else list(cfg.checkpoints)
    models = [checkpoint_files("checkpoint", c) for c in given]  # each: one file, or an ensemble's
    check_port(cfg.host, cfg.port)
    decoding = decoding_for(cfg)
    translators = {
        name: Translator.using(load_model(files, decoding.device), decoding)
        for name, files in zip(model_names(models), models, strict=True)
    }
    app = create_app(translators, cfg)
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: host={cfg.host} serves every network this machine is on, without a password; "
            "anyone who reaches it can use it (host=127.0.0.1 keeps it to this machine)",
            flush=True,
        )
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    print(f"seq2seq-serve: http://{shown}:{cfg.port}/ ({', '.join(translators)}); Ctrl-C stops", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")


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
