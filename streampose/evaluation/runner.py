"""Run a pose estimator over a COCO-format image set and score it with the COCO keypoint metric.

Protocol of the official top-down evaluation (HRNet deep-high-resolution-net.pytorch,
``lib/dataset/coco.py`` ``evaluate`` with ``experiments/coco/hrnet/*.yaml``):

1. person boxes: ground truth (box score 1), a COCO detections file, or a
   detector (see :mod:`.person_boxes`);
2. pose of each box: ``estimator.predict(image, xyxy, box_scores) -> Poses``,
   one pose per box in box order (flip test is the estimator's business);
3. rescoring: person score = box score x mean of the keypoint scores above
   0.2 (``TEST.IN_VIS_THRE``), 0 when none is above;
4. OKS-NMS per image at 0.9 (``TEST.OKS_THRE``) with the areas of the crop
   boxes (1.25-padded, aspect-corrected: ``prod(scale * 200)``);
5. COCO keypoint results records, scored by pycocotools.

Bottom-up estimators (``predict(image) -> Poses``) see whole images; their
own person scores are written unchanged, without NMS (as HigherHRNet's
official evaluation).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence

import numpy as np

from ..errors import UserError
from ..records import Detections, Poses
from ..topdown.crops import HRNET_CROP, CropSpec, xyxy_to_center_scale
from ..topdown.estimator import KEYPOINT_SCORE_THRESHOLD, person_scores
from .coco_eval import evaluate_keypoints, load_ground_truth
from .coco_results import KeypointResultsWriter, keypoint_results
from .oks import OFFICIAL_OKS_NMS_THRESHOLD, oks_nms
from .person_boxes import BoxesByImage, detection_file_boxes, ground_truth_boxes

logger = logging.getLogger(__name__)

class TopDownPoseEstimator(Protocol):
    def predict(self, image: np.ndarray, xyxy: np.ndarray, box_scores: np.ndarray) -> Poses: ...


class BottomUpPoseEstimator(Protocol):
    def predict(self, image: np.ndarray) -> Poses: ...


class PersonDetector(Protocol):
    def predict(self, image: np.ndarray) -> Detections: ...


@dataclass
class CocoEvaluation:
    """Outcome of :func:`run_coco_evaluation`.

    stats: the ten COCO keypoint numbers by name (see ``STAT_NAMES``);
    num_images: images run; num_boxes: person boxes given to a top-down
    estimator (0 for bottom-up); results: the records evaluated (after
    rescoring and OKS-NMS); results_path: where they were written, if asked;
    seconds: wall time of the pose loop.
    """

    stats: dict[str, float]
    num_images: int
    num_boxes: int
    results: list[dict[str, Any]] = field(repr=False)
    results_path: Path | None
    seconds: float


def crop_box_areas(xyxy: np.ndarray, crop: CropSpec) -> np.ndarray:
    """Areas (pixels^2) of the crop boxes a top-down model sees for person boxes (N, 4) xyxy.

    The official OKS-NMS uses these: ``prod(scale * pixel_std)`` with the
    official center/scale of :mod:`streampose.topdown.crops` (box widened to
    the crop aspect ratio, times the padding). crop: a ``CropSpec``.
    """
    _, scales = xyxy_to_center_scale(xyxy, crop)
    return np.prod(scales.astype(np.float64) * crop.pixel_std, axis=1)


@dataclass(frozen=True)
class _CocoImage:
    image_id: int
    path: Path
    size_wh: tuple[int, int] | None  # from the annotations, when they give it


def check_dataset(images_dir: str | Path, annotations_json: str | Path, max_images: int | None = None,
                  dataset: str = "coco"):
    """Load the annotations and check the images are there (cheap: run it before loading models).

    dataset: the benchmark the annotations belong to (``coco``, ``crowdpose``,
    ``ochuman``: :mod:`.datasets`). Returns (pycocotools COCO, the images to
    run). Raises UserError naming the problem.
    """
    from .datasets import dataset_spec

    spec = dataset_spec(dataset)
    if dataset != "coco" and max_images is not None:
        raise UserError(f"--max-images: the {dataset} evaluation scores whole annotation files; leave it out")
    coco = load_ground_truth(annotations_json, spec.required_annotation_keys)
    return coco, _image_list(images_dir, coco, max_images)


def _size_wh(image: dict[str, Any]) -> tuple[int, int] | None:
    if isinstance(image.get("width"), int) and isinstance(image.get("height"), int):
        return image["width"], image["height"]
    return None


def _image_list(images_dir: str | Path, coco, max_images: int | None) -> list[_CocoImage]:
    directory = Path(images_dir).expanduser()
    if not directory.is_dir():
        reason = "is a file" if directory.exists() else "not found"
        raise UserError(f"images folder {str(images_dir)!r} {reason}; give the folder of the annotated images "
                        "(e.g. val2017/)")
    unnamed = [image_id for image_id, image in coco.imgs.items() if not isinstance(image.get("file_name"), str)]
    if unnamed:
        raise UserError(f"annotation file: image id {unnamed[0]} has no 'file_name'; use COCO annotations that "
                        "name their images")
    images = [_CocoImage(image_id, directory / coco.imgs[image_id]["file_name"], _size_wh(coco.imgs[image_id]))
              for image_id in sorted(coco.imgs)]
    if max_images is not None:
        if max_images < 1:
            raise UserError(f"max_images must be at least 1, got {max_images}")
        images = images[:max_images]
    missing = [im for im in images if not im.path.is_file()]
    if missing:
        raise UserError(f"{len(missing)} of {len(images)} annotated images are not in {str(images_dir)!r} "
                        f"(e.g. {missing[0].path.name}); do the images and the annotation file belong together?")
    return images


def _read_image(path: Path, expected_wh: tuple[int, int] | None) -> np.ndarray:
    """The image as stored, BGR; EXIF orientation ignored, as COCO annotations and the official loaders do."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise UserError(f"image {str(path)!r} cannot be decoded; replace the file")
    if expected_wh is not None and (image.shape[1], image.shape[0]) != expected_wh:
        raise UserError(f"image {str(path)!r} is {image.shape[1]}x{image.shape[0]} but the annotations say "
                        f"{expected_wh[0]}x{expected_wh[1]}; do the images and the annotation file belong together?")
    return image


