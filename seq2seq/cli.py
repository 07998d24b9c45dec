"""The console entry points: ``seq2seq-train``, ``-eval``, ``-translate``, ``-compare``, ``-gather``,
``-average``, ``-prepare``, ``-shortlist``, ``-serve`` and ``-export`` (whose modules, :mod:`seq2seq.serve` and
:mod:`seq2seq.export`, are imported only when they run: they need the ``[serve]`` and ``[export]``
extras).

Each composes its own primary config (``configs/<command>.yaml`` over the schema that
:func:`seq2seq.config.register_configs` registers) with Hydra, calls one library function, and
prints what a user must see. Before Hydra reads the command line, :mod:`seq2seq.usage` refuses
what Hydra would answer with a stack of lines (a misspelled option or config, a ``--flag``, a
sentence) in one line, and writes the ``--help`` page. One wrapper turns every error a user can cause into one line and
an exit code of 1, and removes a run folder that the failed command left empty. Nothing else in
the package registers configs or touches Hydra's global state on import.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from seq2seq.average import run_average
from seq2seq.compare import run_compare
from seq2seq.config import config_dir, register_configs
from seq2seq.data.prepare import run_prepare
from seq2seq.distributed import launched_processes
from seq2seq.errors import ConfigError, Seq2SeqError, TrainingStopped
from seq2seq.evaluation import EvalReport, run_eval
from seq2seq.gather import run_gather
from seq2seq.report import markdown_report
from seq2seq.shortlist import run_shortlist
from seq2seq.training import train_run
from seq2seq.translate import run_translate
from seq2seq.usage import check_arguments, help_text


def run_dir() -> Path:
    """The folder Hydra made for this run (``hydra.run.dir``, or a multirun job's folder)."""
    return Path(HydraConfig.get().runtime.output_dir)


def remove_if_left_empty(folder: Path) -> None:
    """Remove a run folder that holds nothing but what Hydra wrote into it for this command
    (``.hydra/`` and the command's log), so a failed command leaves no empty run behind; a
    folder holding anything else, or the working folder itself, stays."""
    if not folder.is_dir() or folder.resolve() == Path.cwd().resolve():
        return
    hydra_files = {".hydra", f"{HydraConfig.get().job.name}.log"}
    if all(p.name in hydra_files for p in folder.iterdir()):
        shutil.rmtree(folder / ".hydra", ignore_errors=True)
        (folder / f"{HydraConfig.get().job.name}.log").unlink(missing_ok=True)
        folder.rmdir()


@contextmanager
def one_line_errors(command: str, folder: Path | None) -> Iterator[None]:
    """Bad input, a missing file or a bad value ends the command with ``error: ...`` on one line
    (no traceback); a run ``folder`` the failed command left empty is removed."""
    try:
        yield
    except TrainingStopped as e:
        if not e.signum:  # diverged: an error like any other
            sys.exit(f"error: {e}")
        if int(os.environ.get("RANK", "0")) == 0:
            under = "the same torchrun launch with these arguments" if launched_processes() > 1 else "this command"
            print(f"{e}; to go on, run {under} in the same folder:\n  {resume_command()}", file=sys.stderr)
        elif folder is not None:
            remove_if_left_empty(folder)
        sys.exit(128 + e.signum)
    except KeyboardInterrupt:
        sys.exit("interrupted (a save under way was abandoned; saves are atomic, so no file is half written)")
    except (Seq2SeqError, OSError, OmegaConfBaseException) as e:
        if folder is not None:
            remove_if_left_empty(folder)
        if isinstance(e, MissingMandatoryValue):
            key = e.full_key or "a mandatory option"
            sys.exit(f"error: {key} has no value; give it on the command line: seq2seq-{command} {key}=...")
        message = str(e).splitlines()[0] if isinstance(e, OmegaConfBaseException) else str(e)
        sys.exit(f"error: {message}")


def resume_command() -> str:
    """This command line, with the run folder made explicit (a default folder holds the time)."""
    args = [a for a in sys.argv[1:] if not a.startswith(("hydra.run.dir=", "trainer.resume="))]  # resume: true
    return shlex.join([Path(sys.argv[0]).name, *args, f"hydra.run.dir={run_dir()}"])


def entry_point(command: str, job: Callable[[Any], None], makes_run_dir: bool) -> Callable[[], None]:
    """A console script running ``job`` on the composed ``configs/<command>.yaml``."""

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=command)
    def task(cfg: DictConfig) -> None:
        with one_line_errors(command, run_dir() if makes_run_dir else None):
            job(cfg)

    def main() -> None:
        with one_line_errors(command, None):
            given = check_arguments(command, sys.argv[1:], hydra_flags())
            if "--help" in given.flags:
                page(help_text(command, given.overrides))
                return
        register_configs()
        task()

    main.__doc__ = f"seq2seq-{command} (``configs/{command}.yaml``)."
    return main


