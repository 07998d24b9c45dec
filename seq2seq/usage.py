"""What a command says to a new user before Hydra runs: one line for an argument that Hydra would
answer with a stack of lines, and each command's ``--help``.

:func:`check_arguments` reads the command line as Hydra will (its flags, then ``key=value``
overrides) and refuses, as a :class:`~seq2seq.errors.ConfigError` of one line: an option the
command's schema lacks (the schema check's own "did you mean", :func:`seq2seq.config.check_known`),
a config group choice that is not in ``configs/<group>/``, an argparse-style ``--flag`` and a
bare word such as a sentence. What it cannot judge (``+key=``, ``~key``, ``hydra.*``, sweeps such
as ``glob(*)``) it leaves to Hydra. :func:`help_text` is the ``--help`` page: what the command
does, its main options with their values as composed (so ``model=transformer --help`` shows the
Transformer's), every other option's name, the config groups with their choices, and examples.
The options' descriptions are the comments on the schema's fields, the one place they are written.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import re
import shlex
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seq2seq.api import compose_config
from seq2seq.config import SCHEMAS, check_known, config_dir
from seq2seq.errors import ConfigError

WIDTH = 100  # the help page's lines
COLUMN = 36  # where the options' descriptions start


@dataclass(frozen=True)
class Usage:
    """One command's help: what it does, its main options (in the order shown) and examples."""

    does: str
    options: str  # space-separated
    examples: tuple[str, ...]


USAGE: dict[str, Usage] = {
    "train": Usage(
        "Train one model (model=) on one corpus (data=). The run folder gets config.yaml, best.pt "
        "(best validation BLEU), last.pt and metrics.csv; the same command with the same "
        "hydra.run.dir resumes an interrupted run.",
        "seed data.root trainer.epochs trainer.max_steps trainer.max_minutes trainer.batch_size trainer.lr "
        "trainer.lr_schedule trainer.device trainer.precision trainer.keep_checkpoints model.embed_size "
        "model.hidden_size model.rnn model.encoder model.dropout hydra.run.dir",
        (
            "seq2seq-train data=toy model=attention trainer.epochs=5 model.hidden_size=128",
            "seq2seq-train -m model=attention,fixed_context          # one run folder per model",
        ),
    ),
    "compare": Usage(
        "Train the fixed-context (Cho) model and the attention (Bahdanau) model on the same data, seed "
        "and trainer settings, and write one report (comparison.md, .json and figures). model.* is "
        "what every model shares; each entry of models says how one model differs from it.",
        "seed data.root trainer.epochs trainer.batch_size trainer.device model.hidden_size model.attention.score "
        "models split beam hydra.run.dir",
        (
            "seq2seq-compare data=toy hydra.run.dir=runs/demo",
            "seq2seq-compare '+models.luong={decoder: luong, attention: {score: general}}'   # a third model",
        ),
    ),
    "eval": Usage(
        "Score one checkpoint: BLEU and chrF (sacreBLEU, with signatures), BLEU by source length and, "
        "on a corpus with gold links, alignment accuracy. Without data=, the checkpoint's own data.",
        "checkpoint split beam length_penalty batch_size output device precision",
        (
            "seq2seq-eval checkpoint=runs/demo/attention/best.pt",
            "seq2seq-eval checkpoint=runs/demo/attention/best.pt split=valid beam=5",
        ),
    ),
    "translate": Usage(
        "Translate with one checkpoint: on a terminal a prompt that shows where the model looked "
        "(:help lists its commands); sentences piped in, or input=FILE, give one line out per line in.",
        "checkpoint input output format beam nbest attn device precision",
        (
            "seq2seq-translate checkpoint=runs/demo/attention/best.pt",
            "echo 'Tom chase Jerry' | seq2seq-translate checkpoint=runs/demo/attention/best.pt beam=5 format=json",
        ),
    ),
    "gather": Usage(
        "One report, the same as seq2seq-compare's, from runs trained apart (a multirun sweep, or "
        "separate trainings): each run's checkpoint scored on one split of the data they were trained on.",
        "runs checkpoints split beam batch_size device hydra.run.dir",
        (
            "seq2seq-gather runs=runs/sweep/2026-11-27_10-00-00              # every run below that folder",
            "seq2seq-gather 'runs=[runs/a,runs/b]' 'checkpoints=[averaged.pt,best.pt]' split=valid",
        ),
    ),
    "average": Usage(
        "One checkpoint from the mean of a run's last kept checkpoints (train it with "
        "trainer.keep_checkpoints=N), or of the checkpoint files given.",
        "run last checkpoints output",
        (
            "seq2seq-average run=runs/m30k last=5                 # writes runs/m30k/averaged.pt",
            "seq2seq-average 'checkpoints=[a.pt,b.pt]' output=avg.pt",
        ),
    ),
    "prepare": Usage(
        "Prepare a corpus for training ahead of time: read and check its training files, train the "
        "tokenizers on a sample and write the ids into a memory-mapped store (data.store_dir) that every "
        "run, resume and process with the same data settings then maps instead of reading the corpus.",
        "data.root data.src_lang data.tgt_lang data.train data.max_len data.tokenizer.src_vocab_size "
        "data.tokenizer.tgt_vocab_size data.tokenizer.sample_size data.tokenizer.threads data.store_dir",
        (
            "seq2seq-prepare data=multi30k                     # then seq2seq-train data=multi30k maps it",
            "seq2seq-prepare data=toy 'data.train=[train,extra]' data.max_len=100",
        ),
    ),
    "serve": Usage(
        "A local web page that translates and shows where the model looked, and a JSON API beside it "
        "(pip install 'seq2seq-attention[serve]').",
        "checkpoint checkpoints host port beam device precision",
        (
            "seq2seq-serve checkpoint=runs/demo/attention/best.pt                  # http://127.0.0.1:8000",
            "seq2seq-serve 'checkpoints=[runs/demo/attention/best.pt,runs/demo/fixed_context/best.pt]' port=8080",
        ),
    ),
    "export": Usage(
        "Write a Transformer checkpoint (model=transformer) as a CTranslate2 model folder, the SentencePiece "
        "models beside it as source.model and target.model, for deployment with CTranslate2 "
        "(pip install 'seq2seq-attention[export]').",
        "checkpoint output quantization force",
        (
            "seq2seq-export checkpoint=runs/tatoeba-transformer/best.pt output=ct2-tatoeba",
            "seq2seq-export checkpoint=runs/tatoeba-transformer/best.pt output=ct2-int8 quantization=int8",
        ),
    ),
    "shortlist": Usage(
        "Build a vocabulary shortlist for a checkpoint: each source piece's likely target pieces (IBM Model 1, "
        "from a parallel corpus read by the checkpoint's tokenizers), written as CTranslate2's vmap.txt; "
        "decoding with shortlist=FILE then scores only a batch's candidates.",
        "checkpoint src tgt output per_source frequent iterations",
        (
            "seq2seq-shortlist checkpoint=runs/m30k/best.pt       # its training data -> runs/m30k/vmap.txt",
            "seq2seq-eval checkpoint=runs/m30k/best.pt beam=5 shortlist=runs/m30k/vmap.txt",
        ),
    ),
}

