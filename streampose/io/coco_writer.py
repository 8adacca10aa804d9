"""COCO keypoint results: rows from pose records, and files written as the run goes (a JSON array that
``COCO.loadRes`` reads; format in :mod:`streampose.evaluation.coco_results`).

Rows are those of :func:`keypoint_results`;
each reaches the partial file as it is written (memory stays bounded) and the
closing bracket is added when the file is published.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SinkError
from ..records import FramePacket, Poses
from .atomic import AtomicTextFile

#: COCO category id of "person".
PERSON_CATEGORY_ID = 1


def keypoint_results(image_id: int, poses: Poses, scores: np.ndarray | None = None) -> list[dict[str, Any]]:
    """COCO keypoint result records for the people of one image.

    poses: N people in image pixels; scores: (N,) person scores to write,
    default ``poses.scores``. Returns N dicts of plain Python numbers.
    """
    n = len(poses)
    person_scores = poses.scores if scores is None else np.asarray(scores, dtype=np.float64)
    if person_scores.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), got {person_scores.shape}")
    flat = np.concatenate([poses.keypoints.astype(np.float64),
                           poses.keypoint_scores.astype(np.float64)[:, :, None]], axis=2).reshape(n, 3 * poses.num_keypoints)
    return [
        {"image_id": int(image_id), "category_id": PERSON_CATEGORY_ID,
         "keypoints": [float(v) for v in flat[i]], "score": float(person_scores[i])}
        for i in range(n)
    ]


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
