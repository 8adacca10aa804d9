"""The per-frame results written by the JSON-lines and CSV sinks, and their readers.

JSON lines: one object per frame, in the order frames reached the sink::

    {"source": {"id": 0, "name": "video.mp4"}, "frame": 12, "pts": 1.2, "width": 768, "height": 432,
     "detections": [{"box": [x1, y1, x2, y2], "score": 0.91, "class_id": 0, "track_id": 3}, ...],
     "poses": [{"box": [x1, y1, x2, y2], "score": 0.87, "track_id": 3,
                "keypoints": [[x, y], ...], "keypoint_scores": [0.9, ...]}, ...]}

``detections`` / ``poses`` are ``null`` when no step of the pipeline produced
them (and ``[]`` when one did and found nobody); ``pts`` is ``null`` for
images. CSV: one row per person per frame (frames without people have no
row), header ``source, source_name, frame, pts, track_id, score, x1, y1, x2,
y2`` then ``<name>_x, <name>_y, <name>_score`` for each keypoint of the
poses' keypoint set (the 17 COCO names, the 14 CrowdPose names, ...: see
:mod:`streampose.keypoint_sets`). The header is written with the first row,
when the keypoint set is known; a file without people has the ten person
columns only. One file holds one keypoint set.

Pixel coordinates are rounded to 0.001 px, scores to 1e-5 and timestamps to
1 µs, so the files stay readable; reading them back gives those rounded values
(float32 arrays), and NaN is written as ``null`` (JSON) or empty (CSV).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..keypoint_sets import COCO_17, KeypointSet, keypoint_set_for
from ..records import Detections, FramePacket, Poses
from .urls import redact_url

PIXEL_DECIMALS = 3
SCORE_DECIMALS = 5
TIME_DECIMALS = 6

#: The columns before the keypoints.
CSV_PERSON_COLUMNS: tuple[str, ...] = (
    "source", "source_name", "frame", "pts", "track_id", "score", "x1", "y1", "x2", "y2")
_KEYPOINT_PARTS = ("x", "y", "score")


def csv_columns(keypoint_set: KeypointSet = COCO_17) -> tuple[str, ...]:
    """The CSV header for poses of ``keypoint_set``."""
    return CSV_PERSON_COLUMNS + tuple(
        f"{name}_{part}" for name in keypoint_set.keypoint_names for part in _KEYPOINT_PARTS)


#: The header of a COCO-17 CSV file.
CSV_COLUMNS: tuple[str, ...] = csv_columns(COCO_17)


@dataclass
class FrameResult:
    """One frame's results as read back from a JSON-lines or CSV file.

    width/height are None when read from CSV (which does not store them);
    detections are always None from CSV (it stores poses only).
    """

    source_id: int
    source_name: str
    index: int
    pts_s: float | None
    width: int | None
    height: int | None
    detections: Detections | None
    poses: Poses | None


def _values(array: np.ndarray, decimals: int) -> list:
    """Rounded nested lists; non-finite values become None (JSON ``null``)."""
    rounded = np.round(array.astype(np.float64), decimals)
    finite = np.isfinite(rounded)
    if finite.all():
        return rounded.tolist()
    return np.where(finite, rounded, None).tolist()


def _time(pts_s: float | None) -> float | None:
    return None if pts_s is None else round(float(pts_s), TIME_DECIMALS)


def frame_to_json(packet: FramePacket) -> dict[str, Any]:
    """The JSON-lines object of one frame (see the module docstring)."""
    record: dict[str, Any] = {
        "source": {"id": packet.source_id, "name": redact_url(packet.source_name)},
        "frame": packet.index,
        "pts": _time(packet.pts_s),
        "width": int(packet.shape[1]),
        "height": int(packet.shape[0]),
        "detections": None,
        "poses": None,
    }
    det = packet.detections
    if det is not None:
        boxes, scores = _values(det.xyxy, PIXEL_DECIMALS), _values(det.scores, SCORE_DECIMALS)
        record["detections"] = [
            {"box": boxes[i], "score": scores[i], "class_id": int(det.class_ids[i]), "track_id": int(det.track_ids[i])}
            for i in range(len(det))
        ]
    poses = packet.poses
    if poses is not None:
        boxes, scores = _values(poses.xyxy, PIXEL_DECIMALS), _values(poses.scores, SCORE_DECIMALS)
        keypoints = _values(poses.keypoints, PIXEL_DECIMALS)
        keypoint_scores = _values(poses.keypoint_scores, SCORE_DECIMALS)
        record["poses"] = [
            {"box": boxes[i], "score": scores[i], "track_id": int(poses.track_ids[i]),
             "keypoints": keypoints[i], "keypoint_scores": keypoint_scores[i]}
            for i in range(len(poses))
        ]
    return record


def frame_from_json(record: dict[str, Any]) -> FrameResult:
    """Inverse of :func:`frame_to_json` (up to its rounding)."""
    detections = poses = None
    if record["detections"] is not None:
        items = record["detections"]
        detections = Detections(
            np.array([d["box"] for d in items], np.float32).reshape(-1, 4),
            np.array([d["score"] for d in items], np.float32),
            np.array([d["class_id"] for d in items], np.int64),
            np.array([d["track_id"] for d in items], np.int64),
        )
    if record["poses"] is not None:
        items = record["poses"]
        if items:
            poses = Poses(
                np.array([p["keypoints"] for p in items], np.float32),
                np.array([p["keypoint_scores"] for p in items], np.float32),
                np.array([p["score"] for p in items], np.float32),
                np.array([p["box"] for p in items], np.float32),
                np.array([p["track_id"] for p in items], np.int64),
            )
        else:
            poses = Poses.empty()
    return FrameResult(source_id=record["source"]["id"], source_name=record["source"]["name"],
                       index=record["frame"], pts_s=record["pts"], width=record["width"], height=record["height"],
                       detections=detections, poses=poses)


def read_jsonl(path: str | Path) -> Iterator[FrameResult]:
    """The frames of a JSON-lines result file, one at a time (bounded memory)."""
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line_number}: not a JSON object ({e.msg})") from e
            yield frame_from_json(record)


def pose_rows(packet: FramePacket) -> list[list]:
    """The CSV rows (one per person) of one frame, in ``csv_columns(packet.poses.keypoint_set)`` order."""
    poses = packet.poses
    if poses is None or len(poses) == 0:
        return []
    per_keypoint = np.concatenate(
        [np.round(poses.keypoints.astype(np.float64), PIXEL_DECIMALS),
         np.round(poses.keypoint_scores.astype(np.float64), SCORE_DECIMALS)[:, :, None]], axis=2,
    ).reshape(len(poses), -1)
    boxes = np.round(poses.xyxy.astype(np.float64), PIXEL_DECIMALS)
    scores = np.round(poses.scores.astype(np.float64), SCORE_DECIMALS)
    head = [packet.source_id, redact_url(packet.source_name), packet.index, _blank(_time(packet.pts_s))]
    return [head + [int(poses.track_ids[i]), _blank(scores[i]), *map(_blank, boxes[i]), *map(_blank, per_keypoint[i])]
            for i in range(len(poses))]


def _blank(value: float | None) -> Any:
    """CSV cell: '' for missing or non-finite numbers."""
    if value is None or not np.isfinite(value):
        return ""
    return float(value)


def _number(cell: str) -> float:
    return float(cell) if cell != "" else float("nan")


def read_csv(path: str | Path) -> Iterator[FrameResult]:
    """The frames of a CSV result file that have people, one at a time, poses grouped per frame."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        num_keypoints = _keypoints_in_header(header)
        if num_keypoints is None:
            raise ValueError(f"{path}: not a streampose CSV (unexpected header)")
        key: tuple[int, int] | None = None
        rows: list[list[str]] = []
        for row in reader:
            row_key = (int(row[0]), int(row[2]))
            if rows and row_key != key:
                yield _csv_frame(rows, num_keypoints)
                rows = []
            key = row_key
            rows.append(row)
        if rows:
            yield _csv_frame(rows, num_keypoints)


