"""The draw step: in-place overlays, skeletons above the score threshold, one colour per track."""

from __future__ import annotations

import numpy as np
import pytest

from streampose.builtin_steps.render import LEFT_BGR, RIGHT_BGR, track_color
from streampose.errors import ConfigError
from streampose.records import COCO_SKELETON, NUM_KEYPOINTS, Detections, Frame, FramePacket, Poses
from streampose.runtime.ring import FrameRing
from streampose.step import build_step


def _frame(image, index=0, detections=None, poses=None):
    packet = FramePacket(0, "cam", index, None, image.shape, 0.0, detections=detections, poses=poses)
    return Frame(packet, image)


def _person(x0, y0, track_id=-1, low=()):
    """A standing person whose keypoints are spread over a 100x200 box at (x0, y0)."""
    kp = np.zeros((NUM_KEYPOINTS, 2), np.float32)
    xs = [50, 45, 55, 40, 60, 30, 70, 25, 75, 20, 80, 38, 62, 38, 62, 38, 62]
    ys = [10, 5, 5, 8, 8, 50, 50, 80, 80, 110, 110, 120, 120, 160, 160, 195, 195]
    kp[:, 0] = np.array(xs) + x0
    kp[:, 1] = np.array(ys) + y0
    scores = np.full(NUM_KEYPOINTS, 0.9, np.float32)
    scores[list(low)] = 0.1
    return kp, scores, track_id


def _poses(*people):
    kps = np.stack([p[0] for p in people])
    scores = np.stack([p[1] for p in people])
    boxes = np.array([[k[:, 0].min(), k[:, 1].min(), k[:, 0].max(), k[:, 1].max()] for k in kps], np.float32)
    return Poses(kps, scores, np.ones(len(people), np.float32), boxes, np.array([p[2] for p in people]))


def _midpoint(kp, a, b):
    x, y = (kp[a] + kp[b]) / 2
    return int(round(float(y))), int(round(float(x)))


@pytest.fixture()
def draw():
    step = build_step({"type": "draw", "keypoint_threshold": 0.3, "draw_info": False})
    step.start()
    return step


def test_draws_in_place_without_copy(draw):
    image = np.zeros((240, 320, 3), np.uint8)
    frame = _frame(image, poses=_poses(_person(20, 20)))
    out = draw.process([frame])
    assert out[0] is frame and out[0].image is image
    assert image.any()


def test_skeleton_only_between_keypoints_above_threshold(draw):
    image = np.zeros((300, 300, 3), np.uint8)
    # left knee (13) below threshold: the left thigh (11-13) and shin (13-15) are not drawn
    person = _person(50, 50, low=(13,))
    draw.process([_frame(image, poses=_poses(person))])
    kp = person[0]
    assert tuple(image[_midpoint(kp, 14, 16)]) == RIGHT_BGR  # right shin, untracked: right colour
    assert tuple(image[_midpoint(kp, 5, 7)]) == LEFT_BGR  # left upper arm
    assert not image[_midpoint(kp, 11, 13)].any() and not image[_midpoint(kp, 13, 15)].any()
    assert not image[int(kp[13, 1]), int(kp[13, 0])].any()  # the hidden keypoint itself


def test_one_colour_per_track_id_and_the_id_is_written(draw):
    images = []
    for index in range(2):
        image = np.zeros((300, 400, 3), np.uint8)
        a, b = _person(20, 60, track_id=3), _person(220, 60, track_id=8)
        draw.process([_frame(image, index=index, poses=_poses(a, b))])
        images.append(image)
        assert tuple(image[_midpoint(a[0], 14, 16)]) == track_color(3)
        assert tuple(image[_midpoint(b[0], 14, 16)]) == track_color(8)
        # the ID label sits above the person's highest keypoint
        top, left = int(a[0][:, 1].min()), int(a[0][:, 0].min())
        label = image[top - 30:top, left:left + 40]
        assert (label == track_color(3)).all(axis=-1).any()
    assert track_color(3) != track_color(8) and track_color(3) == track_color(3)
    np.testing.assert_array_equal(images[0], images[1])  # same IDs, same picture on every frame


def test_track_colours_are_distinct_for_neighbouring_ids():
    colours = {track_color(i) for i in range(20)}
    assert len(colours) == 20


