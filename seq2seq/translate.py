"""``seq2seq-translate``: an interactive prompt on a terminal, batch translation on a pipe or file.

Interactive: one sentence in, its translation out, then where the model looked: a heatmap in the
terminal (source tokens as columns, output tokens as rows, shaded blocks, aligned for
double-width characters) and the most-attended source word for each output word. Commands
(``:help``) change the search or save the heatmap as a PNG. A blank line or Ctrl-D ends;
Ctrl-C drops the current line.

Batch (stdin is a pipe, or ``input=FILE``): sorted by length into batches, restored to input
order, one output line per input line (an empty line gives an empty line); ``format=json`` writes
one JSON object per line with the n-best list, scores and attention.
"""

from __future__ import annotations

import json
import shutil
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from seq2seq.checkpoint import Loaded, load_model
from seq2seq.config import SearchConfig, TranslateConfig, check_search, check_translate
from seq2seq.constants import PRECISIONS
from seq2seq.data.batching import collate
from seq2seq.device import autocast_dtype, resolve_device
from seq2seq.errors import ConfigError, CorpusError
from seq2seq.models.seq2seq import AttentionMaps
from seq2seq.search import Translation, describe, translate_sentences
from seq2seq.threads import threads_for_the_load

MAX_SOURCE_TOKENS = 400  # longer inputs are cut (and a note says so)
SHADES = " ░▒▓█"


def search_config(**settings: Any) -> Any:
    """A checked :class:`SearchConfig` from keywords (``beam=5, length_penalty=0.6``); an unknown
    name or a bad value is a :class:`ConfigError`."""
    try:
        search = OmegaConf.merge(OmegaConf.structured(SearchConfig), settings)
    except OmegaConfBaseException as e:
        raise ConfigError(f"search setting: {str(e).splitlines()[0]}") from None
    check_search(search)
    return search