NOTES = {"hydra.run.dir": "the run folder; the same command with the same folder resumes"}  # Hydra's, not a schema's
SWEEP = re.compile(r"[()\[\]{}'\"$\\ ]")  # a value Hydra parses further (glob(*), [a,b], quotes, ${...})


@dataclass(frozen=True)
class Arguments:
    """A command line split as Hydra reads it."""

    flags: tuple[str, ...]  # Hydra's flags given (``--help``, ``-m``, ``--cfg``, ...), without their values
    overrides: tuple[str, ...]  # ``key=value``, ``+key=value``, ``~key``, ...
    strays: tuple[tuple[str, str | None], ...]  # anything else, each with the value written after it, if any
    config_name: str | None  # ``--config-name``, if given


def split_arguments(args: Sequence[str], flags: Mapping[str, argparse.Action]) -> Arguments:
    """``args`` as Hydra's parser (``flags``: option string -> its action) will read them."""
    given, overrides, strays, config_name = [], [], [], None
    i = 0
    while i < len(args):
        arg, i = args[i], i + 1
        name, eq, inline = arg.partition("=")
        nxt = args[i] if i < len(args) else None
        if arg.startswith("-") and name in flags:
            action = flags[name]
            takes = action.nargs is None or (action.nargs == "?" and nxt in (action.choices or ()))
            value = inline if eq else (nxt if takes else None)
            i += 1 if takes and not eq else 0
            given.append(action.option_strings[0])
            config_name = value if action.dest == "config_name" else config_name
        elif "=" in arg and not arg.startswith("-") or arg.startswith("~"):
            overrides.append(arg)
        else:
            takes = arg.startswith("-") and not eq and nxt is not None and "=" not in nxt and not nxt.startswith("-")
            strays.append((name if eq else arg, inline if eq else (nxt if takes else None)))
            i += 1 if takes else 0
    return Arguments(tuple(given), tuple(overrides), tuple(strays), config_name)


