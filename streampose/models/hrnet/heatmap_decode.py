"""Decoding keypoint heatmaps: argmax + quarter-pixel offset (official), or DARK refinement.

Pure numpy functions on (N, K, H, W) float32 heatmaps; coordinates come out
in heatmap pixels (map them to the frame with
:func:`streampose.topdown.crops.transform_preds` and the heatmap size).

- :func:`get_max_preds`, :func:`quarter_offset`: HRNet
  deep-high-resolution-net.pytorch ``lib/core/inference.py`` ``get_max_preds``
  and the ``TEST.POST_PROCESS`` step of ``get_final_preds`` (first maximum
  wins; coordinates zeroed where the maximum is <= 0; a quarter-pixel step
  towards the higher neighbour only where 1 < x < W-1 and 1 < y < H-1).
- :func:`dark_refine`: DARK (Zhang et al., CVPR 2020, "Distribution-Aware
  Coordinate Representation for Human Pose Estimation", ilovepose/DarkPose
  ``lib/core/inference.py``): Gaussian blur (kernel 11, each map rescaled to
  its original maximum), log, then one Newton step of the second-order
  Taylor expansion at the argmax where 1 < x < W-2 and 1 < y < H-2. As in
  the official code the step is not bounded: on maps that are not peaked
  (an untrained network) it can throw a keypoint far off; trained heatmaps
  are Gaussian-like around their maximum, where the step is sub-pixel.
"""

from __future__ import annotations

import numpy as np

DARK_BLUR_KERNEL = 11


def get_max_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of every map: coords (N, K, 2) float32 (x, y), maxvals (N, K, 1) float32.

    Coordinates are (0, 0) where the maximum is <= 0, as the official code.
    """
    heatmaps = np.asarray(heatmaps)
    n, k, _, width = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, axis=2).reshape(n, k, 1)
    maxvals = np.amax(flat, axis=2).reshape(n, k, 1)
    coords = np.tile(idx, (1, 1, 2)).astype(np.float32)
    coords[:, :, 0] = coords[:, :, 0] % width
    coords[:, :, 1] = np.floor(coords[:, :, 1] / width)
    coords *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    return coords, maxvals


def quarter_offset(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Official post-processing: move each argmax 0.25 px towards its higher neighbour, per axis.

    heatmaps (N, K, H, W); coords (N, K, 2) float32 from :func:`get_max_preds`.
    Returns a new float32 array.
    """
    heatmaps = np.asarray(heatmaps)
    n, k, height, width = heatmaps.shape
    coords = np.array(coords, dtype=np.float32, copy=True)
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    inside = (1 < px) & (px < width - 1) & (1 < py) & (py < height - 1)
    # Clipped indices keep the gathers in bounds; rows outside are masked out below.
    cx, cy = np.clip(px, 1, width - 2), np.clip(py, 1, height - 2)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    dx = heatmaps[ni, ki, cy, cx + 1] - heatmaps[ni, ki, cy, cx - 1]
    dy = heatmaps[ni, ki, cy + 1, cx] - heatmaps[ni, ki, cy - 1, cx]
    step = np.stack([np.sign(dx), np.sign(dy)], axis=-1) * 0.25
    coords += np.where(inside[..., None], step, 0).astype(np.float32)
    return coords


def _blur_like_dark(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """Gaussian blur of each map over a zero border, rescaled to its original maximum (float64)."""
    import cv2

    n, k, height, width = heatmaps.shape
    border = (kernel - 1) // 2
    out = np.empty((n, k, height, width), dtype=np.float64)
    padded = np.zeros((height + 2 * border, width + 2 * border), dtype=np.float64)
    for i in range(n):
        for j in range(k):
            original_max = float(np.max(heatmaps[i, j]))
            padded[border:-border, border:-border] = heatmaps[i, j]
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            blurred_max = float(np.max(blurred))
            out[i, j] = blurred * (original_max / blurred_max) if blurred_max != 0 else blurred
    return out


def dark_refine(heatmaps: np.ndarray, coords: np.ndarray, *, kernel: int = DARK_BLUR_KERNEL) -> np.ndarray:
    """DARK sub-pixel refinement of integer argmax coords (N, K, 2); returns float32 (N, K, 2)."""
    heatmaps = np.asarray(heatmaps)
    n, k, height, width = heatmaps.shape
    logs = np.log(np.maximum(_blur_like_dark(heatmaps, kernel), 1e-10))
    coords = np.array(coords, dtype=np.float64, copy=True)
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    inside = (1 < px) & (px < width - 2) & (1 < py) & (py < height - 2)
    cx, cy = np.clip(px, 2, width - 3), np.clip(py, 2, height - 3)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def at(dy: int, dx: int) -> np.ndarray:
        return logs[ni, ki, cy + dy, cx + dx]

    center = at(0, 0)
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * center + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    dyy = 0.25 * (at(2, 0) - 2 * center + at(-2, 0))
    det = dxx * dyy - dxy**2
    ok = inside & (det != 0)
    safe = np.where(ok, det, 1.0)
    # offset = -H^-1 g with H = [[dxx, dxy], [dxy, dyy]], g = [dx, dy]
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(-dxy * dx + dxx * dy) / safe
    coords[..., 0] += np.where(ok, off_x, 0.0)
    coords[..., 1] += np.where(ok, off_y, 0.0)
    return coords.astype(np.float32)


def decode_heatmaps(heatmaps: np.ndarray, *, use_dark: bool = False,
                    post_process: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints from heatmaps (N, K, H, W): coords (N, K, 2) float32 in heatmap pixels, scores (N, K) float32.

    Scores are the maxima of the (unblurred) maps. ``use_dark`` replaces the
    official quarter-pixel step by DARK; ``post_process=False`` gives the bare argmax.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    coords, maxvals = get_max_preds(heatmaps)
    if use_dark:
        coords = dark_refine(heatmaps, coords)
    elif post_process:
        coords = quarter_offset(heatmaps, coords)
    return coords, maxvals[..., 0]