def _progress(items: Sequence[Any], enabled: bool, description: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, unit="img", leave=False)


def _detector_boxes(detector: Any, image: np.ndarray, person_class_id: int) -> tuple[np.ndarray, np.ndarray]:
    detections = detector.predict(image) if hasattr(detector, "predict") else detector(image)
    if not isinstance(detections, Detections):
        raise TypeError(f"the detector must return Detections, got {type(detections).__name__}")
    people = detections.select(detections.class_ids == person_class_id)
    return people.xyxy, people.scores


def _topdown_people(estimator: TopDownPoseEstimator, image: np.ndarray, xyxy: np.ndarray, box_scores: np.ndarray,
                    *, crop: CropSpec, keypoint_score_threshold: float,
                    oks_threshold: float | None) -> tuple[Poses, np.ndarray]:
    if len(xyxy) == 0:
        return Poses.empty(), np.zeros(0)
    poses = estimator.predict(image, xyxy, box_scores)
    if not isinstance(poses, Poses) or len(poses) != len(xyxy):
        got = f"{len(poses)} poses" if isinstance(poses, Poses) else type(poses).__name__
        raise RuntimeError(f"top-down estimator returned {got} for {len(xyxy)} boxes; it must return one per box")
    scores = person_scores(poses.keypoint_scores, box_scores, keypoint_score_threshold)
    if oks_threshold is None:
        return poses, scores
    keep = oks_nms(poses.keypoints, scores, crop_box_areas(xyxy, crop), oks_threshold)
    return poses.select(keep), scores[keep]


def _crop_of(estimator: Any, crop: CropSpec | None) -> CropSpec:
    """The estimator's crop spec (``estimator.model.crop`` of a TopDownEstimator), else the HRNet one."""
    if crop is not None:
        return crop
    return getattr(getattr(estimator, "model", None), "crop", HRNET_CROP)