class Translator:
    """A trained model ready to translate: the model, both tokenizers and the search settings.

    >>> t = Translator.from_checkpoint("runs/demo/attention/best.pt", beam=5)  # doctest: +SKIP
    >>> t.translate(["Tom chase Jerry"])[0].text  # doctest: +SKIP
    '汤姆 追逐 杰瑞'
    """

    def __init__(
        self,
        loaded: Loaded,
        search: Any = None,
        *,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
    ) -> None:
        self.loaded = loaded
        settings = {} if search is None else OmegaConf.to_container(OmegaConf.structured(search))
        self.search = search_config(**settings)  # type: ignore[arg-type]  # checked, as a typed DictConfig
        self.batch_size = batch_size
        self.device = torch.device(device)
        if precision not in PRECISIONS:
            raise ConfigError(f"precision={precision!r} is not valid: choose one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self.autocast = autocast_dtype(precision, self.device)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        device: str = "auto",
        batch_size: int = 64,
        precision: str = "fp32",
        **search_settings: Any,
    ) -> Translator:
        """Load a checkpoint file (it holds the model, the tokenizers and its config) and keep the
        search settings (:class:`seq2seq.config.SearchConfig`'s fields: ``beam``,
        ``length_penalty``, ``length_norm``, ``nbest``, ``max_len_a``, ``max_len_b``, ``min_len``).
        ``precision=bf16`` decodes under bf16 autocast (a CPU with bf16 instructions, or CUDA)."""
        search = search_config(**search_settings)
        resolved = resolve_device(device)
        autocast_dtype(precision, resolved)  # refused before the model is loaded
        return cls(load_model(path, resolved), search, batch_size=batch_size, device=resolved, precision=precision)

    @property
    def config(self) -> dict[str, Any]:
        """The config the model was trained with (data, model, trainer, search)."""
        return self.loaded.config

    def clip(self, line: str, where: str = "") -> str:
        """Cut an over-long input to :data:`MAX_SOURCE_TOKENS` tokens, saying so on stderr."""
        pieces = self.loaded.src_tokenizer.pieces(line)
        if len(pieces) <= MAX_SOURCE_TOKENS:
            return line
        print(
            f"note: {where}input has {len(pieces)} tokens; translating the first {MAX_SOURCE_TOKENS}", file=sys.stderr
        )
        return "".join(pieces[:MAX_SOURCE_TOKENS]).replace("▁", " ").strip()

    def translate(self, sentences: list[str], progress: bool = False) -> list[Translation]:
        """One :class:`Translation` per sentence, in input order; a blank sentence gives an empty
        translation without running the model."""
        if isinstance(sentences, str):
            raise TypeError("translate() takes a list of sentences; wrap one sentence in a list")
        todo = [i for i, s in enumerate(sentences) if s.strip()]
        done: list[Translation] = []
        step = max(self.batch_size * 16, 1)
        with tqdm(total=len(todo), disable=not progress, file=sys.stderr, unit="sent") as bar:
            for start in range(0, len(todo), step):
                chunk = [sentences[i].strip() for i in todo[start : start + step]]
                done += translate_sentences(
                    self.loaded.model,
                    self.loaded.src_tokenizer,
                    self.loaded.tgt_tokenizer,
                    chunk,
                    batch_size=self.batch_size,
                    cfg=self.search,
                    device=self.device,
                    autocast=self.autocast,
                )
                bar.update(len(chunk))
        results = [Translation(s, "", [], ["</s>"], torch.zeros(0, 1), 0.0) for s in sentences]
        for i, t in zip(todo, done, strict=True):
            results[i] = t
        return results

    @torch.no_grad()
    def attention_maps(self, t: Translation) -> AttentionMaps:
        """Every attention map behind one translation, per layer, heads kept (``(h, rows, columns)``):

        - ``encoder``: the self-attention encoder's, source x source (its tokens end in ``</s>``);
        - ``decoder``: the Transformer decoder's masked self-attention, one row per output token,
          over the tokens read before writing it (``<s>`` and the output so far);
        - ``cross``: output x source, as ``t.attention`` but for every layer and head.

        Empty lists where the model has no such attention (RNNs); an RNN decoder has one cross
        layer with one head. The maps are read by teacher forcing on the output, which gives the
        numbers the search saw (the decoder's cache makes no difference)."""
        model = self.loaded.model.eval()
        batch = collate(self.loaded.src_tokenizer.encode_batch([t.source]), [t.token_ids]).to(self.device)
        maps = model.attention_maps(batch.src, batch.src_mask, batch.tgt_in)
        n = len(t.token_ids)  # the row that writes EOS is left out, as in t.attention
        return AttentionMaps(
            encoder=[m[0].float().cpu() for m in maps.encoder],  # (h, S, S)
            decoder=[m[0, :, :n, :n].float().cpu() for m in maps.decoder],  # (h, T, T)
            cross=[m[0, :, :n].float().cpu() for m in maps.cross],  # (h, T, S)
        )


# ---------------------------------------------------------------- batch mode


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


def as_json(t: Translation | None, with_attention: bool, maps: AttentionMaps | None = None) -> str:
    """One output line of ``format=json``; ``None`` (an empty input line) gives ``{}``. With
    ``maps``, also every layer's attention, heads averaged (``attention_layers=true``)."""
    if t is None:
        return "{}"
    obj: dict[str, Any] = {
        "source": t.source,
        "translation": t.text,
        "score": round(t.score, 4),
        "nbest": [{"translation": text, "score": round(score, 4)} for text, score in t.nbest],
    }
    if with_attention:
        obj["attention"] = {
            "source": [p.replace("▁", "") or "▁" for p in t.source_tokens],
            "target": [p.replace("▁", "") or "▁" for p in t.tokens],
            "weights": rounded(t.attention),
        }
    if maps is not None:
        obj["layers"] = {
            "encoder": [rounded(m.mean(0)) for m in maps.encoder],  # source x source, per layer
            "decoder": [rounded(m.mean(0)) for m in maps.decoder],  # output x (<s> + output before it)
            "cross": [rounded(m.mean(0)) for m in maps.cross],  # output x source
        }
    return json.dumps(obj, ensure_ascii=False)


