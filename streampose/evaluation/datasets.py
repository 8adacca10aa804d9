"""Scoring a keypoint results file against COCO, CrowdPose or OCHuman annotations.

- ``coco``: COCO-17, pycocotools ``COCOeval(iouType="keypoints")`` (the
  official HRNet / HigherHRNet evaluation), stats AP, AP50, AP75, APm, APl,
  AR, AR50, AR75, ARm, ARl;
- ``crowdpose``: CrowdPose-14 (Li et al., CVPR 2019): its sigmas, no
  ``area`` in the annotations (the box area is the object scale), maxDets 20,
  and AP on the crowd-index split of the images as the benchmark reports
  (``crowdIndex`` < 0.2 easy, < 0.8 medium, else hard: the thresholds the
  CrowdPose API's ``summarize`` passes to ``get_type_result``).
  Computed by ``faster-coco-eval`` (``COCOeval_faster(iouType="keypoints_crowd",
  use_area=False)``), a maintained port of the CrowdPose API; stats AP,
  AP50, AP75, AR, AR50, AR75, AP_easy, AP_medium, AP_hard (the last three
  rounded to 4 decimals by the library, as by the CrowdPose API);
- ``ochuman``: OCHuman (Zhang et al., CVPR 2019) COCO-format annotations:
  COCO-17 with heavy occlusion, scored with the COCO keypoint metric by
  ``faster-coco-eval`` (the box area stands in when annotations lack
  ``area``), the COCO stats.

``faster-coco-eval`` is the ``eval`` extra (``pip install streampose[eval]``);
a missing package is a one-line error naming it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..keypoint_sets import COCO_17, CROWDPOSE_14, KeypointSet
from .coco_eval import STAT_NAMES, check_results, evaluate_keypoints, load_ground_truth, load_results

logger = logging.getLogger(__name__)

#: CrowdPose stats, in the order ``COCOeval.stats`` holds them for ``keypoints_crowd``.
CROWDPOSE_STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium",
                                         "AP_hard")

_FASTER_COCO_EVAL_LABELS = {
    "AP_all": "AP", "AP_50": "AP50", "AP_75": "AP75", "AP_medium": "APm", "AP_large": "APl",
    "AR_all": "AR", "AR_50": "AR50", "AR_75": "AR75", "AR_medium": "ARm", "AR_large": "ARl",
}
_CROWD_LABELS = {"AP_all": "AP", "AP_50": "AP50", "AP_75": "AP75", "AR_all": "AR", "AR_50": "AR50",
                 "AR_75": "AR75", "AP_easy": "AP_easy", "AP_medium": "AP_medium", "AP_hard": "AP_hard"}


@dataclass(frozen=True)
class KeypointDataset:
    """How one benchmark scores keypoints: its keypoint set, stats and what its annotations must hold."""

    name: str
    keypoint_set: KeypointSet
    stat_names: tuple[str, ...]
    required_annotation_keys: tuple[str, ...]
    image_keys: tuple[str, ...] = ()


DATASETS: dict[str, KeypointDataset] = {d.name: d for d in (
    KeypointDataset("coco", COCO_17, STAT_NAMES,
                    ("image_id", "category_id", "keypoints", "bbox", "area", "num_keypoints")),
    KeypointDataset("crowdpose", CROWDPOSE_14, CROWDPOSE_STAT_NAMES,
                    ("image_id", "category_id", "keypoints", "bbox", "num_keypoints"), ("crowdIndex",)),
    KeypointDataset("ochuman", COCO_17, STAT_NAMES, ("image_id", "category_id", "keypoints", "bbox")),
)}


def dataset_spec(dataset: str) -> KeypointDataset:
    """The named benchmark; UserError listing the names otherwise."""
    if dataset not in DATASETS:
        raise UserError(f"--dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[dataset]


def _faster_coco_eval():
    try:
        import faster_coco_eval
    except ImportError as e:
        raise UserError("this evaluation needs the faster-coco-eval package: pip install 'faster-coco-eval==1.8.0' "
                        "(or the streampose[eval] extra)") from e
    return faster_coco_eval


def evaluate_results(annotations_json: str | Path, results_json: str | Path | list[dict[str, Any]],
                     dataset: str = "coco") -> dict[str, float]:
    """Stats of COCO-format keypoint results (a file, or its records) against a dataset's annotations, by name.

    dataset: ``coco``, ``crowdpose`` or ``ochuman`` (see the module docstring).
    Returns ``{stat: value}`` in ``DATASETS[dataset].stat_names`` order (-1
    where nothing can be averaged). Raises UserError for an unknown dataset,
    missing or malformed files, results that do not fit the annotations, or
    keypoints of another keypoint set than the dataset's.
    """
    spec = dataset_spec(dataset)
    coco_gt = load_ground_truth(annotations_json, spec.required_annotation_keys)
    for category in coco_gt.cats.values():
        if "keypoints" in category and len(category["keypoints"]) != spec.keypoint_set.num_keypoints:
            raise UserError(f"annotation file {str(annotations_json)!r} has {len(category['keypoints'])} keypoints "
                            f"per person; {dataset} has {spec.keypoint_set.num_keypoints} "
                            f"({spec.keypoint_set.name}): pick the matching --dataset")
    for key in spec.image_keys:
        lacking = next((image["id"] for image in coco_gt.dataset["images"] if key not in image), None)
        if lacking is not None:
            raise UserError(f"annotation file {str(annotations_json)!r}: image {lacking} has no {key!r}; "
                            f"is it a {dataset} annotation file?")
    if dataset == "coco":
        return evaluate_keypoints(coco_gt, results_json)
    if isinstance(results_json, (str, Path)):
        records = load_results(results_json)
        check_results(records, coco_gt, f"results file {str(results_json)!r}")
    else:
        records = list(results_json)
        check_results(records, coco_gt)
    return _faster_evaluation(spec, Path(annotations_json), records, coco_gt)


def _faster_evaluation(spec: KeypointDataset, annotations_json: Path, records: list[dict[str, Any]],
                       coco_gt) -> dict[str, float]:
    fce = _faster_coco_eval()
    has_area = all("area" in a for a in coco_gt.dataset["annotations"])
    crowd = spec.name == "crowdpose"
    with contextlib.redirect_stdout(io.StringIO()) as log:
        gt = fce.COCO(str(annotations_json))
        if records:
            dt = gt.loadRes([dict(r) for r in records])
        else:  # no people at all: every ground truth is a miss
            dt = fce.COCO()
            dt.dataset = {"images": list(gt.dataset["images"]), "annotations": [],
                          "categories": list(gt.dataset["categories"])}
            dt.createIndex()
        evaluator = fce.COCOeval_faster(gt, dt, iouType="keypoints_crowd" if crowd else "keypoints",
                                        kpt_oks_sigmas=spec.keypoint_set.sigmas, use_area=has_area and not crowd)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        stats = dict(evaluator.stats_as_dict)
    logger.debug("faster-coco-eval:\n%s", log.getvalue())
    labels = _CROWD_LABELS if crowd else _FASTER_COCO_EVAL_LABELS
    named = {labels[k]: float(v) for k, v in stats.items() if k in labels}
    return {name: named.get(name, -1.0) for name in spec.stat_names}


def stats_line_json(stats: dict[str, float]) -> dict[str, float | None]:
    """The stats as plain JSON values (None where the library gives -1: nothing to average)."""
    return {k: (None if v == -1 else float(np.round(v, 10))) for k, v in stats.items()}
