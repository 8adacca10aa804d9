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

from typing import Sequence

import numpy as np

# CropSpec and the affine helpers live below the flows (models and geometry); re-exported here
# because callers of the crop geometry look for them in this module.
from ..geometry import PIXEL_STD, affine_points, get_affine_transform  # noqa: F401
from ..models.protocols import IMAGENET_MEAN, IMAGENET_STD, CropSpec  # noqa: F401

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


def crop_transforms(centers: np.ndarray, scales: np.ndarray, output_size_wh, *, inv: bool = False,
                    pixel_std: float = PIXEL_STD) -> np.ndarray:
    """:func:`get_affine_transform` for N boxes: (N, 2, 3) float64."""
    out = np.empty((len(centers), 2, 3), dtype=np.float64)
    for i, (center, scale) in enumerate(zip(centers, scales)):
        out[i] = get_affine_transform(center, scale, output_size_wh, inv=inv, pixel_std=pixel_std)
    return out


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
