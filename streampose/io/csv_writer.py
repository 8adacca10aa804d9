"""CSV result files: a header, then one row per person per frame (format: :mod:`.results`)."""

from __future__ import annotations

import csv
import io

from ..errors import SinkError
from ..records import FramePacket
from .jsonl_writer import ResultWriter
from .results import CSV_PERSON_COLUMNS, csv_columns, pose_rows


def _csv_text(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


class CsvFileWriter(ResultWriter):
    """``write_frame(packet)`` appends the frame's rows (one chunk) and flushes them; ``finish`` publishes.

    The header names the keypoints of the first people written (their
    keypoint set); people of another set later are a :class:`SinkError`.
    rotate: see :class:`~.live_text.Rotation` (each segment starts with the header).
    """

    def __init__(self, path, rotate: str = "") -> None:
        super().__init__(path, "CSV file", rotate=rotate)
        self._num_keypoints: int | None = None

    def write_frame(self, packet: FramePacket) -> None:
        rows = pose_rows(packet)
        if not rows:
            return
        poses = packet.poses
        if self._num_keypoints is None:
            self._num_keypoints = poses.num_keypoints
            self.target.set_header(_csv_text([list(csv_columns(poses.keypoint_set))]))
        elif poses.num_keypoints != self._num_keypoints:
            raise SinkError(f"csv_writer {str(self.path)!r}: poses with {poses.num_keypoints} keypoints after "
                            f"{self._num_keypoints} in the same file; one CSV holds one keypoint set, "
                            "write JSON lines (.jsonl) instead")
        self.target.write(_csv_text(rows))

    def finish(self) -> None:
        if self._num_keypoints is None:  # nobody found: the person columns alone
            self._num_keypoints = 0
            self.target.set_header(_csv_text([list(CSV_PERSON_COLUMNS)]))
        super().finish()

    def reopen(self) -> None:
        super().reopen()
        if self._num_keypoints == 0:
            # Only the provisional header so far: start again, the next people name the keypoints.
            self.target.clear_header()
            self._num_keypoints = None
