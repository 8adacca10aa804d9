"""CSV result files: a header, then one row per person per frame (format: :mod:`.results`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import SinkError
from ..records import FramePacket
from .atomic import AtomicTextFile
from .results import CSV_COLUMNS, pose_rows


class CsvFileWriter(AtomicTextFile):
    """``write_frame(packet)`` appends the frame's rows and flushes them; ``finish`` publishes the file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "CSV file")
        self._buffer = io.StringIO()
        self._rows = csv.writer(self._buffer, lineterminator="\n")
        try:
            self._emit([list(CSV_COLUMNS)])
        except BaseException:
            self.abort()  # nobody holds this writer yet: its partial file must go now
            raise

    def _emit(self, rows: list[list]) -> None:
        self._rows.writerows(rows)
        self.write(self._buffer.getvalue())
        self._buffer.seek(0)
        self._buffer.truncate()

    def write_frame(self, packet: FramePacket) -> None:
        try:
            rows = pose_rows(packet)
        except ValueError as e:
            raise SinkError(f"csv_writer {str(self.path)!r}: {e}; write JSON lines (.jsonl) instead") from e
        if rows:
            self._emit(rows)