def rounded(weights: torch.Tensor) -> list[list[float]]:
    return [[round(float(x), 4) for x in row] for row in weights]


def batch_mode(translator: Translator, cfg: TranslateConfig) -> None:
    """Translate ``cfg.input`` (or standard input) line by line into ``cfg.output`` (or standard output)."""
    if cfg.input and not Path(cfg.input).is_file():
        raise CorpusError(f"{cfg.input}: file not found")
    lines = read_input(sys.stdin, cfg.input)
    todo = [i for i, line in enumerate(lines) if line.strip()]
    sources = [translator.clip(lines[i].strip(), f"line {i + 1}: ") for i in todo]
    translations = translator.translate(sources, progress=len(todo) > 0 and sys.stderr.isatty())
    by_line: list[Translation | None] = [None] * len(lines)
    for i, t in zip(todo, translations, strict=True):
        by_line[i] = t
    if cfg.format == "json":
        maps = [t and translator.attention_maps(t) if cfg.attention_layers else None for t in by_line]
        text = "".join(as_json(t, cfg.attn, m) + "\n" for t, m in zip(by_line, maps, strict=True))
    else:
        text = "".join(("" if t is None else t.text) + "\n" for t in by_line)
    if cfg.output:
        Path(cfg.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


# ---------------------------------------------------------------- the terminal heatmap


def display(token: str) -> str:
    """A token as shown: no SentencePiece marker, control characters as ``?``."""
    shown = "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in token.replace("▁", ""))
    return shown or "▁"


def width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, cols: int) -> str:
    return text + " " * max(cols - width(text), 0)


def shade(weight: float) -> str:
    return SHADES[min(int(weight * len(SHADES)), len(SHADES) - 1)]


def heatmap(t: Translation, max_cols: int | None = None) -> list[str]:
    """Rows: output tokens; columns: source tokens; each cell shaded by its attention weight."""
    return grid(t.tokens, t.source_tokens, t.attention, max_cols)


def grid(rows: list[str], columns: list[str], weights: torch.Tensor, max_cols: int | None = None) -> list[str]:
    """A map in the terminal: one line per row token, one column per column token, each cell
    shaded by its weight. Columns are as wide as their token; when that does not fit the
    terminal, columns are two wide and numbered, with the numbered column tokens listed below."""
    src = [display(p) for p in columns]
    tgt = [display(p) for p in rows]
    left = max((width(s) for s in tgt), default=0) + 1
    max_cols = max_cols or shutil.get_terminal_size((100, 24)).columns
    cols = [max(width(s), 2) for s in src]
    numbered = left + sum(c + 1 for c in cols) > max_cols
    if numbered:
        cols = [2] * len(src)
        header = [f"{j % 100:>2}" for j in range(len(src))]
    else:
        header = [pad(s, c) for s, c in zip(src, cols, strict=True)]
    lines = [" " * left + " ".join(header)]
    for row, token in zip(weights.tolist(), tgt, strict=True):
        lines.append(pad(token, left) + " ".join(shade(w) * c for w, c in zip(row, cols, strict=True)))
    if numbered:
        lines.append("  " + "  ".join(f"{j}:{s}" for j, s in enumerate(src)))
    return lines


def looked_at(t: Translation) -> list[str]:
    """For each output token, the source token it attended to most, and the weight."""
    tgt = [display(p) for p in t.tokens]
    left = max((width(s) for s in tgt), default=0)
    lines = []
    for row, token in zip(t.attention, tgt, strict=True):
        j = int(row.argmax())
        lines.append(f"  {pad(token, left)}  <- {display(t.source_tokens[j])}  ({float(row[j]):.2f})")
    return lines


# ---------------------------------------------------------------- interactive mode


class MapError(ValueError):
    """A map that is not there (no such layer or head, or an RNN's), said in one line."""


@dataclass
class Map:
    """One attention map as drawn: ``weights (rows, columns)`` with its labels."""

    title: str
    columns: list[str]
    rows: list[str]
    weights: torch.Tensor
    xlabel: str
    ylabel: str


