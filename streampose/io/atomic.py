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
