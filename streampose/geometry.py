"""Affine geometry shared by the top-down and bottom-up flows (a neutral home: neither imports the other).

``get_affine_transform`` is the official one of the HRNet code
(leoxiaobin/deep-high-resolution-net.pytorch ``lib/utils/transforms.py``, the
same function HigherHRNet uses), reimplemented with the same dtypes so
crops and resizes are bitwise those of the official code.
"""

from __future__ import annotations

import numpy as np

#: the official scale unit: a scale of 1.0 is 200 pixels.
PIXEL_STD = 200.0


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    direction = a - b
    return b + np.array([-direction[1], direction[0]], dtype=np.float32)


def get_affine_transform(center, scale, output_size_wh, *, rot: float = 0.0, shift=(0.0, 0.0),
                         inv: bool = False, pixel_std: float = PIXEL_STD) -> np.ndarray:
    """The official ``get_affine_transform``: (2, 3) float64 matrix image → output (or back with ``inv``).

    center, scale: as :func:`xywh_to_center_scale` (their dtypes matter: the
    official code keeps float32 scale for top-down and float64 for
    HigherHRNet; pass them unchanged); output_size_wh: (w, h); rot in degrees.
    """
    import cv2

    if not isinstance(scale, (np.ndarray, list, tuple)):
        scale = np.array([scale, scale])
    scale = np.asarray(scale)
    center = np.asarray(center)
    shift = np.asarray(shift, dtype=np.float32)
    scale_px = scale * pixel_std
    src_w = scale_px[0]
    dst_w, dst_h = output_size_wh[0], output_size_wh[1]
    rot_rad = np.pi * rot / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    half = src_w * -0.5
    src_dir = [0 * cs - half * sn, 0 * sn + half * cs]
    dst_dir = np.array([0, dst_w * -0.5], np.float32)

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale_px * shift
    src[1, :] = center + src_dir + scale_px * shift
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    src[2:, :] = _third_point(src[0, :], src[1, :])
    dst[2:, :] = _third_point(dst[0, :], dst[1, :])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def affine_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Apply (2, 3) or per-row (N, 2, 3) affine matrices to points (..., 2); float64 result."""
    points = np.asarray(points, dtype=np.float64)
    transform = np.asarray(transform, dtype=np.float64)
    if transform.ndim == 2:
        return points @ transform[:, :2].T + transform[:, 2]
    # (N, K, 2) points, (N, 2, 3) matrices
    return np.einsum("nkj,nij->nki", points, transform[:, :, :2]) + transform[:, None, :, 2]
