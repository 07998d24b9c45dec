"""Self-contained checkpoints: model weights, both tokenizers and the config in one file.

Written atomically (temporary file + ``os.replace``), so a crash never leaves half a
checkpoint; read with ``torch.load(weights_only=True)``, so a file can hold only tensors and
plain data, never code.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import torch

from seq2seq.config import check_model, saved_model_config, uses_attention
from seq2seq.errors import CheckpointError
from seq2seq.models.ensemble import Ensemble
from seq2seq.models.seq2seq import Seq2Seq, build_model
from seq2seq.quantization import quantize_int8
from seq2seq.runfolder import BEST, KEPT
from seq2seq.tokenizer import Tokenizer

if TYPE_CHECKING:  # seq2seq.shortlist builds its tables from checkpoints: imported only for the type
    from seq2seq.shortlist import Shortlist

FORMAT = "seq2seq-checkpoint"
VERSION = 2  # 2: four decoders (bahdanau, luong, cho, sutskever), LSTM and self-attention options


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.
    A failed write (a full disk, say) leaves the previous ``path`` as it was, no temporary file,
    and ends in one :class:`CheckpointError` that says what to do."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write_checkpoint(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is as readable as any file
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
    except BaseException as e:
        written = Path(tmp).stat().st_size if Path(tmp).exists() else 0
        Path(tmp).unlink(missing_ok=True)
        failed = os_error(e) if isinstance(e, Exception) else None
        if failed is None:
            raise
        raise CheckpointError(save_failure(path, failed, written)) from None


def write_checkpoint(obj: Any, f: BinaryIO) -> None:
    """The bytes of a checkpoint (``torch.save``), into an open file."""
    torch.save(obj, f)


def os_error(error: BaseException) -> OSError | None:
    """The operating system's error behind ``error``, if any: torch's writer may answer a failed
    write with a RuntimeError of its own, raised while the OSError is handled."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, RuntimeError) and "write" in str(error).lower():
        return OSError(str(error).partition("\n")[0])
    return None


def save_failure(path: Path, error: OSError, written: int) -> str:
    """One line for a save that failed: the file, why, and (a full disk) the space it needs."""
    kept = f"; the previous {path.name} is unchanged" if path.exists() else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(path.parent).free
        needed = max(written, path.stat().st_size if path.exists() else 0)  # what the last save took, at least
        room = f"{file_size(free)} free; the checkpoint needs at least {file_size(needed)}" if needed else "full"
        return (
            f"{path}: could not save: no space left on the device ({room}){kept}: "
            "free some space there, or use another folder, and run the command again"
        )
    reason = error.strerror or str(error) or type(error).__name__
    return f"{path}: could not save ({reason}){kept}"


def file_size(size: int) -> str:
    """``size`` bytes for a reader: ``12.3 MB``, ``640 KB``."""
    return f"{size / 2**20:,.1f} MB" if size >= 2**20 else f"{max(size // 2**10, 1)} KB"


