"""Pipeline steps ``coco_detections`` and ``topdown_pose``, alone and in an inline pipeline run."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from hrnet_recipe import one_torch_thread, recipe_checkpoint  # noqa: F401
from streampose.config import load_pipeline, parse_pipeline
from streampose.errors import ConfigError, UserError
from streampose.records import Detections, Frame, FramePacket
from streampose.step import build_step
from streampose.topdown.estimator import TopDownEstimator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DET_FILE = "coco/test_coco_det_AP_H_56.json"
IMAGES = ["000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg"]


def _frame(image, index=0, source_name="test", detections=None, extras=None) -> Frame:
    packet = FramePacket(0, source_name, index, None, tuple(image.shape), time.monotonic(),
                         detections=detections, extras=dict(extras or {}))
    return Frame(packet, image)


def _expected_boxes(shared_dir, image_id, min_score):
    records = json.loads((shared_dir / DET_FILE).read_text())
    rows = [r for r in records if r["image_id"] == image_id and r["score"] >= min_score]
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in rows)], np.float32).reshape(-1, 4)
    return xyxy, np.array([r["score"] for r in rows], np.float32)


@pytest.mark.parametrize("how", ["folder", "image_file", "extras", "annotations"])
def test_coco_detections_match_frames_by_file_name(shared_dir, how):
    options = {"type": "coco_detections", "weights": str(shared_dir / DET_FILE), "score_threshold": 0.5}
    if how == "annotations":
        options["annotations"] = str(shared_dir / "coco" / "test_coco.json")
    step = build_step(options)
    step.start()
    image = np.zeros((8, 8, 3), np.uint8)
    for index, name in enumerate(IMAGES):
        if how == "image_file":
            frame = _frame(image, 0, str(shared_dir / "coco" / name))
        elif how == "extras":
            frame = _frame(image, 7, "camera", extras={"file_name": f"some/dir/{name}"})
        else:
            frame = _frame(image, index, str(shared_dir / "coco"))
        step.process([frame])
        xyxy, scores = _expected_boxes(shared_dir, int(name[:-4]), 0.5)
        det = frame.packet.detections
        assert len(det) == len(xyxy) > 0
        np.testing.assert_array_equal(det.xyxy, xyxy)
        np.testing.assert_array_equal(det.scores, scores)
        assert (det.class_ids == 0).all()
    step.close()


def test_coco_detections_refuses_frames_it_cannot_name(shared_dir):
    step = build_step({"type": "coco_detections", "weights": str(shared_dir / DET_FILE)})
    step.start()
    with pytest.raises(UserError, match="cannot tell which image"):
        step.process([_frame(np.zeros((8, 8, 3), np.uint8), 0, "rtsp://camera/stream")])
    unknown = _frame(np.zeros((8, 8, 3), np.uint8), extras={"file_name": "000000000001.jpg"})
    step.process([unknown])
    assert len(unknown.packet.detections) == 0


def test_step_options_are_checked():
    with pytest.raises(ConfigError, match="max_batch"):
        build_step({"type": "topdown_pose", "weights": "w.pth", "max_batch": 0})
    with pytest.raises(ConfigError, match="threads"):
        build_step({"type": "topdown_pose", "weights": "w.pth", "threads": -1})
    with pytest.raises(ConfigError, match="score_threshold"):
        build_step({"type": "coco_detections", "weights": "d.json", "score_threshold": 2.0})
    with pytest.raises(UserError, match="weights/README.md"):
        build_step({"type": "topdown_pose", "weights": "weights/missing.pth", "device": "cpu"}).start()


@pytest.fixture(scope="module")
def pose_step():
    step = build_step({"type": "topdown_pose", "weights": str(recipe_checkpoint("pose_hrnet_w32_256x192")),
                       "flip_test": False, "max_batch": 4, "device": "cpu"})
    step.start()
    yield step
    step.close()


def test_topdown_pose_step_poses_every_person_box_of_the_batch(shared_dir, pose_step):
    images = [cv2.imread(str(shared_dir / "coco" / name)) for name in IMAGES[:2]]
    frames = []
    for image, name in zip(images, IMAGES[:2]):
        xyxy, scores = _expected_boxes(shared_dir, int(name[:-4]), 0.9)
        # A non-person box and a track-labelled detector output, as after a tracker.
        xyxy = np.concatenate([xyxy, [[0, 0, 50, 50]]])
        detections = Detections(xyxy, np.append(scores, 0.99), np.append(np.zeros(len(scores)), 1),
                                np.arange(len(xyxy)) + 10)
        frames.append(_frame(image, detections=detections))
    out = pose_step.process(frames)
    assert out == frames
    people = [f.packet.detections.select(f.packet.detections.class_ids == 0) for f in frames]
    # Same chunks as the step (random weights give near-flat maps: other chunkings may break argmax ties otherwise).
    reference = TopDownEstimator(pose_step.estimator.model, max_batch=4).predict_batch(
        images, [p.xyxy for p in people], [p.scores for p in people])
    for frame, persons, expected in zip(frames, people, reference):
        poses = frame.packet.poses
        assert len(poses) == len(persons) > 0 and poses.keypoints.shape[1:] == (17, 2)
        np.testing.assert_array_equal(poses.xyxy, persons.xyxy)
        np.testing.assert_array_equal(poses.track_ids, persons.track_ids)
        np.testing.assert_allclose(poses.keypoints, expected.keypoints, atol=1e-3)
        np.testing.assert_allclose(poses.scores, expected.scores, rtol=1e-5)


def test_topdown_pose_step_needs_detections(pose_step):
    with pytest.raises(UserError, match="detector step"):
        pose_step.process([_frame(np.zeros((64, 64, 3), np.uint8))])


@pytest.mark.parametrize("name", ["topdown_hrnet_w32", "topdown_hrnet_w48", "topdown_simdr_w32"])
def test_pipeline_definitions_are_valid(name):
    config = load_pipeline(name)
    types = [[s["type"] for s in stage.steps] for stage in config.stages]
    assert types == [["yolov5_detector"], ["topdown_pose"], ["iou_tracker", "one_euro_filter", "draw"]]
    assert config.stages[0].steps[0]["weights"] == "weights/crowdhuman_yolov5m.pt"


def test_inline_pipeline_on_coco_images(shared_dir, tmp_path):
    """coco_detections → topdown_pose → iou_tracker → jsonl_writer, inline, over the COCO folder."""
    from streampose.runtime import run_pipeline

    config = parse_pipeline({"stages": [
        {"name": "detect", "steps": [{"type": "coco_detections", "weights": str(shared_dir / DET_FILE),
                                      "score_threshold": 0.9}]},
        {"name": "pose", "batch_size": 4,
         "steps": [{"type": "topdown_pose", "weights": str(recipe_checkpoint("pose_hrnet_w32_256x192")),
                    "flip_test": False, "device": "cpu"}]},
        {"name": "render", "steps": [{"type": "iou_tracker"}]},
    ]}, name="topdown_coco")
    out = tmp_path / "poses.jsonl"
    result = run_pipeline(config, [str(shared_dir / "coco")], [{"type": "jsonl_writer", "path": str(out)}],
                          inline=True, progress=False, handle_signals=False)
    assert result.exit_code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, 3]
    for record, name in zip(records, IMAGES):
        xyxy, _ = _expected_boxes(shared_dir, int(name[:-4]), 0.9)
        assert len(record["poses"]) == len(record["detections"]) == len(xyxy)
        assert all(len(p["keypoints"]) == 17 for p in record["poses"])
