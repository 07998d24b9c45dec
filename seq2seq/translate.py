"""``seq2seq-translate``: batch translation on a pipe or file, else the interactive prompt.

Batch (stdin is a pipe, or ``input=FILE``): sorted by length into batches, restored to input
order, one output line per input line (an empty line gives an empty line); ``format=json`` writes
one JSON object per line, :meth:`seq2seq.translator.Translation.to_dict`'s shape (the one
``seq2seq-serve`` answers with), and ``{}`` for an empty line. On a terminal it runs the prompt
(:mod:`seq2seq.prompt`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from seq2seq.config import TranslateConfig, check_translate, checkpoint_files
from seq2seq.decoding import decoding_for
from seq2seq.errors import CorpusError, Seq2SeqError
from seq2seq.prompt import Session
from seq2seq.translator import Translation, Translator


def read_input(stream: TextIO | None, path: str | None) -> list[str]:
    """All input lines, checked for UTF-8 (an error names the line)."""
    if not path and stream is None:
        raise CorpusError("standard input is closed: pipe sentences in, or give input=FILE")
    data = Path(path).read_bytes() if path else stream.buffer.read()  # type: ignore[union-attr]
    name = path or "<stdin>"
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for n, raw in enumerate(lines, 1):
        try:
            out.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError:
            raise CorpusError(f"{name}:{n}: invalid UTF-8") from None
    return out


def translate_lines(translator: Translator, lines: list[str]) -> list[Translation | None]:
    """One translation per line, in order; None for an empty line (the model never sees it). An
    over-long line is cut, with a note naming it."""
    todo = [i for i, line in enumerate(lines) if line.strip()]
    sources = [translator.clip(lines[i].strip(), f"line {i + 1}: ") for i in todo]
    translations = translator.translate(sources, progress=len(todo) > 0 and sys.stderr.isatty())
    by_line: list[Translation | None] = [None] * len(lines)
    for i, t in zip(todo, translations, strict=True):
        by_line[i] = t
    return by_line


def json_lines(translator: Translator, by_line: list[Translation | None], cfg: TranslateConfig) -> str:
    """``format=json``: one :meth:`Translation.to_dict` per line (``{}`` for an empty line), with
    every layer's maps under ``attention_layers=true``."""
    lines = []
    for t in by_line:
        layers = translator.attention_maps(t) if t is not None and cfg.attention_layers else None
        obj = {} if t is None else t.to_dict(attention=cfg.attn, layers=layers)
        lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
    return "".join(lines)


def batch_mode(translator: Translator, cfg: TranslateConfig) -> None:
    """Translate ``cfg.input`` (or standard input) line by line into ``cfg.output`` (or standard output)."""
    if cfg.input and not Path(cfg.input).is_file():
        raise CorpusError(f"{cfg.input}: file not found")
    by_line = translate_lines(translator, read_input(sys.stdin, cfg.input))
    if cfg.format == "json":
        text = json_lines(translator, by_line, cfg)
    else:
        text = "".join(("" if t is None else t.text) + "\n" for t in by_line)
    if cfg.output:
        Path(cfg.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def run_translate(cfg: TranslateConfig) -> None:
    """``seq2seq-translate``: batch mode on a file or pipe, else the interactive prompt."""
    cfg = check_translate(cfg)
    batch = bool(cfg.input) or sys.stdin is None or not sys.stdin.isatty()
    if sys.stdout is None and not (batch and cfg.output):  # Python's view of a closed stdout
        raise Seq2SeqError("standard output is closed: give output=FILE, or send it to a file or pipe")
    decoding = decoding_for(cfg)
    files = checkpoint_files("checkpoint", cfg.checkpoint)
    translator = Translator.using(decoding.load(files), decoding)
    if batch:
        batch_mode(translator, cfg)
    else:
        Session(translator, show_attention=cfg.attn).run()