def pick_map(t: Translation, maps: AttentionMaps, name: str, args: list[str]) -> Map:
    """The map ``:self enc|dec L [H]`` or ``:cross L [H]`` asks for, of translation ``t``."""
    usage = ":self enc|dec LAYER [HEAD] or :cross LAYER [HEAD] (counted from 1)"
    side = args.pop(0) if name == "self" and args else ("cross" if name == "cross" else "")
    if side not in ("enc", "dec", "cross") or not 1 <= len(args) <= 2 or not all(a.isdigit() for a in args):
        raise MapError(f"usage: {usage}")
    layers = {"enc": maps.encoder, "dec": maps.decoder, "cross": maps.cross}[side]
    if not layers:
        what = "encoder is an RNN: it has no self-attention (model.encoder=self_attention has)"
        if side == "dec":
            what = "decoder is an RNN: it has no self-attention (model.decoder=transformer has)"
        raise MapError(f"this model's {what}")
    layer, head = int(args[0]), int(args[1]) if len(args) > 1 else 0
    where = {"enc": "encoder", "dec": "decoder", "cross": "decoder"}[side]
    if not 1 <= layer <= len(layers):
        raise MapError(f"the {where} has {len(layers)} layer{'s' * (len(layers) > 1)}: give 1 to {len(layers)}")
    heads = layers[layer - 1].size(0)
    if not 0 <= head <= heads:
        raise MapError(f"layer {layer} has {heads} head{'s' * (heads > 1)}: give 1 to {heads}, or none for the mean")
    weights = layers[layer - 1][head - 1] if head else layers[layer - 1].mean(0)  # (rows, columns)
    which = f"head {head}" if head else (f"mean of {heads} heads" if heads > 1 else "")
    title = {"enc": "encoder self-attention", "dec": "decoder self-attention", "cross": "cross-attention"}[side]
    title = f"{title}, layer {layer}" + (f", {which}" if which else "")
    if side == "enc":
        return Map(title, t.source_tokens, t.source_tokens, weights, "source (keys)", "source (queries)")
    if side == "dec":
        return Map(title, ["<s>", *t.tokens[:-1]], t.tokens, weights, "output read so far", "output")
    return Map(title, t.source_tokens, t.tokens, weights, "source", "output")


HELP = """commands:
  :beam N          beam size (1: greedy)            :nbest N     show the N best translations
  :lp A            length penalty α                  :attn on|off  show where the model looked
  :self enc L [H]  the last translation's self-attention in encoder layer L (head H, else heads averaged)
  :self dec L [H]  ... in decoder layer L: each output word over the words written before it
  :cross L [H]     ... the output -> source attention of decoder layer L
  :save FILE.png   save the map last shown as a picture
  :settings        the current search                :help, :quit
layers and heads count from 1
a blank line or Ctrl-D quits; Ctrl-C drops the line"""


