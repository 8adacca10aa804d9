"""Estimators for evaluation: step adapters, detectors from weights, and the bottom-up runner path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from streampose.evaluation.coco_eval import load_ground_truth
from streampose.evaluation.estimators import StepDetector, StepPoseEstimator, detector_from_weights
from streampose.evaluation.runner import run_coco_evaluation
from streampose.records import Detections, Frame, Poses
from streampose.step import Step, build_step

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO_ROOT = Path(__file__).resolve().parents[1]


class BoxCentreStep(Step):
    """A top-down pose step (not registered): every keypoint at its box centre, scores 0.5."""

    @dataclass
    class Options:
        pass

    role = "pose"
    type_name = "box_centre_pose"

    def __init__(self) -> None:
        self.seen: list[Detections] = []

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            det = frame.packet.detections
            self.seen.append(det)
            centres = (det.xyxy[:, :2] + det.xyxy[:, 2:]) / 2
            n = len(det)
            frame.packet.poses = Poses(np.repeat(centres[:, None], 17, axis=1), np.full((n, 17), 0.5),
                                       det.scores, det.xyxy)
        return frames


def test_step_pose_estimator_passes_boxes_through_the_packet():
    step = BoxCentreStep()
    estimator = StepPoseEstimator(step, "topdown")
    image = np.zeros((40, 60, 3), np.uint8)
    xyxy = np.array([[0, 0, 10, 20], [20, 10, 40, 30]], np.float32)
    poses = estimator.predict(image, xyxy, np.array([0.9, 0.4]))
    assert len(poses) == 2
    np.testing.assert_array_equal(step.seen[0].xyxy, xyxy)
    np.testing.assert_allclose(step.seen[0].scores, [0.9, 0.4])
    np.testing.assert_array_equal(step.seen[0].class_ids, [0, 0])
    np.testing.assert_allclose(poses.keypoints[1, 3], [30, 20])
    assert len(estimator.predict(image, np.zeros((0, 4)), np.zeros(0))) == 0


def test_step_detector_with_the_real_yolov5_step(shared_dir):
    step = build_step({"type": "yolov5_detector", "weights": str(shared_dir / "weights" / "yolov5n.pt"),
                       "img_size": 320, "device": "cpu"})
    step.start()
    try:
        detections = StepDetector(step).predict(cv2.imread(str(shared_dir / "media" / "zidane.jpg")))
    finally:
        step.close()
    assert isinstance(detections, Detections) and len(detections) >= 2
    assert set(detections.class_ids.tolist()) == {0}  # person only


def test_detector_from_bundled_yolox_weights(shared_dir):
    detector = detector_from_weights(REPO_ROOT / "weights" / "light_person_detector_192.pth", device="cpu")
    detections = detector.predict(cv2.imread(str(shared_dir / "coco" / "000000000785.jpg")))
    assert len(detections) >= 1 and detections.scores.max() > 0.5


def test_detector_from_yolov5_checkpoint(shared_dir):
    detector = detector_from_weights(shared_dir / "weights" / "yolov5n.pt", img_size=320, score_threshold=0.3,
                                     device="cpu")
    detections = detector.predict(cv2.imread(str(shared_dir / "media" / "zidane.jpg")))
    assert len(detections) >= 2 and detections.scores.min() >= 0.3


class GroundTruthBottomUp:
    """A bottom-up estimator that returns the annotated people of each image, person score 0.8."""

    def __init__(self, images_dir: Path, annotations: Path):
        coco = load_ground_truth(annotations)
        self.people = {}
        for image_id, image in coco.imgs.items():
            anns = [a for a in coco.imgToAnns.get(image_id, []) if a["num_keypoints"] > 0]
            kps = np.array([a["keypoints"] for a in anns], np.float32).reshape(-1, 17, 3)
            self.people[cv2.imread(str(images_dir / image["file_name"]),
                                   cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION).tobytes()] = kps

    def predict(self, image: np.ndarray) -> Poses:
        kps = self.people[image.tobytes()]
        n = len(kps)
        return Poses(kps[:, :, :2], (kps[:, :, 2] > 0).astype(np.float32), np.full(n, 0.8), np.zeros((n, 4)))


def test_bottom_up_runner_path(shared_dir, tmp_path):
    coco = shared_dir / "coco"
    annotations = coco / "test_coco.json"
    evaluation = run_coco_evaluation(coco, annotations, estimator=GroundTruthBottomUp(coco, annotations),
                                     estimator_kind="bottomup", progress=False)
    assert evaluation.stats["AP"] == 1.0 and evaluation.num_boxes == 0
    assert len(evaluation.results) == 12 and all(r["score"] == pytest.approx(0.8) for r in evaluation.results)


@pytest.mark.parametrize("change, message", [
    (lambda data: data["images"][0].update(width=641), "is 640x425 but the annotations say 641x425"),
    (lambda data: data["images"][0].pop("file_name"), "image id 785 has no 'file_name'"),
])
def test_runner_rejects_images_that_do_not_fit_the_annotations(shared_dir, tmp_path, change, message):
    import json

    from streampose.errors import UserError

    coco = shared_dir / "coco"
    data = json.loads((coco / "test_coco.json").read_text())
    change(data)
    annotations = tmp_path / "ann.json"
    annotations.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message):
        run_coco_evaluation(coco, annotations, estimator=GroundTruthBottomUp(coco, coco / "test_coco.json"),
                            estimator_kind="bottomup", progress=False)
