"""``seq2seq-translate``: an interactive prompt on a terminal, line-by-line translation on a pipe.

Interactive: one sentence in, its translation out, then where the model looked (the source word
with the most attention for each output word). A blank line or Ctrl-D ends; Ctrl-C drops the
current line. Pipe or ``input=FILE``: one output line per input line, same order, empty lines
stay empty.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from seq2seq.checkpoint import Loaded, load_model
from seq2seq.config import CONFIG_DIR, TranslateConfig, check_choices, register_configs
from seq2seq.errors import CorpusError, Seq2SeqError
from seq2seq.evaluate import resolve_device
from seq2seq.search import Translation, translate_sentences

MAX_SOURCE_TOKENS = 400  # longer inputs are cut (and a note says so)


class Translator:
    def __init__(self, loaded: Loaded, cfg: TranslateConfig, device: torch.device) -> None:
        self.loaded, self.cfg, self.device = loaded, cfg, device

    def clip(self, line: str, where: str = "") -> str:
        """Cut an over-long input to :data:`MAX_SOURCE_TOKENS` tokens, saying so on stderr."""
        pieces = self.loaded.src_tokenizer.pieces(line)
        if len(pieces) <= MAX_SOURCE_TOKENS:
            return line
        print(
            f"note: {where}input has {len(pieces)} tokens; translating the first {MAX_SOURCE_TOKENS}", file=sys.stderr
        )
        return "".join(pieces[:MAX_SOURCE_TOKENS]).replace("▁", " ").strip()

    def translate(self, lines: list[str], progress: bool = False) -> list[Translation]:
        results: list[Translation] = []
        step = max(self.cfg.batch_size * 16, 1)
        with tqdm(total=len(lines), disable=not progress, file=sys.stderr, unit="sent") as bar:
            for start in range(0, len(lines), step):
                chunk = lines[start : start + step]
                results += translate_sentences(
                    self.loaded.model,
                    self.loaded.src_tokenizer,
                    self.loaded.tgt_tokenizer,
                    chunk,
                    self.cfg.batch_size,
                    self.cfg,
                    self.device,
                )
                bar.update(len(chunk))
        return results


def read_input(stream: TextIO | None, path: str | None) -> list[str]:
    """All input lines, checked for UTF-8 (an error names the line)."""
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


def batch_mode(translator: Translator, cfg: TranslateConfig) -> None:
    if cfg.input and not Path(cfg.input).is_file():
        raise CorpusError(f"{cfg.input}: file not found")
    lines = read_input(sys.stdin, cfg.input)
    todo = [i for i, line in enumerate(lines) if line.strip()]
    sources = [translator.clip(lines[i].strip(), f"line {i + 1}: ") for i in todo]
    outputs = [""] * len(lines)
    translations = translator.translate(sources, progress=sys.stderr.isatty() and len(todo) > 100)
    for i, t in zip(todo, translations, strict=True):
        outputs[i] = t.text
    text = "".join(line + "\n" for line in outputs)
    if cfg.output:
        Path(cfg.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def looked_at(t: Translation) -> list[str]:
    """For each output token, the source token it attended to most, and the weight."""
    lines = []
    width = max((len(p) for p in t.tgt_pieces), default=0)
    for row, piece in zip(t.weights, t.tgt_pieces, strict=True):
        j = int(row.argmax())
        lines.append(f"  {piece.lstrip('▁'):<{width}}  <- {t.src_pieces[j].lstrip('▁')}  ({float(row[j]):.2f})")
    return lines


def interactive(translator: Translator) -> None:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    print("seq2seq: type a sentence; a blank line or Ctrl-D quits.", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except EOFError:
            print(file=sys.stderr)
            return
        except KeyboardInterrupt:
            print("^C", file=sys.stderr)
            continue
        if not line.strip():
            return
        try:
            t = translator.translate([translator.clip(line.strip())])[0]
        except KeyboardInterrupt:
            print("^C", file=sys.stderr)
            continue
        print(t.text)
        if translator.cfg.attn and t.tgt_pieces:
            print("\n".join(looked_at(t)))


register_configs()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="translate")
def main(cfg: DictConfig) -> None:
    try:
        check_choices(cfg)
        device = resolve_device(cfg.device)
        translator = Translator(load_model(cfg.checkpoint, device), cfg, device)  # type: ignore[arg-type]
        if cfg.input or not sys.stdin.isatty():
            batch_mode(translator, cfg)  # type: ignore[arg-type]
        else:
            interactive(translator)
    except (Seq2SeqError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