def page(text: str) -> None:
    """Print ``text``; a reader that stops early (``--help | head``) is no error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit


def hydra_flags() -> dict[str, argparse.Action]:
    """Hydra's command-line flags (``--help``, ``-m``, ``--cfg``, ...): option string -> action."""
    return {option: action for action in get_args_parser()._actions for option in action.option_strings}


def _train(cfg: Any) -> None:
    rank = int(os.environ.get("RANK", "0")) if launched_processes() > 1 else 0
    if rank > 0:  # under torchrun only rank 0 logs and writes; the others train
        quiet_this_process()
    result = train_run(cfg, run_dir())
    if rank > 0:
        if run_dir().resolve() != result.run_dir.resolve():
            remove_if_left_empty(run_dir())  # its own Hydra folder (another second in its name)
        return
    print(f"best valid BLEU {result.best_bleu:.2f}; checkpoints: {result.best} {result.last}")


def quiet_this_process() -> None:
    """No log file and only warnings from this process (a torchrun worker other than rank 0)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    logging.getLogger("seq2seq").setLevel(logging.WARNING)


def _eval(cfg: Any) -> None:
    print_report(run_eval(cfg))


def print_report(report: EvalReport) -> None:
    print(f"{report.data}/{report.split}: {report.sentences} sentences, {report.search}")
    print(f"BLEU {report.bleu:.2f}  {report.bleu_signature}")
    print(f"chrF {report.chrf:.2f}  {report.chrf_signature}")
    if report.alignment_accuracy is not None:
        print(f"alignment accuracy {100 * report.alignment_accuracy:.1f}%")
    if report.attention_support is not None:
        print(f"attention support {report.attention_support:.2f} source pieces weighted > 0 per target piece")
    by_length = ", ".join(f"{r['bucket']}: {r['bleu']:.1f} ({r['sentences']})" for r in report.bleu_by_src_len)
    print(f"BLEU by source length: {by_length}")
    print(f"report: {report.output}")


def _report(summary: dict[str, Any], folder: Path) -> None:
    print(markdown_report(summary).split("\n![")[0].rstrip())
    print(f"\nreport: {folder / 'comparison.md'}")


def _compare(cfg: Any) -> None:
    _report(run_compare(cfg, run_dir()), run_dir())


def _gather(cfg: Any) -> None:
    _report(run_gather(cfg, run_dir()), run_dir())


def _average(cfg: Any) -> None:
    paths, output = run_average(cfg)
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) -> {output}")


def _prepare(cfg: Any) -> None:
    info = run_prepare(cfg)
    src, tgt = info.tokens
    pairs = max(info.pairs, 1)
    print(
        f"{'prepared' if info.made else 'already prepared'}: {info.folder}\n"
        f"{info.pairs:,} pairs, {src:,} source + {tgt:,} target tokens, {info.bytes:,} bytes "
        f"({info.bytes / max(src + tgt, 1):.2f} bytes a token, {info.bytes / pairs:.1f} a pair), {info.seconds:.1f} s"
    )


def _serve(cfg: Any) -> None:
    try:
        from seq2seq.serve import run_serve  # the optional extra: FastAPI and uvicorn
    except ImportError as e:
        raise ConfigError(str(e)) from None
    run_serve(cfg)


def _export(cfg: Any) -> None:
    try:
        from seq2seq.export import run_export  # the optional extra: CTranslate2
    except ImportError as e:
        raise ConfigError(str(e)) from None
    output = run_export(cfg)
    files = sorted(output.iterdir())
    size = sum(p.stat().st_size for p in files) / 2**20
    names = ", ".join(p.name for p in files)
    print(f"exported {cfg.checkpoint} -> {output}/ (CTranslate2, {cfg.quantization}, {size:,.1f} MB): {names}")


def _shortlist(cfg: Any) -> None:
    made = run_shortlist(cfg)
    print(
        f"{made.output}: {made.listed:,} source pieces with up to {made.per_source} target pieces each, "
        f"{made.frequent} frequent ones; from {made.pairs:,} sentence pairs"
    )


train = entry_point("train", _train, makes_run_dir=True)
evaluate = entry_point("eval", _eval, makes_run_dir=False)
translate = entry_point("translate", run_translate, makes_run_dir=False)
compare = entry_point("compare", _compare, makes_run_dir=True)
gather = entry_point("gather", _gather, makes_run_dir=True)
average = entry_point("average", _average, makes_run_dir=False)
serve = entry_point("serve", _serve, makes_run_dir=False)
prepare = entry_point("prepare", _prepare, makes_run_dir=False)
export = entry_point("export", _export, makes_run_dir=False)
shortlist = entry_point("shortlist", _shortlist, makes_run_dir=False)
