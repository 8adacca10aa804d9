"""JSON-lines result files: one object per frame, written as the run goes (format: :mod:`.results`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..records import FramePacket
from .atomic import AtomicTextFile
from .results import frame_to_json


class JsonlFileWriter(AtomicTextFile):
    """``write(packet)`` appends the frame's line and flushes it; ``finish`` publishes the file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "JSON-lines file")

    def write_frame(self, packet: FramePacket) -> None:
        self.write(json.dumps(frame_to_json(packet), separators=(",", ":"), allow_nan=False) + "\n")
