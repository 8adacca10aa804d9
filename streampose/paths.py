"""Resolving user-given paths, with errors that say what to do.

The bundled weights and pipeline definitions live in the repository as
``weights/`` and ``pipelines/`` at the top level; an installed package
carries them as ``streampose/weights/`` and ``streampose/pipelines/``
(package data, see ``setup.py``). :data:`DATA_ROOTS` lists where a relative
``weights/...`` or ``pipelines/...`` is looked up, in that order, after the
current directory.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
#: the repository root of a source checkout or an editable install (a site-packages
#: directory when installed; then nothing is found there and PACKAGE_DIR answers).
PROJECT_ROOT = PACKAGE_DIR.parent
DATA_ROOTS = (PROJECT_ROOT, PACKAGE_DIR)


def data_dir(name: str) -> Path:
    """The folder of bundled data ``name`` ("weights", "pipelines"): the checkout's, else the package's."""
    for root in DATA_ROOTS:
        if (root / name).is_dir():
            return root / name
    return PROJECT_ROOT / name


def resolve_path(path: str | Path) -> Path:
    """A path as given if it exists or is absolute, else relative to the project root or the package.

    Pipeline definitions name weights as ``weights/...``; this lets them work
    whatever the current directory is, from a checkout or an installed package.
    """
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    for root in DATA_ROOTS:
        candidate = root / p
        if candidate.exists():
            return candidate
    return p


def existing_file(path: str | Path, what: str, hint: str = "") -> Path:
    """Resolve ``path`` and check it is a readable file, else a one-line UserError.

    what: e.g. "pose checkpoint"; hint: the fix, e.g. where to download it.
    """
    p = resolve_path(path)
    if not p.is_file():
        reason = "is a directory" if p.is_dir() else "not found"
        raise UserError(f"{what} {str(path)!r} {reason}" + (f"; {hint}" if hint else ""))
    return p