def run_coco_evaluation(
    images_dir: str | Path,
    annotations_json: str | Path,
    *,
    estimator: TopDownPoseEstimator | BottomUpPoseEstimator,
    estimator_kind: Literal["topdown", "bottomup"] = "topdown",
    boxes_from: str | Path | PersonDetector | Callable[[np.ndarray], Detections] = "gt",
    crop: CropSpec | None = None,
    results_out: str | Path | None = None,
    max_images: int | None = None,
    keypoint_score_threshold: float = KEYPOINT_SCORE_THRESHOLD,
    oks_nms_threshold: float | None = OFFICIAL_OKS_NMS_THRESHOLD,
    min_box_score: float = 0.0,
    person_class_id: int = 0,
    progress: bool = True,
    dataset: str = "coco",
) -> CocoEvaluation:
    """Estimate the poses of every annotated image and return the COCO keypoint stats.

    images_dir: folder holding the annotation file's ``file_name`` s;
    annotations_json: COCO person-keypoints annotations; estimator: a
    top-down (``predict(image, xyxy, box_scores) -> Poses``, one pose per
    box) or bottom-up (``predict(image) -> Poses``) estimator, as
    ``estimator_kind`` says; flip test and decoding are set when building it
    (e.g. ``TopDownEstimator.from_checkpoint(path, flip_test=True)``).

    Top-down only: boxes_from is ``"gt"``, the path of a COCO detections
    file, or a detector (an object with ``predict(image) -> Detections``, or
    a callable ``image -> Detections``; boxes of ``person_class_id`` kept);
    crop: the ``CropSpec`` whose crop-box areas the OKS-NMS uses (default
    ``estimator.model.crop``, else HRNet's 256x192, padding 1.25);
    oks_nms_threshold: None disables OKS-NMS; min_box_score: boxes below it
    are dropped (official ``IMAGE_THRE`` 0.0); keypoint_score_threshold: the
    rescoring threshold (official ``IN_VIS_THRE`` 0.2).

    results_out: also write the results JSON there (record by record);
    max_images: only the first N images (by id), evaluated on those alone;
    progress: a progress bar on stderr; dataset: the annotations' benchmark
    (``coco``; ``crowdpose`` / ``ochuman`` are scored as :mod:`.datasets` does).

    Raises UserError for bad or mismatched inputs (folder, files, ids).
    """
    if estimator_kind not in ("topdown", "bottomup"):
        raise ValueError(f"estimator_kind must be 'topdown' or 'bottomup', got {estimator_kind!r}")
    coco, images = check_dataset(images_dir, annotations_json, max_images, dataset)

    detector: Any = None
    boxes: BoxesByImage | None = None
    if estimator_kind == "topdown":
        crop = _crop_of(estimator, crop)
        if isinstance(boxes_from, str) and boxes_from == "gt":
            boxes = ground_truth_boxes(coco)
        elif isinstance(boxes_from, (str, Path)):
            boxes = detection_file_boxes(boxes_from, coco, min_score=min_box_score)
        elif hasattr(boxes_from, "predict") or callable(boxes_from):
            detector = boxes_from
        else:
            raise TypeError(f"boxes_from must be 'gt', a path or a detector, got {type(boxes_from).__name__}")

    writer = KeypointResultsWriter(results_out) if results_out is not None else None
    results: list[dict[str, Any]] = []
    num_boxes = 0
    started = time.perf_counter()
    try:
        for item in _progress(images, progress, f"COCO {estimator_kind}"):
            image = _read_image(item.path, item.size_wh)
            if estimator_kind == "bottomup":
                poses = estimator.predict(image)
                if not isinstance(poses, Poses):
                    raise TypeError(f"bottom-up estimator returned {type(poses).__name__}, expected Poses")
                scores = poses.scores
            else:
                if detector is not None:
                    xyxy, box_scores = _detector_boxes(detector, image, person_class_id)
                    keep = box_scores >= min_box_score
                    xyxy, box_scores = xyxy[keep], box_scores[keep]
                else:
                    xyxy, box_scores = boxes[item.image_id]
                num_boxes += len(xyxy)
                poses, scores = _topdown_people(estimator, image, xyxy, box_scores, crop=crop,
                                                keypoint_score_threshold=keypoint_score_threshold,
                                                oks_threshold=oks_nms_threshold)
            records = keypoint_results(item.image_id, poses, scores)
            results.extend(records)
            if writer is not None:
                writer.write(records)
    finally:
        if writer is not None:
            writer.close()
    seconds = time.perf_counter() - started
    logger.debug("%d images, %d boxes, %d people in %.1f s", len(images), num_boxes, len(results), seconds)
    image_ids = [item.image_id for item in images] if max_images is not None else None
    if dataset == "coco":
        stats = evaluate_keypoints(coco, results, image_ids=image_ids)
    else:
        from .datasets import evaluate_results

        stats = evaluate_results(annotations_json, results, dataset)
    return CocoEvaluation(stats=stats, num_images=len(images), num_boxes=num_boxes, results=results,
                          results_path=writer.path if writer is not None else None, seconds=seconds)