def check_arguments(command: str, args: Sequence[str], flags: Mapping[str, argparse.Action]) -> Arguments:
    """``args`` split as Hydra reads them, or a one-line :class:`ConfigError` for the first that
    Hydra would refuse with a stack of lines (see the module's docstring)."""
    split = split_arguments(args, flags)
    if "--shell-completion" in split.flags or "--experimental-rerun" in split.flags:
        return split  # Hydra's own business
    modes = sorted({f for f in split.flags if f in ("--run", "--multirun", "--cfg", "--info")})
    if len(modes) > 1:
        raise ConfigError(f"{' and '.join(modes)} do not go together: give one of them")
    if split.strays:
        raise ConfigError(stray_message(command, split.strays))
    elsewhere = {"--config-path", "--config-dir"} & set(split.flags)  # groups we cannot see
    groups = config_groups(split.config_name or command)
    for override in split.overrides:
        key, _, value = override.partition("=")
        if key.startswith(("+", "~", "hydra.", "hydra/")) or "@" in key:
            continue  # added or deleted keys, Hydra's settings, packages: checked once composed, or Hydra's
        if "/" in key or key in groups or key in all_groups():
            if not elsewhere:
                check_choice(command, key, value, groups)
        else:
            check_known(nested(key), command)
    return split


def stray_message(command: str, strays: Sequence[tuple[str, str | None]]) -> str:
    """What to write instead of the first argument that is not ``key=value``: the option it names
    (``--epochs 5`` -> ``trainer.epochs=5``), else, for seq2seq-translate, how sentences go in."""
    arg, value = strays[0]
    if value is None and len(strays) > 1 and not strays[1][0].startswith("-"):
        value = strays[1][0]  # trainer.epochs 5
    options = schema_options(command)
    word = arg.lstrip("-").replace("-", "_")
    by_leaf = {key.rpartition(".")[2]: key for key in reversed(options)}  # the shallowest key of each name
    near = difflib.get_close_matches(word, list(by_leaf), n=1) if arg.startswith("-") else []
    key = word if word in options else by_leaf.get(word) or (by_leaf[near[0]] if near else None)
    quoted = shlex.quote(arg)
    if key is not None:
        return f"{quoted} is not how options are given: write key=value, e.g. {key}={value or 'VALUE'}"
    if command == "translate" and not arg.startswith("-"):
        sentence = shlex.quote(" ".join(a for a, _ in strays if not a.startswith("-")))
        return (
            f"{sentence} is not an option: seq2seq-translate reads sentences from standard input, "
            f"e.g. echo {sentence} | seq2seq-translate checkpoint=FILE, or input=FILE; on a terminal it prompts"
        )
    return f"{quoted} is not an option: options are key=value (`seq2seq-{command} --help` lists them)"


def check_choice(command: str, group: str, value: str, groups: Mapping[str, list[str]]) -> None:
    """Refuse a config group the command lacks, or a choice that is not a file of the group."""
    if group not in groups:
        near = difflib.get_close_matches(group, list(groups), n=1)
        hint = f" (did you mean {near[0]}={value}?)" if near else ""
        listed = ", ".join(groups) or "none"
        raise ConfigError(f"{group}= is not a config group of seq2seq-{command}{hint}; its groups: {listed}")
    if SWEEP.search(value):
        return
    for choice in value.split(","):  # a multirun sweeps over a,b,c
        if choice not in groups[group] and choice != "null":
            near = difflib.get_close_matches(choice, groups[group], n=1)
            hint = f" (did you mean {group}={near[0]}?)" if near else ""
            raise ConfigError(f"{group}={choice} is not a config{hint}: choose one of {', '.join(groups[group])}")


def nested(key: str) -> DictConfig:
    """``{a: {b: {c: null}}}`` for the dotted ``a.b.c``: what :func:`check_known` reads."""
    tree: Any = None
    for part in reversed(key.split(".")):
        tree = {part: tree}
    return OmegaConf.create(tree)


