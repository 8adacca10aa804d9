"""The ``yolov5_detector`` step, its options, its pipeline, and batching frames of different sizes."""

from __future__ import annotations

import numpy as np
import pytest

from streampose.config import apply_overrides, load_pipeline
from streampose.errors import ConfigError, UserError
from streampose.models.yolov5.letterbox import boxes_to_frame, canvas_shape, letterbox_batch, place
from streampose.records import Frame, FramePacket
from streampose.step import build_step, registered_step_types

cv2 = pytest.importorskip("cv2")


# ------------------------------------------------------------------ letterbox geometry (no model)


@pytest.mark.parametrize("frame_hw,mode,canvas", [
    ((1080, 810), "rect", (640, 480)), ((720, 1280), "rect", (384, 640)), ((425, 640), "rect", (448, 640)),
    ((432, 768), "rect", (384, 640)), ((720, 1280), "square", (640, 640)), ((100, 100), "rect", (640, 640)),
])
def test_canvas_is_yolov5s_letterbox_shape(frame_hw, mode, canvas):
    assert canvas_shape([frame_hw], 640, mode) == canvas


def test_mixed_sizes_share_the_largest_canvas_centred():
    shapes = [(1080, 810), (720, 1280)]
    assert canvas_shape(shapes, 640, "rect") == (640, 640)
    p = place((720, 1280), (640, 640), 640)
    assert (p.resized_hw, p.top, p.left) == ((360, 640), 140, 0)
    images = [np.full(s + (3,), 7, np.uint8) for s in shapes]
    batch, placements = letterbox_batch(images, 640, "rect")
    assert batch.shape == (2, 640, 640, 3)
    assert (batch[1, 140:500] == 7).all() and (batch[1, :140] == 114).all() and (batch[1, 500:] == 114).all()
    assert placements[0].left == 80 and (batch[0, :, 80:560] == 7).all()


@pytest.mark.parametrize("frame_hw", [(1080, 810), (425, 640), (333, 500), (720, 1280)])
def test_boxes_map_back_to_the_frame(frame_hw):
    canvas = canvas_shape([frame_hw], 640, "rect")
    p = place(frame_hw, canvas, 640)
    frame_box = np.array([[10.0, 20.0, frame_hw[1] - 30.0, frame_hw[0] - 5.0]])
    canvas_box = frame_box * p.ratio + [p.left, p.top, p.left, p.top]
    back = boxes_to_frame(canvas_box, canvas, frame_hw)
    # yolov5's scale_boxes assumes exactly centred padding; the real offset is rounded to whole pixels.
    assert np.abs(back - frame_box).max() <= 0.5 / p.ratio + 1e-3
    clipped = boxes_to_frame(np.array([[-50.0, -50.0, 5000.0, 5000.0]]), canvas, frame_hw)
    assert clipped.tolist() == [[0.0, 0.0, float(frame_hw[1]), float(frame_hw[0])]]


# ------------------------------------------------------------------ options


def test_step_is_registered_as_the_detector():
    cls = registered_step_types()["yolov5_detector"]
    assert cls.role == "detector"


@pytest.mark.parametrize("options,key", [
    ({"img_size": 500}, "img_size"), ({"img_size": 0}, "img_size"), ({"conf_threshold": 1.5}, "conf_threshold"),
    ({"iou_threshold": -0.1}, "iou_threshold"), ({"max_detections": 0}, "max_detections"),
    ({"letterbox": "round"}, "letterbox"), ({"classes": ["person", "person"]}, "classes"),
    ({"score": 0.3}, "score"), ({"img_size": "640"}, "img_size"), ({"threads": -1}, "threads"),
])
def test_bad_options_name_the_option(options, key):
    with pytest.raises(ConfigError, match=key):
        build_step({"type": "yolov5_detector", "weights": "weights/yolov5n.pt", **options})


def test_weights_are_required():
    with pytest.raises(ConfigError, match="weights"):
        build_step({"type": "yolov5_detector"})


def test_missing_weights_file_is_a_one_line_error(tmp_path):
    step = build_step({"type": "yolov5_detector", "weights": str(tmp_path / "nope.pt"), "device": "cpu"})
    with pytest.raises(UserError, match="not found.*weights/README.md") as excinfo:
        step.start()
    assert "\n" not in str(excinfo.value)


def test_unknown_class_name_is_refused(shared_dir):
    step = build_step({"type": "yolov5_detector", "weights": str(shared_dir / "weights" / "yolov5n.pt"),
                       "classes": ["pedestrian"], "device": "cpu"})
    with pytest.raises(ConfigError, match="'pedestrian' is not a class"):
        step.start()


def test_detection_pipeline_and_cli_overrides(shared_dir):
    pipeline = load_pipeline("detect_yolov5n")
    weights = str(shared_dir / "weights" / "yolov5n.pt")
    pipeline = apply_overrides(pipeline, det_model=weights, img_size=320, device="cpu")
    spec = pipeline.stages[0].steps[0]
    assert spec["type"] == "yolov5_detector"
    assert (spec["weights"], spec["img_size"], spec["device"]) == (weights, 320, "cpu")
    assert [s["type"] for s in pipeline.stages[-1].steps][-1] == "draw"


# ------------------------------------------------------------------ running


def _frame(image: np.ndarray, index: int) -> Frame:
    packet = FramePacket(source_id=0, source_name="test", index=index, pts_s=None, shape=image.shape,
                         capture_time=0.0)
    return Frame(packet, image)


def test_step_detects_people_in_frames_of_different_sizes_in_one_batch(shared_dir):
    from streampose.models.yolov5.detector import YoloV5Detector

    step = build_step({"type": "yolov5_detector", "weights": str(shared_dir / "weights" / "yolov5n.pt"),
                       "device": "cpu"})
    step.start()
    try:
        images = [cv2.imread(str(shared_dir / "media" / name)) for name in ("bus.jpg", "zidane.jpg")]
        frames = step.process([_frame(image, i) for i, image in enumerate(images)])
        # bus (640x480) and zidane (384x640) share a 640x640 canvas, each centred: the same
        # input each gets alone from a square letterbox.
        square = YoloV5Detector(step.detector.network, step.detector.names, letterbox="square")
        alone = [square.detect([image])[0] for image in images]
    finally:
        step.close()
    assert [f.packet.index for f in frames] == [0, 1]
    for frame, single in zip(frames, alone):
        found = frame.packet.detections
        assert set(found.class_ids.tolist()) == {0}
        # bus: 3 people at 640x640 (the official square run), zidane: 2.
        assert len(found) == len(single) == {1080: 3, 720: 2}[frame.image.shape[0]]
        np.testing.assert_allclose(found.xyxy, single.xyxy, atol=1e-2)
        np.testing.assert_allclose(found.scores, single.scores, atol=1e-4)
        assert (found.xyxy[:, [0, 2]] <= frame.image.shape[1]).all() and (found.xyxy >= 0).all()
