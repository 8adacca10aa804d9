"""Bottom-up input geometry: the official HigherHRNet resize and its inverse.

Facts from HRNet/HigherHRNet-Human-Pose-Estimation (``lib/utils/transforms.py``:
``get_multi_scale_size``, ``resize_align_multi_scale``, ``get_affine_transform``,
``get_final_preds``): the short side of the frame goes to the input size (512
or 640), the long side to the frame's aspect rounded *up* to a multiple of 64,
and the frame is warped there by a centred affine transform (bilinear,
constant-0 border). ``center`` is integer pixels, ``scale`` the warped window
size in units of 200 pixels. The dtypes matter for bitwise agreement with the
official inputs: the centre is int64 and the scale float64, the affine points
are float32 and ``cv2.getAffineTransform`` solves in float64.

Everything here works on ``(height, width)`` and numpy arrays; the warp takes
BGR or RGB alike (channels are independent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import get_affine_transform

#: ImageNet statistics of the official ToTensor + Normalize, RGB order.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ResizeGeometry:
    """Where one frame goes in network-input pixels.

    size_wh: (width, height) of the warped input; center: (2,) int64 frame
    pixels; scale: (2,) float64 window size / 200. ``trans`` maps frame
    pixels to input pixels, (2, 3) float64.
    """

    size_wh: tuple[int, int]
    center: np.ndarray
    scale: np.ndarray

    @property
    def trans(self) -> np.ndarray:
        return affine_transform_matrix(self.center, self.scale, self.size_wh)


def multi_scale_size(frame_hw: tuple[int, int], input_size: int, current_scale: float = 1.0,
                     min_scale: float = 1.0) -> ResizeGeometry:
    """The official ``get_multi_scale_size``: input size, centre and scale of one frame.

    frame_hw: frame (height, width); input_size: 512 or 640 (the model's);
    current_scale / min_scale: the test scale factor and the smallest one of
    the scale set (1.0 / 1.0 for single-scale). Raises ValueError for a bad size.
    """
    h, w = int(frame_hw[0]), int(frame_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"frame size must be positive, got {h}x{w}")
    if input_size <= 0 or current_scale <= 0 or min_scale <= 0:
        raise ValueError(f"input_size and scales must be positive, got {input_size}, {current_scale}, {min_scale}")
    center = np.array([int(w / 2.0 + 0.5), int(h / 2.0 + 0.5)])
    min_input_size = int((min_scale * input_size + 63) // 64 * 64)
    if w < h:
        w_resized = int(min_input_size * current_scale / min_scale)
        h_resized = int(int((min_input_size / w * h + 63) // 64 * 64) * current_scale / min_scale)
        scale_w = w / 200.0
        scale_h = h_resized / w_resized * w / 200.0
    else:
        h_resized = int(min_input_size * current_scale / min_scale)
        w_resized = int(int((min_input_size / h * w + 63) // 64 * 64) * current_scale / min_scale)
        scale_h = h / 200.0
        scale_w = w_resized / h_resized * h / 200.0
    return ResizeGeometry((w_resized, h_resized), center, np.array([scale_w, scale_h]))


def affine_transform_matrix(center: np.ndarray, scale: np.ndarray, output_size_wh: tuple[int, int],
                            *, inverse: bool = False) -> np.ndarray:
    """The official ``get_affine_transform`` without rotation or shift.

    Maps frame pixels to output pixels (or back with ``inverse``); (2, 3) float64.
    """
    return get_affine_transform(center, scale, output_size_wh, inv=inverse)


def warp_to_input(image: np.ndarray, geometry: ResizeGeometry) -> np.ndarray:
    """Warp an (H, W, C) uint8 frame to the network input size (bilinear, border 0)."""
    import cv2

    return cv2.warpAffine(image, geometry.trans, geometry.size_wh)


def transform_points(points_xy: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (..., 2) points; float64 out."""
    points = np.asarray(points_xy, dtype=np.float64)
    return points @ trans[:, :2].T + trans[:, 2]


def input_to_frame(points_xy: np.ndarray, geometry: ResizeGeometry,
                   map_size_wh: tuple[int, int] | None = None) -> np.ndarray:
    """Map (..., 2) points from map pixels back to frame pixels (official ``get_final_preds``).

    map_size_wh: the size of the map the points are in (default: the input
    size of ``geometry``); float64 out.
    """
    size = geometry.size_wh if map_size_wh is None else map_size_wh
    inverse = affine_transform_matrix(geometry.center, geometry.scale, size, inverse=True)
    return transform_points(points_xy, inverse)


def group_by_size(images: list[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    """Indices of the frames of each (height, width), in first-seen order, for batching."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault((int(image.shape[0]), int(image.shape[1])), []).append(i)
    return groups


def normalize_to_tensor(inputs_bgr: np.ndarray, device=None):
    """(N, H, W, 3) uint8 BGR input crops → (N, 3, H, W) float32 normalized RGB torch tensor.

    The official ToTensor + Normalize, every step in float32:
    ``(u8 / 255 - mean) / std``.
    """
    import torch

    if inputs_bgr.dtype != np.uint8 or inputs_bgr.ndim != 4 or inputs_bgr.shape[3] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {inputs_bgr.shape} {inputs_bgr.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(inputs_bgr[..., ::-1]))
    if device is not None:
        x = x.to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN_RGB, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub(mean).div(std).contiguous()