@cache
def all_groups() -> frozenset[str]:
    """Every config group folder under the config folder (``model``, ``model/attention``, ...)."""
    root = config_dir()
    return frozenset(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__")


@cache
def config_groups(config_name: str) -> dict[str, list[str]]:
    """The config groups that ``configs/<config_name>.yaml``'s defaults list picks from, with the
    groups inside them (``model/attention``), each with its choices (the YAML files' names)."""
    path = config_dir() / f"{config_name}.yaml"
    defaults = OmegaConf.load(path).get("defaults", []) if path.is_file() else []
    picked = [key for entry in defaults if isinstance(entry, DictConfig) for key in entry]
    names = [g for g in picked if not g.startswith(("override ", "hydra/"))]
    names = [name for g in names for name in (g, *sorted(s for s in all_groups() if s.startswith(f"{g}/")))]
    return {g: sorted(p.stem for p in (config_dir() / g).glob("*.yaml")) for g in names}


@cache
def schema_options(command: str) -> dict[str, str]:
    """Every option of the command's schema, by dotted key, with the schema's comment on it."""
    return dict(walk_schema(OmegaConf.structured(SCHEMAS[command]), SCHEMAS[command], ""))


def walk_schema(node: DictConfig, schema: type, prefix: str) -> Iterator[tuple[str, str]]:
    """Each leaf option below ``node`` (a structured config of ``schema``) with its comment."""
    notes = field_comments(schema)
    for key in node:
        kind = OmegaConf.get_type(node, key)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            yield from walk_schema(node[key], kind, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", notes.get(str(key), "")


def field_comments(schema: type) -> dict[str, str]:
    """The comment on each field's line in the source of ``schema`` and its dataclass bases."""
    found: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        name = None
        for line in inspect.getsource(cls).splitlines():
            field_line = re.match(r"    (\w+): [^#]*(?:#\s*(.*))?$", line)
            more = re.match(r"    #\s*(.*)", line)  # a comment's next line, under its field
            if field_line:
                name = field_line[1]
                if field_line[2]:
                    found[name] = field_line[2]
            elif more and name in found:
                found[name] += " " + more[1]
            else:
                name = None
    return found


def help_text(command: str, overrides: Sequence[str]) -> str:
    """The ``--help`` page of ``seq2seq-<command>``, its values composed with ``overrides``."""
    usage = USAGE[command]
    cfg = compose_config(command, overrides)
    groups = config_groups(command)
    lines = [*textwrap.wrap(f"seq2seq-{command}: {usage.does}", WIDTH, subsequent_indent="  "), ""]
    picks = " [GROUP=CHOICE ...]" if groups else ""
    lines += [f"usage: seq2seq-{command}{picks} [KEY=VALUE ...] [-m] [--cfg job] [--help] [--hydra-help]", ""]
    lines.append("Main options, KEY=VALUE (with the values they have now):")
    main = usage.options.split()
    for key in main:
        left, note = f"  {key}={show(cfg, key)}", NOTES.get(key) or schema_options(command).get(key, "")
        if len(left) > COLUMN - 2:
            lines.append(left)
            left = ""
        lines += textwrap.wrap(left.ljust(COLUMN) + note, WIDTH, subsequent_indent=" " * COLUMN) or [left]
    others = [key for key in schema_options(command) if key not in main]
    lines += ["", f"Other options (`seq2seq-{command} --cfg job` prints every value):"]
    lines += textwrap.wrap(" ".join(others), WIDTH, initial_indent="  ", subsequent_indent="  ")
    if groups:
        chosen = cfg.hydra.runtime.choices
        lines += ["", "Config groups, GROUP=CHOICE (the choice now in brackets):"]
        for group, choices in groups.items():
            marked = [f"[{c}]" if c == chosen.get(group) else c for c in choices]
            none = "" if chosen.get(group) else "  (none now)"
            lines.append(f"  {group}=".ljust(20) + ", ".join(marked) + none)
    lines += ["", "Examples:", *(f"  {example}" for example in usage.examples)]
    lines += ["", "-m runs a sweep (a,b,c: one run each); Hydra's own flags: --hydra-help."]
    return "\n".join(lines)


def show(cfg: DictConfig, key: str) -> str:
    """An option's value as an override writes it (``???``: required)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if OmegaConf.is_missing(node, leaf):
        return "???  (required)"
    value = OmegaConf.to_container(node, resolve=False)[leaf]  # type: ignore[index]
    return override_text(value)


def override_text(value: Any) -> str:
    """``value`` in Hydra's override syntax."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(override_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {override_text(v)}" for k, v in value.items()) + "}"
    return str(value) if value != "" else "''"
