"""Files that appear under their final name only once complete.

Sinks write to a hidden partial name in the same folder (``.name.partial.ext``,
the extension kept so FFmpeg still infers the container) and rename it over
the final name when they finalize; when a run fails they delete it, so a
failed run leaves nothing half-written under the name the user asked for.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import SinkError


def partial_path(final: Path) -> Path:
    """The hidden name a file is written under until it is complete."""
    return final.with_name(f".{final.stem}.partial{final.suffix}")


def publish(partial: Path, final: Path) -> None:
    """Move a complete ``partial`` file to its ``final`` name (atomic on one file system)."""
    os.replace(partial, final)


def discard(partial: Path) -> None:
    """Delete a partial file if it is there."""
    try:
        partial.unlink()
    except FileNotFoundError:
        pass


def check_writable_dir(folder: Path, what: str) -> None:
    """SinkError unless a file can be created in ``folder`` (tried for real: permissions, read-only mounts)."""
    if not folder.is_dir():
        reason = "is not a folder" if folder.exists() else "does not exist"
        raise SinkError(f"cannot write {what}: folder {str(folder)!r} {reason}; create it or choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".streampose-probe-"):
            pass
    except OSError as e:
        raise SinkError(f"cannot write {what}: folder {str(folder)!r} is not writable ({e.strerror}); "
                        "choose another path") from e


class AtomicTextFile:
    """A text file written under its partial name, published by :meth:`finish`, deleted by :meth:`abort`.

    Every :meth:`write` is flushed to the operating system at once, so the
    partial file grows as the run goes and memory stays bounded. After
    ``finish``, :meth:`reopen` moves the file back to its partial name to
    append more (a source that starts after the others ended).
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.partial = partial_path(path)
        self.what = what
        self.file = self._open("w")

    def _open(self, mode: str):
        try:
            return open(self.partial, mode, encoding="utf-8", newline="")
        except OSError as e:
            raise SinkError(f"cannot create {self.what} {str(self.path)!r} ({e.strerror}); "
                            "check the folder is writable") from e

    @property
    def is_open(self) -> bool:
        return self.file is not None

    def write(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()

    def sync(self) -> None:
        """Flush to the disk (a source ended: what it produced survives a crash)."""
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def finish(self) -> None:
        if self.file is None:
            return
        file, self.file = self.file, None
        file.close()
        publish(self.partial, self.path)

    def reopen(self) -> None:
        if self.file is None:
            os.replace(self.path, self.partial)
            self.file = self._open("a")

    def abort(self) -> None:
        if self.file is not None:
            file, self.file = self.file, None
            file.close()
        discard(self.partial)
