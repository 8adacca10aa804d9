"""The run manifest of a batch: item → status, frames, seconds, error, node, and its check.

``<output dir>/manifest.json`` is rewritten (atomically: a temporary file then
a rename) by the driver each time an item ends, so it is always a complete
JSON document even if the driver is killed. An entry::

    "clip-1a2b3c4d": {"source": "videos/clip.mp4", "status": "done", "frames": 300,
                      "seconds": 9.8, "error": null, "node": "10.0.0.5", "attempts": 1,
                      "outputs": {"clip-1a2b3c4d.jsonl": "<sha256>"}}

status is ``done`` or ``failed`` (``error`` is then the one-line reason).
Resuming trusts an item only when it is ``done`` here *and* every output it
lists exists with the recorded SHA-256 (and the JSONL has ``frames`` lines):
a file that was replaced, truncated or deleted since makes the item run again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
_FORMAT = 1


@dataclass
class ItemRecord:
    """One item's entry; ``outputs`` maps published file names (in the output dir) to SHA-256."""

    source: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    node: str | None = None
    attempts: int = 0
    outputs: dict[str, str] = field(default_factory=dict)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


class RunManifest:
    """The manifest of one output directory: load, check, update and save."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.path = output_dir / MANIFEST_NAME
        self.items: dict[str, ItemRecord] = {}
        self.pipeline = ""

    @classmethod
    def load(cls, output_dir: Path) -> "RunManifest":
        """The directory's manifest (empty when there is none; unreadable → ValueError)."""
        manifest = cls(output_dir)
        if not manifest.path.exists():
            return manifest
        try:
            data = json.loads(manifest.path.read_text(encoding="utf-8"))
            manifest.pipeline = data.get("pipeline", "")
            manifest.items = {name: ItemRecord(**entry) for name, entry in data["items"].items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"manifest {str(manifest.path)!r} is unreadable ({e}); move it away to start afresh") from e
        return manifest

    def is_complete(self, name: str) -> bool:
        """True when the item is recorded done and its published files are the ones recorded."""
        record = self.items.get(name)
        if record is None or record.status != "done" or not record.outputs:
            return False
        for file_name, sha256 in record.outputs.items():
            path = self.output_dir / file_name
            if not path.is_file() or file_sha256(path) != sha256:
                return False
            if path.suffix == ".jsonl" and count_lines(path) != record.frames:
                return False
        return True

    def record(self, name: str, record: ItemRecord) -> None:
        self.items[name] = record
        self.save()

    def save(self) -> None:
        data: dict[str, Any] = {"format": _FORMAT, "pipeline": self.pipeline,
                                "items": {name: asdict(r) for name, r in sorted(self.items.items())}}
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)
