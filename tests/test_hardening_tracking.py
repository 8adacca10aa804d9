"""Defect classes 9 and 10 of issue 14: the One-Euro warning and the one fp16 rule."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from streampose.device import FP16_NEEDS_CUDA, check_fp16_device
from streampose.records import Frame, FramePacket, Poses
from streampose.step import build_step

K = 17


def _frame(index: int, xyxy, track_ids=None) -> Frame:
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    n = len(xyxy)
    packet = FramePacket(source_id=0, source_name="s0", index=index, pts_s=index / 30, shape=(480, 640, 3),
                         capture_time=0.0)
    centers = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    poses = Poses(np.repeat(centers[:, None, :], K, axis=1), np.ones((n, K)), np.ones(n), xyxy)
    if track_ids is not None:
        poses.track_ids = np.asarray(track_ids, np.int64)
    packet.poses = poses
    return Frame(packet, np.zeros((1, 1, 3), np.uint8))


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "one_euro" in r.getMessage()]


@pytest.mark.parametrize("min_hits", [3, 8])
def test_one_euro_does_not_warn_while_the_tracker_confirms(caplog, min_hits):
    tracker = build_step({"type": "iou_tracker", "min_hits": min_hits})
    smoother = build_step({"type": "one_euro_filter"})
    caplog.set_level(logging.WARNING)
    seen_unconfirmed = 0
    for f in range(min_hits + 2):
        frame = _frame(f, [[10 + f, 10, 60 + f, 110], [300, 50, 350, 150]])
        tracker.process([frame])
        seen_unconfirmed += int((frame.packet.poses.track_ids < 0).all())
        smoother.process([frame])
    assert seen_unconfirmed >= min_hits - 1  # the case that warned before: every person unconfirmed
    assert _warnings(caplog) == []


def test_one_euro_warns_once_when_no_tracker_ran(caplog):
    smoother = build_step({"type": "one_euro_filter"})
    caplog.set_level(logging.WARNING)
    for f in range(3):
        smoother.process([_frame(f, [[10, 10, 60, 110]])])
    messages = _warnings(caplog)
    assert len(messages) == 1 and "no tracker ran" in messages[0]


def test_one_euro_accepts_ids_from_elsewhere_without_warning(caplog):
    smoother = build_step({"type": "one_euro_filter"})
    caplog.set_level(logging.WARNING)
    smoother.process([_frame(0, [[10, 10, 60, 110]], track_ids=[7])])
    assert _warnings(caplog) == []


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_one_fp16_rule(device):
    with pytest.raises(ValueError, match="half: fp16 needs a CUDA device"):
        check_fp16_device(torch.device(device) if isinstance(device, str) else device, "half")
    check_fp16_device(torch.device("cuda:0"), "half")  # CUDA passes (nothing is allocated)
    assert "CPU" in FP16_NEEDS_CUDA


def test_yolov5_half_on_cpu_is_an_error_like_fp16_precision(shared_dir):
    from streampose.errors import ConfigError

    weights = shared_dir / "weights" / "yolov5n.pt"
    yolo = build_step({"type": "yolov5_detector", "weights": str(weights), "half": True, "device": "cpu"})
    with pytest.raises(ConfigError, match="yolov5_detector: half: fp16 needs a CUDA device"):
        yolo.start()
    pose = build_step({"type": "topdown_pose", "weights": str(weights), "precision": "fp16", "device": "cpu"})
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        pose.start()
