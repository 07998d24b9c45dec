"""The errors a user can cause; the command-line entry points print them as one line."""


class Seq2SeqError(Exception):
    """Base class: bad input, reported without a traceback."""


class CorpusError(Seq2SeqError):
    """A corpus file is missing or malformed."""


class CheckpointError(Seq2SeqError):
    """A checkpoint is missing, corrupt or not a seq2seq checkpoint."""


class ConfigError(Seq2SeqError, ValueError):
    """A configuration value is invalid."""


class TrainingStopped(Seq2SeqError):
    """Training stopped before its budget: a signal (``signum``) or a diverged run."""

    def __init__(self, message: str, signum: int = 0) -> None:
        super().__init__(message)
        self.signum = signum  # the signal that asked to stop; 0: the run diverged


class RunFolderBusy(Seq2SeqError):
    """Another live run trains into the same folder."""


class DecodingTimeout(Seq2SeqError, TimeoutError):
    """A search ran past its deadline (``seq2seq-serve``'s ``max_seconds`` per request)."""
