"""Person crops for top-down pose estimation: box → center/scale → affine warp → network input.

The geometry is the official one of the HRNet top-down code
(leoxiaobin/deep-high-resolution-net.pytorch: ``lib/dataset/coco.py``
``_xywh2cs`` and ``lib/utils/transforms.py`` ``get_affine_transform``,
``affine_transform``, ``transform_preds``), reimplemented here with the same
dtypes, so crops are bitwise those of the official code with OpenCV 5:

- a box (x, y, w, h) becomes center = (x + w/2, y + h/2) (float32) and a
  scale (w, h) / 200 widened to the crop aspect ratio, times the padding 1.25
  (float32);
- the crop is ``cv2.warpAffine`` (INTER_LINEAR, constant 0 border) with the
  matrix that maps the scaled box onto the input size;
- the network input is ``(u8 / 255 - mean) / std`` in float32, RGB, CHW.

Everything that turns images and boxes into a network batch goes through
:func:`build_crop_batch`, so a GPU implementation can replace it in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

PIXEL_STD = 200.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropSpec:
    """How a top-down model wants its person crops.

    input_size_wh: crop (width, height) in pixels; padding: box enlargement
    (1.25 official); pixel_std: the official scale unit (200 px); mean, std:
    per-channel normalisation in [0, 1] units, in the channel order the
    network takes; rgb: channel order of the network input (BGR when False).
    The network input is ``(u8 / 255 - mean) / std``; e.g. mean = std = 0.5
    gives ``u8 / 127.5 - 1``.
    """

    input_size_wh: tuple[int, int] = (192, 256)
    padding: float = 1.25
    pixel_std: float = PIXEL_STD
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    rgb: bool = True

    @property
    def aspect_ratio(self) -> float:
        """Width / height of the crop (0.75 for 192x256)."""
        return self.input_size_wh[0] * 1.0 / self.input_size_wh[1]


HRNET_CROP = CropSpec()


def xywh_to_center_scale(xywh: np.ndarray, *, aspect_ratio: float = 0.75, padding: float = 1.25,
                         pixel_std: float = PIXEL_STD) -> tuple[np.ndarray, np.ndarray]:
    """Official center/scale of boxes (x, y, w, h) (``_xywh2cs``).

    xywh: (N, 4) any float dtype (computed in float64 as the official Python
    floats). Returns center (N, 2) float32 in pixels and scale (N, 2) float32
    in units of ``pixel_std``, widened to ``aspect_ratio`` and padded.
    """
    xywh = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    x, y, w, h = xywh.T
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=1).astype(np.float32)
    wider = w > aspect_ratio * h
    taller = w < aspect_ratio * h
    h = np.where(wider, w * 1.0 / aspect_ratio, h)
    w = np.where(taller, h * aspect_ratio, w)
    scale = np.stack([w * 1.0 / pixel_std, h * 1.0 / pixel_std], axis=1).astype(np.float32)
    return center, scale * np.float32(padding)


def xyxy_to_center_scale(xyxy: np.ndarray, crop: CropSpec = HRNET_CROP) -> tuple[np.ndarray, np.ndarray]:
    """:func:`xywh_to_center_scale` for boxes (x1, y1, x2, y2) and a :class:`CropSpec`."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    return xywh_to_center_scale(xywh, aspect_ratio=crop.aspect_ratio, padding=crop.padding,
                                pixel_std=crop.pixel_std)


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


def crop_transforms(centers: np.ndarray, scales: np.ndarray, output_size_wh, *, inv: bool = False,
                    pixel_std: float = PIXEL_STD) -> np.ndarray:
    """:func:`get_affine_transform` for N boxes: (N, 2, 3) float64."""
    out = np.empty((len(centers), 2, 3), dtype=np.float64)
    for i, (center, scale) in enumerate(zip(centers, scales)):
        out[i] = get_affine_transform(center, scale, output_size_wh, inv=inv, pixel_std=pixel_std)
    return out


def affine_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Apply (2, 3) or per-row (N, 2, 3) affine matrices to points (..., 2); float64 result."""
    points = np.asarray(points, dtype=np.float64)
    transform = np.asarray(transform, dtype=np.float64)
    if transform.ndim == 2:
        return points @ transform[:, :2].T + transform[:, 2]
    # (N, K, 2) points, (N, 2, 3) matrices
    return np.einsum("nkj,nij->nki", points, transform[:, :, :2]) + transform[:, None, :, 2]


def transform_preds(coords: np.ndarray, centers: np.ndarray, scales: np.ndarray, output_size_wh,
                    *, pixel_std: float = PIXEL_STD) -> np.ndarray:
    """The official ``transform_preds`` for N people: output-space (N, K, 2) → image pixels (N, K, 2) float64.

    output_size_wh: the (w, h) of the space ``coords`` are in (heatmap size
    for heatmaps, input size for SimDR).
    """
    coords = np.asarray(coords).reshape(len(centers), -1, 2)
    inverse = crop_transforms(centers, scales, output_size_wh, inv=True, pixel_std=pixel_std)
    return affine_points(coords, inverse)


def warp_crops(image: np.ndarray, transforms: np.ndarray, size_wh) -> np.ndarray:
    """Warp one image into N crops: (N, h, w, C) uint8, same channel order as ``image``.

    transforms: (N, 2, 3) image → crop matrices (:func:`crop_transforms`).
    ``cv2.warpAffine`` with INTER_LINEAR and a constant 0 border, as the official code.
    """
    import cv2

    w, h = int(size_wh[0]), int(size_wh[1])
    out = np.empty((len(transforms), h, w, image.shape[2]), dtype=image.dtype)
    for i, matrix in enumerate(transforms):
        out[i] = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR)
    return out


def normalize_crops(crops_bgr, crop: CropSpec, device=None):
    """uint8 BGR crops (N, h, w, 3) (numpy or torch) → float32 network input (N, 3, h, w) on ``device``.

    ``(u8 / 255 - mean) / std`` per channel, every operation in float32 (as
    torchvision ``ToTensor`` + ``Normalize``); channels reordered to RGB when
    ``crop.rgb``.
    """
    import torch

    batch = torch.as_tensor(crops_bgr)
    if device is not None:
        batch = batch.to(device, non_blocking=True)
    if crop.rgb:
        batch = batch.flip(-1)
    batch = batch.permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(crop.mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(crop.std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    return batch.sub(mean).div(std).contiguous()


def build_crop_batch(images: Sequence[np.ndarray], image_indices: np.ndarray, transforms: np.ndarray,
                     crop: CropSpec, device=None):
    """The network batch for crops of several frames: (N, 3, h, w) float32 tensor on ``device``.

    images: BGR uint8 frames; image_indices: (N,) which frame each crop is
    taken from; transforms: (N, 2, 3) frame → crop matrices. This is the one
    place that makes crops (CPU ``cv2.warpAffine`` today).
    """
    w, h = crop.input_size_wh
    crops = np.empty((len(transforms), h, w, 3), dtype=np.uint8)
    for index in np.unique(image_indices):
        rows = np.flatnonzero(image_indices == index)
        crops[rows] = warp_crops(images[int(index)], transforms[rows], (w, h))
    return normalize_crops(crops, crop, device)
