"""JSON-lines result files: one object per frame, written as the run goes (format: :mod:`.results`)."""

from __future__ import annotations

import json

from ..records import FramePacket
from .live_text import open_result_target
from .results import frame_to_json


class ResultWriter:
    """A result file's target (see :mod:`.live_text`): atomic, live, rotated or stdout."""

    def __init__(self, path: str, what: str, header: str = "", rotate: str = "") -> None:
        self.target = open_result_target(str(path), what, header, rotate)

    @property
    def path(self):
        return self.target.path

    @property
    def is_open(self) -> bool:
        return self.target.is_open

    def go_live(self) -> None:
        self.target.go_live()

    def sync(self) -> None:
        self.target.sync()

    def finish(self) -> None:
        self.target.finish()

    def reopen(self) -> None:
        self.target.reopen()

    def abort(self) -> None:
        self.target.abort()


def frame_line(packet: FramePacket) -> str:
    """The JSON line of one frame (what JSON-lines files, stdout and MQTT messages carry)."""
    return json.dumps(frame_to_json(packet), separators=(",", ":"), allow_nan=False)


class JsonlFileWriter(ResultWriter):
    """``write_frame(packet)`` appends the frame's line and flushes it; ``finish`` publishes the file.

    path ``-`` writes to standard output; rotate: see :class:`~.live_text.Rotation`.
    """

    def __init__(self, path, rotate: str = "") -> None:
        super().__init__(path, "JSON-lines file", rotate=rotate)

    def write_frame(self, packet: FramePacket) -> None:
        self.target.write(frame_line(packet) + "\n")