class Session:
    """The interactive prompt: translations, attention display and ``:`` commands."""

    def __init__(self, translator: Translator, out: TextIO = sys.stdout, show_attention: bool = True) -> None:
        self.translator = translator
        self.show_attention = show_attention
        self.out = out
        self.last: Translation | None = None
        self.maps: AttentionMaps | None = None  # the last translation's, read when first asked for
        self.shown: Map | None = None  # what :save writes

    @property
    def search(self) -> Any:
        return self.translator.search

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def command(self, line: str) -> bool:
        """Run a ``:`` command; False when the session should end."""
        name, _, arg = line[1:].strip().partition(" ")
        arg = arg.strip()
        try:
            if name in ("q", "quit", "exit"):
                return False
            if name in ("h", "help", "?"):
                self.say(HELP)
            elif name == "beam":
                self.set_search(beam=int(arg), nbest=min(self.search.nbest, max(int(arg), 1)))
            elif name == "nbest":
                n = int(arg)
                self.set_search(nbest=n, beam=max(self.search.beam, n))
            elif name == "lp":
                self.set_search(length_penalty=float(arg))
            elif name == "attn":
                if arg not in ("on", "off"):
                    raise ValueError
                self.show_attention = arg == "on"
                self.say(f"attention display {arg}")
            elif name in ("self", "cross"):
                self.show_map(name, arg.split())
            elif name == "save":
                try:
                    self.save(arg)
                except (OSError, ValueError, RuntimeError) as e:  # a bad folder or picture type: say so, go on
                    self.say(f"could not save {arg}: {e}")
            elif name == "settings":
                shown = "on" if self.show_attention else "off"
                self.say(f"{describe(self.search)}, nbest {self.search.nbest}, attention {shown}")
            else:
                self.say(f"unknown command :{name} (:help lists them)")
        except ValueError:
            self.say(f"bad value for :{name}: {arg!r} (:help lists the commands)")
        return True

    def set_search(self, **values: Any) -> None:
        try:
            search = search_config(**{**OmegaConf.to_container(self.search), **values})  # type: ignore[dict-item]
        except ConfigError as e:
            self.say(str(e))
            return
        self.translator.search = search
        self.say(f"{describe(search)}, nbest {search.nbest}")

    def save(self, path: str) -> None:
        if self.shown is None or not path:
            self.say("translate a sentence first, then :save FILE.png")
            return
        from seq2seq import plots  # matplotlib only when a picture is asked for

        m = self.shown
        plots.plot_attention([(m.title, m.columns, m.rows, m.weights)], path, xlabel=m.xlabel, ylabel=m.ylabel)
        self.say(f"saved {path}")

    def show_map(self, name: str, args: list[str]) -> None:
        """``:self enc|dec L [H]`` or ``:cross L [H]``: draw that map of the last translation."""
        if self.last is None or not self.last.tokens:
            self.say(f"translate a sentence first, then :{name} ...")
            return
        if self.maps is None:
            self.maps = self.translator.attention_maps(self.last)
        try:
            m = pick_map(self.last, self.maps, name, args)
        except MapError as e:
            self.say(str(e))
            return
        self.shown = m
        self.say(m.title)
        self.say("\n".join(grid(m.rows, m.columns, m.weights)))

    def translate(self, line: str) -> None:
        t = self.translator.translate([self.translator.clip(line)])[0]
        self.last, self.maps = t, None
        self.shown = Map(t.text, t.source_tokens, t.tokens, t.attention, "source", "output") if t.tokens else None
        self.say(t.text)
        if len(t.nbest) > 1:
            for k, (text, score) in enumerate(t.nbest, 1):
                self.say(f"  {k}. {score:8.3f}  {text}")
        if self.show_attention and t.tokens:
            self.say("\n".join(heatmap(t)))
            self.say("\n".join(looked_at(t)))

    def run(self) -> None:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        print("seq2seq: type a sentence (:help for commands); a blank line or Ctrl-D quits.", file=sys.stderr)
        while True:
            try:
                line = input("> ")
            except EOFError:
                print(file=sys.stderr)
                return
            except KeyboardInterrupt:
                print("^C", file=sys.stderr)
                continue
            if not line:  # a truly empty line ends; one of only spaces is ignored
                return
            if not line.strip():
                continue
            try:
                if line.lstrip().startswith(":"):
                    if not self.command(line.strip()):
                        return
                else:
                    self.translate(line.strip())
            except KeyboardInterrupt:
                print("^C", file=sys.stderr)


def run_translate(cfg: TranslateConfig) -> None:
    """``seq2seq-translate``: batch mode on a file or pipe, else the interactive prompt."""
    cfg = check_translate(cfg)
    if resolve_device(cfg.device).type == "cpu":
        threads_for_the_load()
    settings = {name: cfg[name] for name in SearchConfig.__dataclass_fields__}
    translator = Translator.from_checkpoint(
        cfg.checkpoint, device=cfg.device, batch_size=cfg.batch_size, precision=cfg.precision, **settings
    )
    if cfg.input or sys.stdin is None or not sys.stdin.isatty():
        batch_mode(translator, cfg)
    else:
        Session(translator, show_attention=cfg.attn).run()
