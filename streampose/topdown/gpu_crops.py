"""Person crops made on the device from the frame tensor: one ``grid_sample`` per frame.

The device twin of :func:`streampose.topdown.crops.build_crop_batch`: the
same frame→crop affine matrices (official geometry), the same
normalisation, but the warp runs where the network runs, so on a GPU only
the uint8 frame crosses the bus (once per frame, however many people it
holds) and no per-person ``cv2.warpAffine`` loop runs on the CPU.

How it reproduces ``cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT 0)``: for a
crop pixel (x, y) OpenCV samples the frame at ``inv(M) @ (x, y, 1)`` with
bilinear weights over the four neighbours, taps outside the frame counting
as 0. ``affine_grid`` + ``grid_sample(mode="bilinear", padding_mode="zeros",
align_corners=False)`` compute the same sample once the inverse matrix is
expressed in normalised coordinates (pixel centre i ↔ (2i + 1)/size - 1). The
sampled values are rounded to grey levels (``round_to_uint8``), as OpenCV
writes a uint8 crop, and normalised as ``normalize_crops``. Differences left:
OpenCV quantises sample positions to 1/32 px and weights to 1/2^15
(fixed-point ``INTER_BITS``), we sample exactly in float32; measured on the
COCO images (tests/test_gpu_path_crops.py) this moves a grey level by at most
a few units on a small fraction of pixels (the tolerance the tests state).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .crops import CropSpec


def normalized_inverse_affines(transforms: np.ndarray, frame_hw: tuple[int, int],
                               size_wh: tuple[int, int]) -> np.ndarray:
    """(N, 2, 3) frame→crop pixel matrices → (N, 2, 3) ``affine_grid`` thetas (float64).

    theta maps normalised crop coordinates to normalised frame coordinates
    (``align_corners=False`` convention).
    """
    transforms = np.asarray(transforms, dtype=np.float64).reshape(-1, 2, 3)
    n = len(transforms)
    full = np.zeros((n, 3, 3), dtype=np.float64)
    full[:, :2] = transforms
    full[:, 2, 2] = 1.0
    inverse = np.linalg.inv(full)  # crop pixels → frame pixels, as warpAffine inverts M
    w_out, h_out = float(size_wh[0]), float(size_wh[1])
    h_in, w_in = float(frame_hw[0]), float(frame_hw[1])
    # normalised crop → crop pixels: x = ((x_n + 1) * w - 1) / 2
    from_norm = np.array([[w_out / 2, 0, (w_out - 1) / 2], [0, h_out / 2, (h_out - 1) / 2], [0, 0, 1]])
    # frame pixels → normalised frame: x_n = (2x + 1) / W - 1
    to_norm = np.array([[2 / w_in, 0, 1 / w_in - 1], [0, 2 / h_in, 1 / h_in - 1], [0, 0, 1]])
    return (to_norm @ inverse @ from_norm)[:, :2]


def warp_crops_on_device(frame_hwc, transforms: np.ndarray, size_wh: tuple[int, int], *,
                         round_to_uint8: bool = True):
    """One frame into N crops on the frame's device: (N, C, h, w) float32 grey levels, channel order kept.

    frame_hwc: (H, W, C) uint8 tensor (on any device); transforms: (N, 2, 3)
    frame→crop matrices (``crop_transforms``); size_wh: crop (w, h).
    round_to_uint8: round and clamp to 0..255 as an OpenCV uint8 crop.
    """
    import torch
    import torch.nn.functional as F

    h_in, w_in, channels = frame_hwc.shape
    w, h = int(size_wh[0]), int(size_wh[1])
    n = len(transforms)
    if n == 0:
        return torch.zeros((0, channels, h, w), dtype=torch.float32, device=frame_hwc.device)
    theta = torch.from_numpy(normalized_inverse_affines(transforms, (h_in, w_in), (w, h)).astype(np.float32))
    theta = theta.to(frame_hwc.device, non_blocking=True)
    grid = F.affine_grid(theta, [n, channels, h, w], align_corners=False)  # (n, h, w, 2)
    # All crops of the frame stacked vertically in one grid: one kernel, no copy of the frame per person.
    frame = frame_hwc.permute(2, 0, 1).unsqueeze(0).float()
    crops = F.grid_sample(frame, grid.reshape(1, n * h, w, 2), mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    crops = crops.reshape(channels, n, h, w).permute(1, 0, 2, 3)
    if round_to_uint8:
        crops = crops.round().clamp_(0, 255)
    return crops


def normalize_device_crops(crops_bgr_nchw, crop: CropSpec):
    """Grey-level crops (N, 3, h, w) BGR → network input, the arithmetic of ``normalize_crops``."""
    import torch

    batch = crops_bgr_nchw.flip(1) if crop.rgb else crops_bgr_nchw
    batch = batch.div(255)
    mean = torch.tensor(crop.mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(crop.std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    return batch.sub(mean).div(std).contiguous()


def crop_batch_on_device(frames: dict, image_indices: np.ndarray, transforms: np.ndarray, crop: CropSpec, *,
                         round_to_uint8: bool = True):
    """Device twin of ``build_crop_batch``: (N, 3, h, w) float32 on the frames' device, rows in input order.

    frames: frame index → (H, W, 3) uint8 BGR tensor (already on the device,
    e.g. :meth:`DeviceCropMaker.upload`); image_indices (N,), transforms (N, 2, 3).
    """
    import torch

    image_indices = np.asarray(image_indices)
    w, h = crop.input_size_wh
    parts, order = [], []
    for index in np.unique(image_indices):
        rows = np.flatnonzero(image_indices == index)
        parts.append(warp_crops_on_device(frames[int(index)], transforms[rows], (w, h),
                                          round_to_uint8=round_to_uint8))
        order.append(rows)
    if not parts:
        device = next(iter(frames.values())).device if frames else "cpu"
        return torch.zeros((0, 3, h, w), dtype=torch.float32, device=device)
    batch = torch.cat(parts) if len(parts) > 1 else parts[0]
    rows = np.concatenate(order)
    if not np.array_equal(rows, np.arange(len(rows))):
        inverse = np.empty_like(rows)
        inverse[rows] = np.arange(len(rows))
        batch = batch[torch.from_numpy(inverse).to(batch.device)]
    return normalize_device_crops(batch, crop)


class DeviceCropMaker:
    """Uploads the frames that have people (pinned, non-blocking on CUDA) and makes their crops on ``device``."""

    def __init__(self, device, *, round_to_uint8: bool = True) -> None:
        from ..gpu.transfer import FrameUploader

        self.uploader = FrameUploader(device)
        self.device = self.uploader.device
        self.round_to_uint8 = round_to_uint8

    def upload(self, images: Sequence[np.ndarray], image_indices: np.ndarray) -> dict:
        """frame index → device uint8 tensor, for the frames ``image_indices`` mentions (each once)."""
        return {int(i): self.uploader.upload(images[int(i)]) for i in np.unique(image_indices)}

    def crop_batch(self, frames: dict, image_indices: np.ndarray, transforms: np.ndarray, crop: CropSpec):
        """:func:`crop_batch_on_device` with this maker's rounding."""
        return crop_batch_on_device(frames, image_indices, transforms, crop, round_to_uint8=self.round_to_uint8)
