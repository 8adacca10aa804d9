"""Pose results in the COCO keypoint results format.

One record per person::

    {"image_id": int, "category_id": 1,
     "keypoints": [x0, y0, s0, x1, y1, s1, ...],   # 3 * K floats, pixels
     "score": float}

x, y are source-image pixels and s the keypoint score (the official
evaluations write the heatmap maximum there; pycocotools ignores it). This is
what ``COCO.loadRes`` reads and what the COCO evaluation server accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..errors import SinkError
# The records → COCO rows conversion lives with the results file writer (the I/O layer);
# re-exported here for the evaluation.
from ..io.coco_writer import PERSON_CATEGORY_ID, keypoint_results  # noqa: F401


class KeypointResultsWriter:
    """Writes result records to a JSON array file as they come.

    Records reach the disk as they are written, so an interrupted run leaves
    the people of the images done so far (the file is then missing its
    closing bracket). Use as a context manager or call :meth:`close`.
    Raises :class:`SinkError` when the file cannot be written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")
            self._file.write("[")
        except OSError as e:
            raise SinkError(f"results file {str(path)!r} cannot be written ({e.strerror}); "
                            "choose another --results-out") from e

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        try:
            for record in records:
                self._file.write(("\n" if self.count == 0 else ",\n") + json.dumps(record))
                self.count += 1
            self._file.flush()
        except OSError as e:
            raise SinkError(f"writing results file {str(self.path)!r} failed ({e.strerror})") from e

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.write("\n]\n")
        finally:
            self._file.close()

    def __enter__(self) -> "KeypointResultsWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_keypoint_results(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write all records to ``path`` (a JSON array); returns the path."""
    with KeypointResultsWriter(path) as writer:
        writer.write(records)
    return writer.path