def make_checkpoint(
    model: Seq2Seq,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    config: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A checkpoint's contents: the weights, both tokenizers (with their sha256, checked on
    reading), the config and, in ``last.pt``, the training state."""
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "config": config,
        "model": model.state_dict(),
        "src_tokenizer": src_tokenizer.model_proto,
        "tgt_tokenizer": tgt_tokenizer.model_proto,
        "tokenizer_sha256": {
            "src_tokenizer": sha256(src_tokenizer.model_proto),
            "tgt_tokenizer": sha256(tgt_tokenizer.model_proto),
        },
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    return ckpt


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint file; a clear :class:`CheckpointError` if it is not one."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(folder_given(path))
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, not a torch file, or holding code
        text = str(e)
        if "unsupported global" in text.lower():
            raise CheckpointError(
                f"{path}: refused: the file carries code (pickled objects beyond tensors and plain data), "
                "which seq2seq never loads; it is not a seq2seq checkpoint"
            ) from None
        detail = text.partition("WeightsUnpickler error:")[2].strip().partition("\n")[0] or text.partition("\n")[0]
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {detail[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seq2seq checkpoint (no '{FORMAT}' marker)")
    if isinstance(ckpt.get("version"), int) and ckpt["version"] > VERSION:
        raise CheckpointError(
            f"{path}: written by a newer seq2seq (checkpoint format {ckpt['version']}; this version reads "
            f"{VERSION}): upgrade seq2seq-attention to use it"
        )
    if ckpt.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {ckpt.get('version')} (this seq2seq reads {VERSION}); "
            "retrain it with this version"
        )
    check_tokenizers(path, ckpt)
    return ckpt


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_tokenizers(path: Path, ckpt: dict[str, Any]) -> None:
    """The tokenizers' bytes against the sha256 stored beside them (checkpoints written before
    the checksums have none, and pass): a flipped bit would tokenize differently without a word."""
    for key, digest in ckpt.get("tokenizer_sha256", {}).items():
        if sha256(ckpt.get(key, b"")) != digest:
            raise CheckpointError(
                f"{path}: damaged: its {key.replace('_', ' ')} does not match the checksum saved with it; "
                "use another copy or an earlier checkpoint"
            )


def folder_given(path: Path) -> str:
    """What to say when a checkpoint option names a folder: the checkpoint files in it."""
    names = sorted(p.name for p in path.glob("*.pt"))
    if BEST in names:
        return f"{path}: is a folder, not a checkpoint file; did you mean {path / BEST}?"
    if names:
        return f"{path}: is a folder, not a checkpoint file; it holds {', '.join(names)}"
    return f"{path}: is a folder, not a checkpoint file, and holds no .pt file"


def non_finite(weights: dict[str, Any]) -> str | None:
    """The name of the first floating-point tensor holding nan or inf, or None."""
    for name, tensor in weights.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def kept_step(path: str | Path) -> int:
    """The update count in a kept checkpoint's name (``step00000626.pt`` -> 626)."""
    match = KEPT.fullmatch(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: not a kept checkpoint name (stepNNNNNNNN.pt)")
    return int(match.group(1))


def kept_checkpoints(run: str | Path) -> list[Path]:
    """A run folder's kept per-validation checkpoints (``trainer.keep_checkpoints``), oldest first."""
    return sorted((p for p in Path(run).glob("*.pt") if KEPT.fullmatch(p.name)), key=kept_step)


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, Any]:
    """One checkpoint whose weights are the mean of those in ``paths`` (Vaswani et al.'s
    averaging of the last checkpoints of a run): floating-point tensors are averaged (in
    float64, then cast back), other tensors are taken from the last file. The files must hold
    the same model and tokenizers; config and tokenizers come from the last one, and no
    training state is kept (the result translates and evaluates, it does not resume). Tied
    weights are stored under both their names, as in any checkpoint of a tied model."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    sums: dict[str, torch.Tensor] = {}
    last: dict[str, Any] = {}
    for path in paths:
        ckpt = read_checkpoint(path)
        bad = non_finite(ckpt["model"])
        if bad is not None:
            raise CheckpointError(f"{path}: {bad} holds nan or inf (a diverged run); cannot average it")
        if last:
            if ckpt["src_tokenizer"] != last["src_tokenizer"] or ckpt["tgt_tokenizer"] != last["tgt_tokenizer"]:
                raise CheckpointError(f"{path}: has other tokenizers than {paths[0]}; cannot average them")
            if ckpt["config"].get("model") != last["config"].get("model") or ckpt["model"].keys() != sums.keys():
                raise CheckpointError(f"{path}: holds another model than {paths[0]}; cannot average them")
        for name, tensor in ckpt["model"].items():
            if last and (tensor.shape, tensor.dtype) != (last["model"][name].shape, last["model"][name].dtype):
                raise CheckpointError(
                    f"{path}: {name} is {tensor.dtype} {tuple(tensor.shape)}, "
                    f"not {last['model'][name].dtype} {tuple(last['model'][name].shape)}; cannot average them"
                )
            if tensor.is_floating_point():
                sums[name] = sums[name] + tensor.double() if name in sums else tensor.double()
            else:
                sums[name] = tensor
        last = ckpt
    model = {
        name: (total / len(paths)).to(last["model"][name].dtype) if total.is_floating_point() else total
        for name, total in sums.items()
    }
    return {
        **{k: v for k, v in last.items() if k != "train_state"},
        "model": model,
        "averaged_from": [str(p) for p in paths],
    }


@dataclass
class Loaded:
    """A model ready to decode, its tokenizers and the config it was trained with; for an
    ensemble (several checkpoint files), the :class:`~seq2seq.models.ensemble.Ensemble`, the
    first file's config, and every file's path and config."""

    model: Seq2Seq | Ensemble
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    config: dict[str, Any]
    paths: list[str] = field(default_factory=list)  # the checkpoint files (several: an ensemble)
    configs: list[dict[str, Any]] = field(default_factory=list)  # each file's config, in that order
    quantize: str = "none"  # int8: the model's linear and RNN layers are int8 (seq2seq.quantization)
    shortlist: Shortlist | None = None  # the vocabulary shortlist the search scores (Decoding.load reads it)

    @property
    def attends(self) -> bool:
        """Whether the model (or one of the ensemble's) is an attention model: its weights say
        where it looked, and alignment can be scored."""
        configs = self.configs or [self.config]
        return any(uses_attention(c.get("model", {}).get("decoder", "")) for c in configs)


def load_model(
    path: str | Path | Sequence[str | Path], device: str | torch.device = "cpu", quantize: str = "none"
) -> Loaded:
    """Everything needed to translate, from the checkpoint file alone; several files (a list of
    two or more) load as one :class:`Ensemble`, refused unless they share both tokenizers. The
    model is in eval mode; with ``quantize="int8"``, its linear and RNN layers are int8
    (:func:`seq2seq.quantization.quantize_int8`, on the CPU)."""
    loaded = load_checkpoints(path, device)
    if quantize == "none":
        return loaded
    return dataclasses.replace(loaded, model=quantize_int8(loaded.model), quantize=quantize)


def load_checkpoints(path: str | Path | Sequence[str | Path], device: str | torch.device = "cpu") -> Loaded:
    """:func:`load_model` before any quantization."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        raise CheckpointError("no checkpoint given")
    if len({str(p) for p in paths}) < len(paths):
        raise CheckpointError(f"{[str(p) for p in paths]} names a file twice: an ensemble's models are different files")
    ckpts = [read_checkpoint(p) for p in paths]
    for p, ckpt in zip(paths[1:], ckpts[1:], strict=True):
        languages = [[c["config"].get("data", {}).get(k) for k in ("src_lang", "tgt_lang")] for c in (ckpts[0], ckpt)]
        if languages[0] != languages[1]:
            raise CheckpointError(
                f"{p}: translates {'->'.join(map(str, languages[1]))}, {paths[0]} {'->'.join(map(str, languages[0]))}: "
                "an ensemble's models translate one way"
            )
        for key, side in (("src_tokenizer", "source"), ("tgt_tokenizer", "target")):
            if ckpt[key] != ckpts[0][key]:
                raise CheckpointError(
                    f"{p}: its {side} tokenizer is not that of {paths[0]}: an ensemble averages the "
                    "models' probabilities over one vocabulary, so its models must share both tokenizers "
                    "(models trained on the same prepared data do)"
                )
    loaded = [model_from(ckpt, p, device) for p, ckpt in zip(paths, ckpts, strict=True)]
    if len(loaded) == 1:
        return loaded[0]
    first = loaded[0]
    return Loaded(
        Ensemble([one.model for one in loaded]).eval(),  # type: ignore[misc]
        first.src_tokenizer, first.tgt_tokenizer, first.config,
        paths=[str(p) for p in paths], configs=[one.config for one in loaded],
    )  # fmt: skip


def model_from(ckpt: dict[str, Any], path: str | Path, device: str | torch.device = "cpu") -> Loaded:
    """The model, tokenizers and config of one read checkpoint (:func:`read_checkpoint`)."""
    bad = non_finite(ckpt["model"])
    if bad is not None:
        raise CheckpointError(
            f"{path}: {bad} holds nan or inf: the run that wrote it diverged; use an earlier checkpoint"
        )
    try:
        model_cfg = saved_model_config(ckpt["config"]["model"])
        check_model(model_cfg)
        src_tok, tgt_tok = Tokenizer(ckpt["src_tokenizer"]), Tokenizer(ckpt["tgt_tokenizer"])
        model = build_model(model_cfg, len(src_tok), len(tgt_tok))  # type: ignore[arg-type]
        model.load_state_dict(ckpt["model"])
    except Exception as e:
        raise CheckpointError(
            f"{path}: checkpoint does not match this seq2seq ({type(e).__name__}: {str(e)[:200]})"
        ) from None
    model.to(device).eval()
    return Loaded(model, src_tok, tgt_tok, ckpt["config"], paths=[str(path)], configs=[ckpt["config"]])
