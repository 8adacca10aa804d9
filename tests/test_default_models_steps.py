"""The default pipeline's steps (yolox_detector, movenet_pose) and pipelines/default.toml on real media."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streampose.config import load_pipeline
from streampose.errors import ConfigError, UserError
from streampose.records import Detections, Frame, FramePacket
from streampose.step import build_step, registered_step_types

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "one-by-one-person-10s.mp4"


def _frame(image: np.ndarray, index: int = 0, detections: Detections | None = None) -> Frame:
    packet = FramePacket(source_id=0, source_name="test", index=index, pts_s=None, shape=image.shape,
                         capture_time=0.0, detections=detections)
    return Frame(packet, image)


def test_steps_are_registered_with_their_roles():
    types = registered_step_types()
    assert types["yolox_detector"].role == "detector"
    assert types["movenet_pose"].role == "pose"


@pytest.mark.parametrize("spec,message", [
    ({"type": "yolox_detector", "img_size": 200}, "img_size"),
    ({"type": "yolox_detector", "score_threshold": 1.5}, "score_threshold"),
    ({"type": "yolox_detector", "nms_threshold": -0.1}, "nms_threshold"),
    ({"type": "yolox_detector", "threads": -1}, "threads"),
    ({"type": "yolox_detector", "weight": "x.pth"}, "weight"),
    ({"type": "movenet_pose", "max_batch": 0}, "max_batch"),
    ({"type": "movenet_pose", "img_size": 192}, "img_size"),
])
def test_bad_options_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_step(spec)


@pytest.mark.parametrize("spec,message", [
    ({"type": "yolox_detector", "weights": "weights/missing.pth"}, "not found"),
    ({"type": "movenet_pose", "weights": "weights/missing.pth"}, "not found"),
    ({"type": "movenet_pose", "weights": "weights/light_person_detector_192.pth"}, "does not fit"),
])
def test_bad_weights_fail_at_start_with_one_line(spec, message):
    step = build_step(spec)
    with pytest.raises(UserError, match=message) as info:
        step.start()
    assert "\n" not in str(info.value)


def test_pose_step_without_detections_is_a_config_error():
    step = build_step({"type": "movenet_pose", "device": "cpu"})
    step.start()
    with pytest.raises(ConfigError, match="detector step"):
        step.process([_frame(np.zeros((64, 64, 3), np.uint8))])


def test_detector_then_pose_on_coco_images(shared_dir):
    """Both steps on a batch of two real images: one pose per box, keypoints in frame pixels near the box."""
    detector = build_step({"type": "yolox_detector", "device": "cpu"})
    pose = build_step({"type": "movenet_pose", "device": "cpu"})
    detector.start()
    pose.start()
    images = [cv2.imread(str(shared_dir / "coco" / name)) for name in ("000000000785.jpg", "000000196141.jpg")]
    frames = pose.process(detector.process([_frame(im, i) for i, im in enumerate(images)]))
    for frame, image in zip(frames, images):
        dets, poses = frame.packet.detections, frame.packet.poses
        assert len(dets) >= 1 and len(poses) == len(dets)
        np.testing.assert_array_equal(poses.xyxy, dets.xyxy)
        assert poses.keypoints.shape == (len(dets), 17, 2)
        for box, keypoints, scores in zip(poses.xyxy, poses.keypoints, poses.keypoint_scores):
            seen = keypoints[scores > 0.3]
            assert len(seen) >= 5
            w, h = box[2] - box[0], box[3] - box[1]
            assert (seen[:, 0] > box[0] - 0.3 * w).all() and (seen[:, 0] < box[2] + 0.3 * w).all()
            assert (seen[:, 1] > box[1] - 0.3 * h).all() and (seen[:, 1] < box[3] + 0.3 * h).all()
    # the single skier of 000000000785.jpg
    assert len(frames[0].packet.poses) == 1 and frames[0].packet.poses.scores[0] > 0.3


def test_default_pipeline_is_the_bundled_pair():
    pipeline = load_pipeline("default")
    types = [spec["type"] for stage in pipeline.stages for spec in stage.steps]
    assert types == ["yolox_detector", "movenet_pose", "iou_tracker", "one_euro_filter", "draw"]
    for stage in pipeline.stages:
        for spec in stage.steps:
            if "weights" in spec:
                assert (REPO / spec["weights"]).is_file(), spec["weights"]


@pytest.mark.slow
def test_classroom_four_people_tracked_with_skeletons(shared_dir, tmp_path):
    """The default pipeline on classroom.gif (4 seated people, 45 frames): exactly 4 track IDs, each
    with a skeleton in every frame once confirmed."""
    from streampose.runtime import run_pipeline

    out = tmp_path / "classroom.jsonl"
    result = run_pipeline(load_pipeline("default"), [str(shared_dir / "media" / "classroom.gif")],
                          [{"type": "jsonl_writer", "path": str(out)}], inline=True, progress=False,
                          handle_signals=False)
    assert result.exit_code == 0
    frames = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(frames) == 45
    ids = set()
    for frame in frames:
        track_ids = [p["track_id"] for p in frame["poses"]]
        ids.update(i for i in track_ids if i >= 0)
        if frame["frame"] >= 2:  # confirmed after min_hits = 3 frames
            assert sorted(track_ids) == [0, 1, 2, 3], frame["frame"]
            for person in frame["poses"]:
                assert sum(s > 0.3 for s in person["keypoint_scores"]) >= 8  # seated: the upper body
    assert ids == {0, 1, 2, 3}


def test_bundled_sample_runs_through_the_default_pipeline(tmp_path):
    """The README's main command on the bundled clip: a person walks in and gets a skeleton and an ID."""
    from streampose.runtime import run_pipeline

    out = tmp_path / "sample.jsonl"
    result = run_pipeline(load_pipeline("default"), [str(SAMPLE)], [{"type": "jsonl_writer", "path": str(out)}],
                          inline=True, progress=False, handle_signals=False, max_frames=30)
    assert result.exit_code == 0
    frames = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(frames) == 30 and (frames[0]["width"], frames[0]["height"]) == (640, 360)
    with_people = [f for f in frames if f["poses"]]
    assert len(with_people) >= 20
    assert {p["track_id"] for f in with_people[5:] for p in f["poses"]} == {0}


def test_flip_test_is_mirror_symmetric(shared_dir):
    """With the flip test, a mirrored crop gives exactly the mirrored keypoints (left/right swapped)."""
    from streampose.models.movenet.topdown import load_movenet_topdown
    from streampose.records import COCO_FLIP_INDEX
    from streampose.topdown.crops import normalize_crops

    model = load_movenet_topdown(flip_test=True)
    image = cv2.imread(str(shared_dir / "coco" / "000000000785.jpg"))
    crop = cv2.resize(image[40:390, 210:560], (192, 192))
    batch = normalize_crops(np.stack([crop, crop[:, ::-1]]), model.crop)
    out = model.infer(batch)
    mirrored = out.coords[1, list(COCO_FLIP_INDEX)].copy()
    mirrored[:, 0] = 192 - mirrored[:, 0]
    np.testing.assert_allclose(mirrored, out.coords[0], atol=1e-3)
    np.testing.assert_allclose(out.scores[1, list(COCO_FLIP_INDEX)], out.scores[0], atol=1e-5)
    plain = load_movenet_topdown(flip_test=False).infer(batch[:1])
    assert np.hypot(*(plain.coords[0] - out.coords[0]).T)[plain.scores[0] > 0.5].mean() < 6.0
