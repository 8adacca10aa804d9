"""Bottom-up input geometry against the official HigherHRNet preprocessing (goldens, OpenCV 5)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from streampose.models.higherhrnet.resize import (
    group_by_size,
    input_to_frame,
    multi_scale_size,
    normalize_to_tensor,
    transform_points,
    warp_to_input,
)


@pytest.fixture(scope="module")
def higher_golden(shared_dir):
    return np.load(shared_dir / "golden" / "higherhrnet_w32_512.npz")


@pytest.fixture(scope="module")
def rendered_golden(shared_dir):
    return np.load(shared_dir / "golden" / "higherhrnet_parser_rendered.npz")


def _read(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


def test_bus_geometry_and_input_are_bitwise_official(shared_dir, higher_golden):
    image = _read(shared_dir / "media" / "bus.jpg")
    geometry = multi_scale_size(image.shape[:2], 512)
    assert geometry.size_wh == (512, 704)
    assert geometry.center.dtype == np.int64
    assert np.array_equal(geometry.center, higher_golden["bus_center"])
    assert np.array_equal(geometry.scale, higher_golden["bus_scale"])
    assert np.array_equal(geometry.trans, higher_golden["bus_trans"])
    x = normalize_to_tensor(warp_to_input(image, geometry)[None])
    assert x.dtype == torch.float32 and x.shape == (1, 3, 704, 512)
    assert torch.equal(x, torch.from_numpy(higher_golden["bus_input"]))


def test_landscape_coco_image_geometry(shared_dir, rendered_golden):
    image = _read(shared_dir / "coco" / "000000196141.jpg")
    geometry = multi_scale_size(image.shape[:2], 512)
    assert geometry.size_wh == (768, 512)
    assert np.array_equal(geometry.center, rendered_golden["196141_center"])
    assert np.array_equal(geometry.scale, rendered_golden["196141_scale"])
    assert np.array_equal(geometry.trans, rendered_golden["196141_trans"])


@pytest.mark.parametrize(("hw", "size", "expected_wh"), [
    ((480, 640), 512, (704, 512)),     # 640/480*512 = 682.7 -> up to 704
    ((1080, 810), 512, (512, 704)),    # portrait: width is the short side
    ((720, 1280), 640, (1152, 640)),   # 1137.8 -> 1152
    ((512, 512), 512, (512, 512)),
])
def test_short_side_to_input_size_long_side_up_to_64(hw, size, expected_wh):
    geometry = multi_scale_size(hw, size)
    assert geometry.size_wh == expected_wh
    assert all(s % 64 == 0 for s in geometry.size_wh)


def test_smaller_scale_shrinks_input_and_keeps_the_window():
    full = multi_scale_size((480, 640), 512, 1.0, 0.5)
    half = multi_scale_size((480, 640), 512, 0.5, 0.5)
    assert half.size_wh == (384, 256) and full.size_wh == (768, 512)
    assert np.allclose(full.scale, half.scale)


def test_input_to_frame_inverts_the_warp():
    geometry = multi_scale_size((429, 640), 512)
    frame_points = np.array([[0.0, 0.0], [639.0, 428.0], [100.5, 200.25]])
    in_input = transform_points(frame_points, geometry.trans)
    assert np.allclose(input_to_frame(in_input, geometry), frame_points, atol=1e-6)


def test_group_by_size_keeps_first_seen_order():
    images = [np.zeros((4, 6, 3), np.uint8), np.zeros((5, 6, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)]
    assert group_by_size(images) == {(4, 6): [0, 2], (5, 6): [1]}


@pytest.mark.parametrize("bad", [(0, 10), (10, -1)])
def test_bad_frame_size_is_rejected(bad):
    with pytest.raises(ValueError, match="frame size"):
        multi_scale_size(bad, 512)


def test_normalize_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        normalize_to_tensor(np.zeros((1, 8, 8, 3), np.float32))
