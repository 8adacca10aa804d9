"""COCO keypoint evaluation with pycocotools, behind checks that give one-line errors.

:func:`evaluate_keypoints` runs the official ``COCOeval(iouType="keypoints")``
(the same calls as the HRNet evaluation, ``lib/dataset/coco.py``
``_do_python_keypoint_eval``) and returns its ten summary numbers by name.
Files are checked first, so a wrong or mismatched file is a
:class:`~streampose.errors.UserError` naming the file and the problem rather
than a ``KeyError`` deep inside pycocotools.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError
from ..paths import existing_file

logger = logging.getLogger(__name__)

#: Names of ``COCOeval.stats`` for keypoints, in order.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

_STAT_LABELS = {
    "AP": "AP @[OKS=0.50:0.95 | all]", "AP50": "AP @[OKS=0.50 | all]", "AP75": "AP @[OKS=0.75 | all]",
    "APm": "AP @[OKS=0.50:0.95 | medium]", "APl": "AP @[OKS=0.50:0.95 | large]",
    "AR": "AR @[OKS=0.50:0.95 | all]", "AR50": "AR @[OKS=0.50 | all]", "AR75": "AR @[OKS=0.75 | all]",
    "ARm": "AR @[OKS=0.50:0.95 | medium]", "ARl": "AR @[OKS=0.50:0.95 | large]",
    "AP_easy": "AP @[OKS=0.50:0.95 | easy]", "AP_medium": "AP @[OKS=0.50:0.95 | medium crowding]",
    "AP_hard": "AP @[OKS=0.50:0.95 | hard]",
}

_GT_ANNOTATION_KEYS = ("image_id", "category_id", "keypoints", "bbox", "area", "num_keypoints")


def _read_json(path: str | Path, what: str, hint: str) -> tuple[Path, Any]:
    file = existing_file(path, what, hint)
    try:
        with open(file, encoding="utf-8") as f:
            return file, json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {str(path)!r} is not valid JSON (line {e.lineno}: {e.msg})") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {str(path)!r} is not a text JSON file") from e
    except OSError as e:
        raise UserError(f"{what} {str(path)!r} cannot be read ({e.strerror})") from e


def load_ground_truth(annotations_json: str | Path, required_keys: Sequence[str] = _GT_ANNOTATION_KEYS):
    """A checked ``pycocotools.coco.COCO`` of a person-keypoints annotation file.

    required_keys: keys every annotation must have (CrowdPose files have no
    ``area``: its evaluation uses the box area).

    Raises UserError for a missing or unreadable file, invalid JSON, a file
    that is not COCO keypoint annotations (e.g. an ``instances_*.json`` or a
    results file given by mistake), or annotations that refer to unknown
    images or categories.
    """
    from pycocotools.coco import COCO

    hint = "give a COCO person_keypoints_*.json annotation file"
    _, data = _read_json(annotations_json, "annotation file", hint)
    name = repr(str(annotations_json))
    if isinstance(data, list):
        raise UserError(f"annotation file {name} is a list of records (a results file?); {hint}")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise UserError(f"annotation file {name} lacks 'images', 'annotations' and 'categories' lists; {hint}")
    try:
        image_ids = {int(image["id"]) for image in data["images"]}
        category_ids = {int(c["id"]) for c in data["categories"] if isinstance(c.get("keypoints"), list)}
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"annotation file {name} has an image or category without a valid 'id'; {hint}") from e
    if not category_ids:
        raise UserError(f"annotation file {name} has no category with keypoints; {hint}")
    for i, ann in enumerate(data["annotations"]):
        missing = [k for k in required_keys if k not in ann] if isinstance(ann, dict) else ["all keys"]
        if missing:
            raise UserError(f"annotation file {name}: annotation {i} lacks {', '.join(missing)}; {hint}")
        if ann["image_id"] not in image_ids:
            raise UserError(f"annotation file {name}: annotation {i} refers to image id {ann['image_id']} "
                            "that is not in its 'images'")
        if ann["category_id"] not in category_ids:
            raise UserError(f"annotation file {name}: annotation {i} has category id {ann['category_id']} "
                            "without keypoints")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _num_keypoints(coco, category_id: int) -> int:
    return len(coco.cats[category_id]["keypoints"])


def load_results(results_json: str | Path) -> list[dict[str, Any]]:
    """The records of a COCO keypoint results file (a JSON list); UserError if it is not one."""
    _, data = _read_json(results_json, "results file", "give the JSON list written by --results-out")
    if not isinstance(data, list):
        raise UserError(f"results file {str(results_json)!r} must hold a JSON list of result records, "
                        f"got a JSON {type(data).__name__}")
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_results(records: Sequence[Any], coco, source: str = "results") -> None:
    """Check result records against the ground truth; UserError naming the first problem.

    Each record needs an integer ``image_id`` present in the annotations, a
    keypoint ``category_id`` of the annotations, ``keypoints`` with 3 finite
    numbers per keypoint of that category, and a finite ``score``.
    """
    unknown_images: set[int] = set()
    for i, record in enumerate(records):
        where = f"{source} record {i}"
        if not isinstance(record, dict):
            raise UserError(f"{where} is a {type(record).__name__}, expected an object with image_id, "
                            "category_id, keypoints, score")
        missing = [k for k in ("image_id", "category_id", "keypoints", "score") if k not in record]
        if missing:
            raise UserError(f"{where} lacks {', '.join(missing)} (is it a box detections file?)")
        if not isinstance(record["image_id"], int) or isinstance(record["image_id"], bool):
            raise UserError(f"{where}: image_id {record['image_id']!r} is not an integer")
        if record["category_id"] not in coco.cats or "keypoints" not in coco.cats[record["category_id"]]:
            raise UserError(f"{where}: category_id {record['category_id']!r} is not a keypoint category "
                            f"of the annotations (expected one of {sorted(coco.cats)})")
        expected = 3 * _num_keypoints(coco, record["category_id"])
        keypoints = record["keypoints"]
        if not isinstance(keypoints, list) or len(keypoints) != expected:
            got = f"{len(keypoints)} values" if isinstance(keypoints, list) else type(keypoints).__name__
            raise UserError(f"{where}: keypoints has {got}, expected {expected} (x, y, score per keypoint)")
        if not all(_is_number(v) for v in keypoints):
            raise UserError(f"{where}: keypoints hold a non-number or non-finite value")
        if not _is_number(record["score"]):
            raise UserError(f"{where}: score {record['score']!r} is not a finite number")
        if record["image_id"] not in coco.imgs:
            unknown_images.add(record["image_id"])
    if unknown_images:
        example = sorted(unknown_images)[0]
        raise UserError(f"{source} reference {len(unknown_images)} image id(s) not in the annotations "
                        f"(e.g. {example}); were they made for another annotation file?")


def evaluate_keypoints(
    gt_json: Any,
    results: str | Path | Sequence[dict[str, Any]],
    *,
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR of results against ground truth, by pycocotools.

    gt_json: a person_keypoints annotation file (or a ``COCO`` made from
    one by :func:`load_ground_truth`); results: a results JSON
    path or a list of result records (see :mod:`.coco_results`); image_ids:
    evaluate on these images only (default all images of the annotations, as
    the official protocol: images without results count as misses).

    Returns ``{name: value}`` for the ten ``STAT_NAMES`` (plain floats; -1
    where COCOeval has nothing to average, e.g. no medium-size people).
    Raises UserError for missing, malformed or mismatched files.
    """
    from pycocotools.cocoeval import COCOeval

    coco_gt = load_ground_truth(gt_json) if isinstance(gt_json, (str, Path)) else gt_json
    if isinstance(results, (str, Path)):
        source = f"results file {str(results)!r}"
        records = load_results(results)
    else:
        source = "results"
        records = list(results)
    check_results(records, coco_gt, source)
    if image_ids is not None:
        image_ids = sorted({int(i) for i in image_ids})
        absent = [i for i in image_ids if i not in coco_gt.imgs]
        if absent:
            raise UserError(f"image id {absent[0]} asked for evaluation is not in the annotations")
    with contextlib.redirect_stdout(io.StringIO()) as log:
        coco_dt = _load_detections(coco_gt, records)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        if image_ids is not None:
            evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    logger.debug("pycocotools:\n%s", log.getvalue())
    return {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats)}


def _load_detections(coco_gt, records: list[dict[str, Any]]):
    from pycocotools.coco import COCO

    if records:
        # loadRes adds id/area/bbox to the dicts it gets: give it copies.
        return coco_gt.loadRes([dict(r) for r in records])
    # loadRes cannot take an empty list; no detections is a valid (all-miss) answer.
    empty = COCO()
    empty.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": [],
                     "categories": list(coco_gt.dataset["categories"])}
    empty.createIndex()
    return empty


def format_stats(stats: dict[str, float]) -> str:
    """The stats as a two-column text table, one line per stat ("n/a" where COCOeval gives -1)."""
    shown = [name for name in stats if name in _STAT_LABELS]
    width = max(len(_STAT_LABELS[name]) for name in shown) if shown else len("metric")
    lines = [f"{'metric':<{width}}  value"]
    for name in shown:
        if name in _STAT_LABELS:
            value = "  n/a" if stats[name] == -1 else f"{stats[name]:.3f}"
            lines.append(f"{_STAT_LABELS[name]:<{width}}  {value}")
    return "\n".join(lines)
