"""COCO keypoint results files written as the run goes: a JSON array that ``COCO.loadRes`` reads.

Rows are those of :func:`streampose.evaluation.coco_results.keypoint_results`;
each reaches the partial file as it is written (memory stays bounded) and the
closing bracket is added when the file is published.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SinkError
from ..records import FramePacket
from .atomic import AtomicTextFile


def coco_image_id(packet: FramePacket) -> int:
    """The COCO ``image_id`` of a frame: the number a COCO file name is made of
    (``000000000785.jpg`` → 785) when the frame has one, else the frame index."""
    name = packet.extras.get("file_name") or packet.source_name
    stem = Path(str(name)).stem
    return int(stem) if stem.isdigit() else packet.index


class CocoResultsFile(AtomicTextFile):
    """``write_frame(packet)`` appends the frame's people; ``finish`` closes the array and publishes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "COCO results file")
        self.rows = 0
        self.write("[")

    def write_frame(self, packet: FramePacket) -> None:
        from ..evaluation.coco_results import keypoint_results

        if packet.poses is None or not len(packet.poses):
            return
        for row in keypoint_results(coco_image_id(packet), packet.poses):
            self.write(("," if self.rows else "") + "\n" + json.dumps(row, separators=(",", ":"), allow_nan=False))
            self.rows += 1

    def finish(self) -> None:
        if self.file is not None:
            self.write("\n]\n")
        super().finish()

    def reopen(self) -> None:
        raise SinkError(f"COCO results file {str(self.path)!r} was already completed; a source started after the "
                        "others ended (give each run its own results file)")
