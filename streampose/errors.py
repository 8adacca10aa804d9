"""Exception types.

:class:`UserError` is a problem with what the user gave us (a path, an
option, a checkpoint, a stream address). The CLI prints its message as one
line and exits with code 2, without a traceback, so its message must name the
problem *and* the fix. Anything else escaping a stage is a bug and is
reported with its traceback (exit 1).
"""


class UserError(Exception):
    """Bad input: a one-line message naming the problem and the fix."""


class ConfigError(UserError):
    """A pipeline definition or an option is invalid; the message names the key path."""


class CheckpointError(UserError):
    """A weights file does not fit any known layout, or refuses to load safely."""


class SourceError(UserError):
    """A source cannot be opened or read (missing, corrupt, unreachable)."""


class SinkError(UserError):
    """An output cannot be written."""


class ExportError(UserError):
    """A model cannot be exported, or an exported file cannot run on the chosen backend."""


class StopRequested(Exception):
    """A step asks for a graceful stop of the whole pipeline (e.g. ``q`` in a display window).

    Not a :class:`UserError` and not a failure: the runtime stops the sources,
    lets the sinks finalize their files and exits with code 0.
    """
