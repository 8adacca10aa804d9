"""CSV result files: a header, then one row per person per frame (format: :mod:`.results`)."""

from __future__ import annotations

import csv
import io

from ..errors import SinkError
from ..records import FramePacket
from .jsonl_writer import ResultWriter
from .results import CSV_COLUMNS, pose_rows


def _csv_text(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


class CsvFileWriter(ResultWriter):
    """``write_frame(packet)`` appends the frame's rows (one chunk) and flushes them; ``finish`` publishes.

    rotate: see :class:`~.live_text.Rotation` (each segment starts with the header).
    """

    def __init__(self, path, rotate: str = "") -> None:
        super().__init__(path, "CSV file", header=_csv_text([list(CSV_COLUMNS)]), rotate=rotate)

    def write_frame(self, packet: FramePacket) -> None:
        try:
            rows = pose_rows(packet)
        except ValueError as e:
            raise SinkError(f"csv_writer {str(self.path)!r}: {e}; write JSON lines (.jsonl) instead") from e
        if rows:
            self.target.write(_csv_text(rows))