def _keypoints_in_header(header: list[str] | None) -> int | None:
    """K of a streampose CSV header (its keypoint set's names), None if it is not one."""
    if header is None or tuple(header[:len(CSV_PERSON_COLUMNS)]) != CSV_PERSON_COLUMNS:
        return None
    extra = len(header) - len(CSV_PERSON_COLUMNS)
    if extra % len(_KEYPOINT_PARTS):
        return None
    num_keypoints = extra // len(_KEYPOINT_PARTS)
    return num_keypoints if tuple(header) == csv_columns(keypoint_set_for(num_keypoints)) else None


def _csv_frame(rows: list[list[str]], num_keypoints: int) -> FrameResult:
    numbers = np.array([[_number(c) for c in row[6:]] for row in rows], np.float32)
    per_keypoint = numbers[:, 4:].reshape(len(rows), num_keypoints, 3)
    poses = Poses(per_keypoint[:, :, :2], per_keypoint[:, :, 2], np.array([_number(r[5]) for r in rows]),
                  numbers[:, :4], np.array([int(r[4]) for r in rows], np.int64))
    first = rows[0]
    return FrameResult(source_id=int(first[0]), source_name=first[1], index=int(first[2]),
                       pts_s=None if first[3] == "" else float(first[3]), width=None, height=None,
                       detections=None, poses=poses)
