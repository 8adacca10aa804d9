"""Resolving user-given paths, with errors that say what to do."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def resolve_path(path: str | Path) -> Path:
    """A path as given if it exists or is absolute, else relative to the project root.

    Pipeline definitions name weights as ``weights/...``; this lets them work
    whatever the current directory is.
    """
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = PROJECT_ROOT / p
    return candidate if candidate.exists() else p


def existing_file(path: str | Path, what: str, hint: str = "") -> Path:
    """Resolve ``path`` and check it is a readable file, else a one-line UserError.

    what: e.g. "pose checkpoint"; hint: the fix, e.g. where to download it.
    """
    p = resolve_path(path)
    if not p.is_file():
        reason = "is a directory" if p.is_dir() else "not found"
        raise UserError(f"{what} {str(path)!r} {reason}" + (f"; {hint}" if hint else ""))
    return p
