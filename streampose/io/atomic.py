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


def publish(partial: Path, final: Path, what: str = "output") -> None:
    """Move a complete ``partial`` file to its ``final`` name (atomic on one file system).

    When that fails (an immutable or read-only target, the folder gone) the
    partial file is deleted and a one-line SinkError names the file and the cause.
    """
    try:
        os.replace(partial, final)
    except OSError as e:
        discard(partial)
        raise output_error(what, final, e, "could not be put in place") from e


def output_error(what: str, path: Path, error: OSError, doing: str = "could not be written") -> "SinkError":
    """The one-line error of a failed write: the file, what failed, the cause (ENOSPC, EPERM, ...)."""
    cause = error.strerror or str(error) or type(error).__name__
    return SinkError(f"{what} {str(path)!r} {doing} ({cause}); its partial file was deleted; "
                     "free some space, or check the file and folder permissions, or write elsewhere")


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
        try:
            self.file.write(text)
            self.file.flush()
        except OSError as e:  # ENOSPC, EIO, a quota: an output error, not a bug
            raise output_error(self.what, self.path, e) from e

    def sync(self) -> None:
        """Flush to the disk (a source ended: what it produced survives a crash)."""
        if self.file is not None:
            try:
                self.file.flush()
                os.fsync(self.file.fileno())
            except OSError as e:
                raise output_error(self.what, self.path, e) from e

    def finish(self) -> None:
        """Close and publish under the final name; on failure nothing is left (SinkError)."""
        if self.file is None:
            return
        file, self.file = self.file, None
        try:
            file.close()  # the last flush may fail (ENOSPC): the file is then thrown away
        except OSError as e:
            discard(self.partial)
            raise output_error(self.what, self.path, e) from e
        publish(self.partial, self.path, f"{self.what}")

    def reopen(self) -> None:
        if self.file is None:
            os.replace(self.path, self.partial)
            self.file = self._open("a")

    def abort(self) -> None:
        """Throw the partial file away; never raises for the write error that caused the abort."""
        if self.file is not None:
            file, self.file = self.file, None
            try:
                file.close()  # retries the failed flush; its error must not skip the discard
            except OSError:
                pass
        discard(self.partial)
