"""iou_tracker and one_euro_filter steps: records labelled, per-source state, options."""

from __future__ import annotations

import numpy as np
import pytest

from streampose.builtin_steps.tracking import REMOVED_TRACK_IDS
from streampose.errors import ConfigError
from streampose.records import Detections, EndOfStream, Frame, FramePacket, Poses, StreamStart
from streampose.step import build_step

K = 17


def _packet(source_id: int, index: int, xyxy, *, poses: bool = True, detections: bool = False,
            pts_s: float | None = None) -> Frame:
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    n = len(xyxy)
    packet = FramePacket(source_id=source_id, source_name=f"s{source_id}", index=index, pts_s=pts_s,
                         shape=(480, 640, 3), capture_time=0.0)
    if detections:
        packet.detections = Detections(xyxy, np.ones(n), np.zeros(n, np.int64))
    if poses:
        centers = (xyxy[:, :2] + xyxy[:, 2:]) / 2
        keypoints = np.repeat(centers[:, None, :], K, axis=1)
        packet.poses = Poses(keypoints, np.ones((n, K)), np.ones(n), xyxy)
    return Frame(packet, np.zeros((1, 1, 3), np.uint8))


def _boxes(f: int) -> list[list[float]]:
    return [[10 + 2 * f, 10, 60 + 2 * f, 110], [300, 50, 350, 150]]


def test_tracker_step_labels_poses_per_source_and_never_reuses_ids_after_restart():
    step = build_step({"type": "iou_tracker", "min_hits": 2, "max_age": 5})
    step.start()
    for f in range(4):
        # Two sources interleaved, one with the people in reverse order.
        a, b = _packet(0, f, _boxes(f)), _packet(1, f, _boxes(f)[::-1])
        step.process([a, b])
    assert a.packet.poses.track_ids.tolist() == [0, 1]
    assert b.packet.poses.track_ids.tolist() == [0, 1]  # each source has its own tracks
    step.end_of_stream(EndOfStream(0, "s0", 4))
    frames = [_packet(0, 10 + f, [[400, 400, 450, 500]]) for f in range(3)]
    step.process(frames)
    assert [fr.packet.poses.track_ids.tolist() for fr in frames] == [[-1], [2], [2]]
    # Source 1 is unaffected by source 0's end.
    b = _packet(1, 4, _boxes(4)[::-1])
    step.process([b])
    assert b.packet.poses.track_ids.tolist() == [0, 1]
    step.close()


def test_tracker_step_detection_only_pipeline_labels_detections():
    step = build_step({"type": "iou_tracker", "min_hits": 1})
    frame = _packet(0, 0, _boxes(0), poses=False, detections=True)
    step.process([frame])
    assert frame.packet.detections.track_ids.tolist() == [0, 1]
    assert frame.packet.poses is None


def test_tracker_step_copies_ids_to_detections_that_are_the_pose_boxes():
    step = build_step({"type": "iou_tracker", "min_hits": 1})
    frame = _packet(0, 0, _boxes(0), detections=True)
    step.process([frame])
    assert frame.packet.detections.track_ids.tolist() == frame.packet.poses.track_ids.tolist() == [0, 1]
    # Different people in detections and poses: detections are left alone.
    frame = _packet(0, 1, _boxes(1), detections=True)
    frame.packet.detections = Detections(np.array([[0, 0, 5, 5]]), [1.0], [0])
    step.process([frame])
    assert frame.packet.detections.track_ids.tolist() == [-1]


def test_tracker_step_reports_removed_tracks_and_skips_packets_without_records():
    step = build_step({"type": "iou_tracker", "min_hits": 1, "max_age": 1})
    step.process([_packet(0, 0, _boxes(0))])
    nothing = _packet(0, 1, [], poses=False)
    step.process([nothing])  # no detector ran: tracks do not age
    frames = [_packet(0, 2 + f, np.zeros((0, 4))) for f in range(3)]
    step.process(frames)
    assert REMOVED_TRACK_IDS not in frames[0].packet.extras
    assert frames[1].packet.extras[REMOVED_TRACK_IDS] == (0, 1)


@pytest.mark.parametrize("spec, message", [
    ({"type": "iou_tracker", "max_age": -1}, "max_age=-1 is out of range"),
    ({"type": "iou_tracker", "min_similarity": 2.0}, "min_similarity=2.0 is out of range"),
    ({"type": "iou_tracker", "min_hits": 1.5}, "expected an integer"),
    ({"type": "iou_tracker", "speed": 1}, "unknown option"),
    ({"type": "one_euro_filter", "beta": -0.5}, "beta=-0.5 is out of range"),
    ({"type": "one_euro_filter", "max_gap_s": 0}, "max_gap_s=0.0 is out of range"),
    ({"type": "one_euro_filter", "max_gap_s": 0.05, "fps": 10}, r"max_gap_s=0.05 must be longer than one frame "
                                                                 r"at fps=10.0 \(0.1 s\)"),
])
def test_step_options_are_validated(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_step(spec, "stages[2].steps[0]")


def test_one_euro_step_smooths_tracked_poses_using_timestamps():
    tracker = build_step({"type": "iou_tracker", "min_hits": 1})
    smoother = build_step({"type": "one_euro_filter"})
    smoother.start()
    rng = np.random.default_rng(0)
    raw, smoothed = [], []
    for f in range(60):
        frame = _packet(0, f, _boxes(0), pts_s=0.5 + f / 25)
        frame.packet.poses.keypoints += rng.normal(0, 3, frame.packet.poses.keypoints.shape).astype(np.float32)
        raw.append(frame.packet.poses.keypoints.copy())
        tracker.process([frame])
        smoother.process([frame])
        smoothed.append(frame.packet.poses.keypoints.copy())
    jitter = [np.abs(np.diff(np.stack(x)[20:], axis=0)).mean() for x in (raw, smoothed)]
    assert jitter[0] > 4 * jitter[1]
    assert smoothed[-1].dtype == np.float32


def test_one_euro_step_time_falls_back_to_index_over_fps_and_drops_removed_tracks():
    smoother = build_step({"type": "one_euro_filter", "fps": 10.0})
    smoother.start_of_stream(StreamStart(0, "s0", 640, 480, fps=25.0, frame_count=None, live=True))
    frame = _packet(0, 50, _boxes(0))
    assert smoother._time_of(frame.packet) == pytest.approx(2.0)  # the source's 25 fps wins
    assert smoother._time_of(_packet(1, 50, _boxes(0)).packet) == pytest.approx(5.0)  # option fps
    frame.packet.poses.track_ids = np.array([4, 7])
    smoother.process([frame])
    assert smoother._filters[0].track_ids == {4, 7}
    nxt = _packet(0, 51, _boxes(0))
    nxt.packet.poses.track_ids = np.array([7, -1])
    nxt.packet.extras[REMOVED_TRACK_IDS] = (4,)
    smoother.process([nxt])
    assert smoother._filters[0].track_ids == {7}
    smoother.end_of_stream(EndOfStream(0, "s0", 52))
    assert 0 not in smoother._filters
