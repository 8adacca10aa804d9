"""The items of a batch input, and the output name of each.

An input is one of:

- a folder: every video file under it (recursively) is an item, and every
  folder under it (itself included) that holds image files is an image-folder
  item;
- a glob pattern (``*``, ``?``, ``[``; ``**`` recurses): every matching video
  file or folder is an item;
- a manifest file (``.txt``, ``.list``, ``.lst``): one path or URL per line,
  blank lines and ``#`` comments ignored, relative paths taken from the
  manifest's folder.

An item's output name is its file or folder name made file-system safe plus
8 hex digits of a hash of its full path, so two ``clip.mp4`` in different
folders never share an output, and the same item always gets the same name
(which is what lets a re-run find it).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

MANIFEST_SUFFIXES = (".txt", ".list", ".lst")
# Files that are neither media nor images are not items (a README next to the videos).
_SKIPPED_SUFFIXES = (".txt", ".md", ".json", ".jsonl", ".csv", ".toml", ".yaml", ".yml", ".log", ".list",
                     ".lst", ".srt", ".vtt", ".py", ".sh", ".partial")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Item:
    """One unit of a corpus: ``spec`` is what the pipeline opens (``--source`` form), ``name`` its output stem."""

    spec: str
    name: str


def output_name(spec: str) -> str:
    """``<safe base name>-<8 hex digits of the spec's hash>``: unique per spec, stable across runs."""
    base = spec.rstrip("/").rsplit("/", 1)[-1] or "item"
    safe = _UNSAFE.sub("_", base).strip("._") or "item"
    digest = hashlib.sha1(spec.encode("utf-8")).hexdigest()[:8]
    return f"{safe[:80]}-{digest}"


def _is_image(path: Path) -> bool:
    from ..io.image_sources import IMAGE_EXTENSIONS

    return path.suffix.lower() in IMAGE_EXTENSIONS


def _is_media_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and not _is_image(path) \
        and path.suffix.lower() not in _SKIPPED_SUFFIXES


def _folder_items(root: Path) -> list[str]:
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        paths = [here / f for f in sorted(files)]
        if any(_is_image(p) for p in paths):
            found.append(str(here))
        found += [str(p) for p in paths if _is_media_file(p)]
    return found


def _manifest_items(manifest: Path) -> list[str]:
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read manifest {str(manifest)!r} ({e}); give a text file with one path per line") from e
    found = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if "://" in entry or entry.startswith("lavfi:") or os.path.isabs(entry):
            found.append(entry)
        else:
            found.append(str(manifest.parent / entry))
    return found


def discover_items(input_spec: str) -> list[Item]:
    """The items named by ``input_spec`` (see the module docstring), in a stable order.

    Raises UserError (one line) when the input does not exist, matches
    nothing, or names the same item twice.
    """
    path = Path(input_spec).expanduser()
    if path.is_dir():
        specs = _folder_items(path)
        what = f"folder {input_spec!r}"
    elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        specs = _manifest_items(path)
        what = f"manifest {input_spec!r}"
    elif path.is_file():
        specs = [input_spec]
        what = f"file {input_spec!r}"
    elif glob.has_magic(input_spec):
        specs = []
        for match in sorted(glob.glob(os.path.expanduser(input_spec), recursive=True)):
            p = Path(match)
            if p.is_dir() or _is_media_file(p):
                specs.append(match)
        what = f"pattern {input_spec!r}"
    else:
        raise UserError(f"input {input_spec!r} not found; give a folder, a glob pattern or a manifest file "
                        f"({' '.join(MANIFEST_SUFFIXES)}) of videos or image folders")
    if not specs:
        raise UserError(f"{what} names no video or image folder; check the path")
    items = [Item(spec, output_name(spec)) for spec in specs]
    seen: dict[str, str] = {}
    for item in items:
        if item.name in seen:
            raise UserError(f"{what} names {item.spec!r} twice; list each item once")
        seen[item.name] = item.spec
    return items
