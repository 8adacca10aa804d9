"""Where result lines go: atomic files (offline), files readable as they grow (live), rotated segments, stdout.

Every target takes whole text chunks (complete lines) through ``write`` and
flushes each one to the operating system at once, so memory stays bounded and
a reader never sees half a line:

- :class:`ResultFile`: starts as an :class:`~streampose.io.atomic.AtomicTextFile`
  (hidden partial name, published when complete: offline runs). When a live
  source starts, :meth:`ResultFile.go_live` publishes it under its final name
  at once and keeps appending there, so ``tail -f`` shows every line as it is
  made; a failed run then keeps the complete lines it has.
- :class:`RotatingFile`: ``--rotate 10m`` / ``--rotate 100MB``: numbered
  segments ``name.000001.ext``, each written under its hidden partial name
  and published atomically when it is complete (its age or size reached, or
  the run ended); numbering continues after segments already in the folder.
  ``header`` (CSV) starts every segment.
- :class:`StdoutText`: ``--output -``, lines to standard output (logs go to stderr).
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import SinkError
from .atomic import AtomicTextFile, discard, partial_path, publish

_ROTATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|B|kB|KB|MB|GB)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_BYTES = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


@dataclass(frozen=True)
class Rotation:
    """Start a new segment after ``max_age_s`` seconds or ``max_bytes`` bytes (one of them is 0)."""

    max_age_s: float = 0.0
    max_bytes: int = 0

    @classmethod
    def parse(cls, text: str) -> "Rotation":
        """``10m``, ``30s``, ``1h``, ``1d`` (age) or ``100MB``, ``500kB``, ``1GB`` (size); ValueError else."""
        match = _ROTATE.match(text or "")
        if not match or float(match.group(1)) <= 0:
            raise ValueError(f"rotate must be an age like 10m, 30s, 1h or a size like 100MB, 500kB; got {text!r}")
        value, unit = float(match.group(1)), match.group(2)
        if unit in _SECONDS:
            return cls(max_age_s=value * _SECONDS[unit])
        return cls(max_bytes=max(1, int(value * _BYTES[unit])))


class ResultFile(AtomicTextFile):
    """An atomic result file that can turn live (see the module docstring)."""

    def __init__(self, path: Path, what: str, header: str = "") -> None:
        super().__init__(path, what)
        self.live = False
        if header:
            self.write(header)

    def set_header(self, text: str) -> None:
        """Write the header (CSV: known once the first people are)."""
        self.write(text)

    def clear_header(self) -> None:
        """Drop what was written so far (only a provisional header): the file starts again."""
        if self.file is not None:
            self.file.seek(0)
            self.file.truncate()

    def go_live(self) -> None:
        """Publish now under the final name and keep appending there (the open file follows the rename)."""
        if self.live or self.file is None:
            return
        self.file.flush()
        publish(self.partial, self.path)
        self.live = True

    def finish(self) -> None:
        if not self.live:
            super().finish()
        elif self.file is not None:
            file, self.file = self.file, None
            file.close()

    def reopen(self) -> None:
        if not self.live:
            super().reopen()
        elif self.file is None:
            self.file = open(self.path, "a", encoding="utf-8", newline="")

    def abort(self) -> None:
        """Not live: delete the unfinished file; live: it was readable all along, keep its complete lines."""
        if not self.live:
            super().abort()
        else:
            self.finish()


class RotatingFile:
    """Numbered segments published atomically (see the module docstring)."""

    def __init__(self, path: Path, what: str, rotation: Rotation, header: str = "") -> None:
        self.path, self.what, self.rotation, self.header = path, what, rotation, header
        pattern = re.compile(re.escape(path.stem) + r"\.(\d{6})" + re.escape(path.suffix) + "$")
        existing = [int(m.group(1)) for p in path.parent.glob(f"{path.stem}.*{path.suffix}")
                    if (m := pattern.match(p.name))]
        self.number = max(existing, default=0)
        self.file = None
        self.published: list[Path] = []
        self._opened_at = 0.0
        self._bytes = 0
        self._closed = False
        self._open_next()

    def segment_path(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.{number:06d}{self.path.suffix}")

    def _open_next(self) -> None:
        self.number += 1
        self.current = self.segment_path(self.number)
        try:
            self.file = open(partial_path(self.current), "w", encoding="utf-8", newline="")
        except OSError as e:
            raise SinkError(f"cannot create {self.what} segment {str(self.current)!r} ({e.strerror}); "
                            "check the folder is writable") from e
        self._opened_at = time.monotonic()
        self._bytes = 0
        self._lines = 0
        if self.header:
            self._raw_write(self.header)

    def _raw_write(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()
        self._bytes += len(text.encode("utf-8"))

    def _publish_current(self) -> None:
        file, self.file = self.file, None
        file.close()
        if self._lines:
            publish(partial_path(self.current), self.current)
            self.published.append(self.current)
        else:  # nothing but a header: no empty segment
            discard(partial_path(self.current))
            self.number -= 1

    @property
    def is_open(self) -> bool:
        return self.file is not None

    def write(self, text: str) -> None:
        if self.file is None:
            return
        due = (self.rotation.max_age_s and time.monotonic() - self._opened_at >= self.rotation.max_age_s) or \
              (self.rotation.max_bytes and self._bytes + len(text.encode("utf-8")) > self.rotation.max_bytes)
        if due and self._lines:
            self._publish_current()
            self._open_next()
        self._raw_write(text)
        self._lines += 1

    def set_header(self, text: str) -> None:
        """The header of this segment (written now) and of every later one."""
        self.header = text
        if self.file is not None:
            self._raw_write(text)

    def clear_header(self) -> None:
        """A segment with only a header is never published: nothing to drop but the header itself."""
        self.header = ""

    def go_live(self) -> None:
        """Segments are published as they complete whatever the sources are."""

    def sync(self) -> None:
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def finish(self) -> None:
        if self.file is not None:
            self._publish_current()

    def reopen(self) -> None:
        if self.file is None:
            self._open_next()

    def abort(self) -> None:
        """Segments hold whole lines only: the current one is published too, so no result is lost."""
        self.finish()


class StdoutText:
    """Lines to standard output, flushed one by one (``--output -``)."""

    path = Path("-")

    def __init__(self) -> None:
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    def write(self, text: str) -> None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError as e:  # the reading program went away
            raise SinkError("standard output was closed by the reading program (--output -)") from e

    def set_header(self, text: str) -> None:
        self.write(text)

    def clear_header(self) -> None:
        pass

    def go_live(self) -> None:
        pass

    def sync(self) -> None:
        sys.stdout.flush()

    def finish(self) -> None:
        self._open = False
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            pass

    def reopen(self) -> None:
        self._open = True

    def abort(self) -> None:
        self.finish()


def open_result_target(path: str, what: str, header: str = "", rotate: str = ""):
    """The target for a result file option: stdout for ``-``, rotated segments, or a ResultFile."""
    if path == "-":
        return StdoutText()
    final = Path(path).expanduser()
    if rotate:
        return RotatingFile(final, what, Rotation.parse(rotate), header)
    return ResultFile(final, what, header)