def test_detection_boxes_and_info_line():
    step = build_step({"type": "draw"})
    step.start()
    image = np.zeros((200, 300, 3), np.uint8)
    det = Detections(np.array([[100, 80, 180, 190]], np.float32), np.array([0.9]), np.array([0]),
                     np.array([5]))
    step.process([_frame(image, detections=det)])
    assert tuple(image[135, 100]) == track_color(5) and tuple(image[190, 140]) == track_color(5)
    assert not image[135, 140].any()  # inside the box untouched
    assert image[5:25, 5:60].any()  # the info line: source name and frame index


def test_draws_into_a_ring_slot():
    ring = FrameRing.create(1, (120, 160, 3))
    try:
        step = build_step({"type": "draw"})
        step.start()
        view = ring.view(0, (120, 160, 3))
        step.process([_frame(view)])
        assert ring.view(0, (120, 160, 3))[5:25, 5:60].any()
    finally:
        del view
        ring.unlink()
        ring.close()


@pytest.mark.parametrize("options, message", [
    ({"keypoint_threshold": 1.5}, "keypoint_threshold must be in [0, 1]"),
    ({"thickness": 0}, "thickness must be >= 1"),
    ({"keypoint_radius": -1}, "keypoint_radius must be >= 0"),
])
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_step({"type": "draw", **options})


def test_all_skeleton_limbs_are_valid_keypoints():
    assert all(0 <= a < NUM_KEYPOINTS and 0 <= b < NUM_KEYPOINTS for a, b in COCO_SKELETON)


def test_fps_is_measured_over_a_window_even_with_bursts():
    step = build_step({"type": "draw"})
    # batches of 4 frames drawn together every 0.4 s: 10 frames per second, not "instant"
    times = [k * 0.4 + j * 0.001 for k in range(8) for j in range(4)]
    fps = [step.fps(0, t) for t in times]
    assert fps[0] is None
    assert 8.0 < fps[-1] < 12.5


def test_id_label_of_a_box_at_the_top_edge_goes_inside_the_box():
    step = build_step({"type": "draw", "draw_info": False})
    step.start()
    image = np.zeros((200, 300, 3), np.uint8)
    det = Detections(np.array([[100, 2, 180, 190]], np.float32), np.array([0.9]), np.array([0]), np.array([0]))
    step.process([_frame(image, detections=det)])
    inside = image[5:30, 104:140].astype(int)  # below the box's top edge, right of its left edge
    near = np.abs(inside - track_color(0)).max(axis=-1) < 60  # the "0", anti-aliased, in the track's colour
    assert near.sum() > 10
    assert (image[2, 100:181] == track_color(0)).all()  # the box's top edge is not hidden by the label


def test_crowdpose_poses_are_drawn_with_their_skeleton_and_sides(draw):
    from streampose.builtin_steps.render import CENTRE_BGR
    from streampose.keypoint_sets import CROWDPOSE_14

    # CrowdPose order: shoulders, elbows, wrists, hips, knees, ankles (left, right), head, neck.
    xs = [30, 70, 25, 75, 20, 80, 38, 62, 38, 62, 38, 62, 50, 50]
    ys = [50, 50, 80, 80, 110, 110, 120, 120, 160, 160, 195, 195, 5, 35]
    kp = np.stack([np.array(xs, np.float32) + 20, np.array(ys, np.float32) + 20], axis=1)
    poses = Poses(kp[None], np.full((1, 14), 0.9, np.float32), np.ones(1), np.array([[40, 25, 100, 215]]))
    assert poses.keypoint_set is CROWDPOSE_14
    image = np.zeros((260, 160, 3), np.uint8)
    build_step({"type": "draw", "draw_info": False, "draw_boxes": False, "keypoint_radius": 0}).process(
        [_frame(image, poses=poses)])
    head_neck = _midpoint(kp, 12, 13)
    assert tuple(image[head_neck]) == CENTRE_BGR  # a limb COCO does not have, centre colour
    assert tuple(image[_midpoint(kp, 0, 2)]) == LEFT_BGR  # left shoulder → left elbow
    assert tuple(image[_midpoint(kp, 7, 9)]) == RIGHT_BGR  # right hip → right knee
    lit = image.any(axis=2)  # every CrowdPose limb is drawn
    for a, b in CROWDPOSE_14.skeleton:
        assert lit[_midpoint(kp, a, b)], (a, b)
