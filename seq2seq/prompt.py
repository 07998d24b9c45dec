"""The interactive prompt of ``seq2seq-translate``: one sentence in, its translation out, then
where the model looked (a heatmap in the terminal and the most-attended source word of each output
word). ``:`` commands change the search, draw any layer's self- or cross-attention, or save the
map last shown as a PNG. A blank line or Ctrl-D ends; Ctrl-C drops the current line."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

import torch

from seq2seq.errors import ConfigError
from seq2seq.models.seq2seq import AttentionMaps
from seq2seq.search import describe
from seq2seq.terminal import grid, heatmap, looked_at
from seq2seq.translator import Translation, Translator


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
  :prefix WORDS    translate the last sentence again, starting with WORDS (the rest is the model's);
                   :prefix alone translates it freely again
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
        self.last_source: str | None = None  # what :prefix translates again
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
            elif name == "prefix":
                if self.last_source is None:
                    self.say("translate a sentence first, then :prefix WORDS")
                else:
                    try:
                        self.translate(self.last_source, prefix=arg)
                    except ValueError as e:  # a word the model cannot write: say which, go on
                        self.say(str(e))
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
        """Change some search settings of the translator; a bad value is said and changes nothing."""
        try:
            self.translator.decoding = self.translator.decoding.with_search(**values)
        except ConfigError as e:
            self.say(str(e))
            return
        self.say(f"{describe(self.search)}, nbest {self.search.nbest}")

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

    def translate(self, line: str, prefix: str = "") -> None:
        """Translate ``line`` (starting with ``prefix``, when given) and show it."""
        t = self.translator.translate([self.translator.clip(line)], prefixes=[prefix])[0]
        self.last, self.maps, self.last_source = t, None, line
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
