"""The errors a user can cause; the command-line entry points print them as one line."""


class Seq2SeqError(Exception):
    """Base class: bad input, reported without a traceback."""


class CorpusError(Seq2SeqError):
    """A corpus file is missing or malformed."""


class CheckpointError(Seq2SeqError):
    """A checkpoint is missing, corrupt or not a seq2seq checkpoint."""


class ConfigError(Seq2SeqError, ValueError):
    """A configuration value is invalid."""
