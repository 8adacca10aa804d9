"""Person boxes for top-down evaluation: from the ground truth or from a detections file.

Both follow the official HRNet evaluation (deep-high-resolution-net.pytorch
``lib/dataset/coco.py``):

- ground truth (``TEST.USE_GT_BBOX``): non-crowd person annotations with at
  least one labelled keypoint and a positive area; the ``[x, y, w, h]`` box is
  clipped to the image with the inclusive-pixel convention
  (``x2 = min(W - 1, x1 + max(0, w - 1))``); box score 1;
- detections (``TEST.COCO_BBOX_FILE``, e.g.
  ``COCO_val2017_detections_AP_H_56_person.json``): COCO results records
  ``{image_id, category_id, bbox: [x, y, w, h], score}`` of category 1 with
  ``score >= IMAGE_THRE`` (0.0), used as given: ``xyxy = [x, y, x + w, y + h]``.

Boxes are returned per image id as ``(xyxy (N, 4) float32, scores (N,) float32)``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..paths import existing_file
from .coco_results import PERSON_CATEGORY_ID

logger = logging.getLogger(__name__)

BoxesByImage = dict[int, tuple[np.ndarray, np.ndarray]]


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


def _pack(rows: list[list[float]], scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return _empty()
    return np.asarray(rows, np.float32).reshape(-1, 4), np.asarray(scores, np.float32)


def ground_truth_boxes(coco) -> BoxesByImage:
    """Person boxes of every image of a pycocotools ``COCO`` annotation set, official cleaning."""
    boxes: BoxesByImage = {}
    for image_id, image in coco.imgs.items():
        width, height = image["width"], image["height"]
        rows, scores = [], []
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0) or ann["category_id"] != PERSON_CATEGORY_ID:
                continue
            x, y, w, h = ann["bbox"]
            x1, y1 = max(0.0, x), max(0.0, y)
            x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
            y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
            if ann["area"] <= 0 or x2 < x1 or y2 < y1 or max(ann["keypoints"]) == 0:
                continue
            rows.append([x1, y1, x2, y2])
            scores.append(1.0)
        boxes[image_id] = _pack(rows, scores)
    return boxes


def _finite_numbers(values: Any, count: int) -> bool:
    return (isinstance(values, list) and len(values) == count
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))


def detection_file_boxes(path: str | Path, coco, *, min_score: float = 0.0) -> BoxesByImage:
    """Person boxes of a COCO detection results file, for the images of ``coco``.

    Records of other categories, with ``score < min_score`` or for images
    outside the annotations (e.g. a whole-val2017 file used with a subset of
    its annotations) are skipped. Raises UserError when the file is missing,
    is not a list of ``{image_id, category_id, bbox, score}`` records, or
    shares no image with the annotations.
    """
    hint = "give a COCO detection results file (a JSON list of {image_id, category_id, bbox, score})"
    file = existing_file(path, "detections file", hint)
    name = repr(str(path))
    try:
        with open(file, encoding="utf-8") as f:
            records = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"detections file {name} is not valid JSON (line {e.lineno}: {e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"detections file {name} cannot be read ({e})") from e
    if not isinstance(records, list):
        raise UserError(f"detections file {name} holds a JSON {type(records).__name__}; {hint}")
    rows: dict[int, list[list[float]]] = {image_id: [] for image_id in coco.imgs}
    scores: dict[int, list[float]] = {image_id: [] for image_id in coco.imgs}
    outside = 0
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not all(k in record for k in ("image_id", "category_id", "bbox", "score")):
            raise UserError(f"detections file {name}: record {i} lacks image_id, category_id, bbox or score; {hint}")
        if not _finite_numbers(record["bbox"], 4) or not _finite_numbers([record["score"]], 1):
            raise UserError(f"detections file {name}: record {i} needs bbox [x, y, w, h] and score as finite numbers")
        if record["category_id"] != PERSON_CATEGORY_ID or record["score"] < min_score:
            continue
        if record["image_id"] not in rows:
            outside += 1
            continue
        x, y, w, h = record["bbox"]
        rows[record["image_id"]].append([x, y, x + w, y + h])
        scores[record["image_id"]].append(record["score"])
    if records and outside and all(not r for r in rows.values()):
        raise UserError(f"detections file {name} shares no image id with the annotations; "
                        "were the boxes made for another image set?")
    if outside:
        logger.info("detections file %s: %d person boxes of images outside the annotations skipped", name, outside)
    return {image_id: _pack(rows[image_id], scores[image_id]) for image_id in coco.imgs}
