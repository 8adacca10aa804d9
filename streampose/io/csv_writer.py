"""CSV result files: a header, then one row per person per frame (format: :mod:`.results`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import SinkError
from ..records import FramePacket
from .atomic import AtomicTextFile
from .results import CSV_PERSON_COLUMNS, csv_columns, pose_rows


class CsvFileWriter(AtomicTextFile):
    """``write_frame(packet)`` appends the frame's rows and flushes them; ``finish`` publishes the file.

    The header names the keypoints of the first people written (their
    keypoint set); people of another set later are a :class:`SinkError`.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, "CSV file")
        self._buffer = io.StringIO()
        self._rows = csv.writer(self._buffer, lineterminator="\n")
        self._num_keypoints: int | None = None

    def _emit(self, rows: list[list]) -> None:
        self._rows.writerows(rows)
        self.write(self._buffer.getvalue())
        self._buffer.seek(0)
        self._buffer.truncate()

    def write_frame(self, packet: FramePacket) -> None:
        rows = pose_rows(packet)
        if not rows:
            return
        poses = packet.poses
        if self._num_keypoints is None:
            self._num_keypoints = poses.num_keypoints
            self._emit([list(csv_columns(poses.keypoint_set))])
        elif poses.num_keypoints != self._num_keypoints:
            raise SinkError(f"csv_writer {str(self.path)!r}: poses with {poses.num_keypoints} keypoints after "
                            f"{self._num_keypoints} in the same file; one CSV holds one keypoint set, "
                            "write JSON lines (.jsonl) instead")
        self._emit(rows)

    def finish(self) -> None:
        if self._num_keypoints is None:  # nobody found: the person columns alone
            self._num_keypoints = 0
            self._emit([list(CSV_PERSON_COLUMNS)])
        super().finish()

    def reopen(self) -> None:
        super().reopen()
        if self._num_keypoints == 0 and self.file is not None:
            # Only the provisional header so far: start again, the next people name the keypoints.
            self.file.seek(0)
            self.file.truncate()
            self._num_keypoints = None
