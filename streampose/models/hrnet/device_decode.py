"""Keypoint decoders in torch, run on the network's device so only keypoints cross back to the host.

Twins of the numpy decoders (same decisions, same float32 arithmetic):
- :func:`decode_heatmaps_on_device` = :func:`~streampose.models.hrnet.heatmap_decode.decode_heatmaps`
  with the official quarter-pixel post-processing (first maximum wins,
  coordinates zeroed where the maximum is <= 0, a 0.25 px step towards the
  higher neighbour where 1 < x < W-1 and 1 < y < H-1); DARK stays on the host.
- :func:`decode_simdr_on_device` = :func:`~streampose.models.hrnet.simdr_decode.decode_simdr`
  (first maximal bin / split ratio, score = larger of the two axis maxima).

Both return numpy arrays (the small keypoint tensors are the only device→host copy).
"""

from __future__ import annotations

import numpy as np


def heatmap_keypoints_on_device(heatmaps, *, post_process: bool = True):
    """(N, K, H, W) heatmaps (torch, any device) → coords (N, K, 2) float32, scores (N, K) float32, on the device."""
    import torch

    heatmaps = heatmaps.float()
    n, k, height, width = heatmaps.shape
    flat = heatmaps.reshape(n, k, height * width)
    maxvals, idx = flat.max(dim=2)
    # torch.max/argmax return the first maximal index on CPU and CUDA, as np.argmax.
    idx = flat.argmax(dim=2)
    x = (idx % width).float()
    y = torch.div(idx, width, rounding_mode="floor").float()
    positive = (maxvals > 0).float()
    x, y = x * positive, y * positive
    if post_process:
        px, py = x.long(), y.long()
        inside = (px > 1) & (px < width - 1) & (py > 1) & (py < height - 1)
        cx, cy = px.clamp(1, width - 2), py.clamp(1, height - 2)

        def at(dy: int, dx: int):
            return flat.gather(2, ((cy + dy) * width + cx + dx).unsqueeze(2)).squeeze(2)

        step_x = torch.sign(at(0, 1) - at(0, -1)) * 0.25
        step_y = torch.sign(at(1, 0) - at(-1, 0)) * 0.25
        x = x + torch.where(inside, step_x, torch.zeros_like(step_x))
        y = y + torch.where(inside, step_y, torch.zeros_like(step_y))
    return torch.stack([x, y], dim=2), maxvals


def decode_heatmaps_on_device(heatmaps, *, post_process: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in heatmap pixels: coords (N, K, 2) float32, scores (N, K) float32 (numpy)."""
    coords, scores = heatmap_keypoints_on_device(heatmaps, post_process=post_process)
    return coords.cpu().numpy(), scores.cpu().numpy()


def decode_simdr_on_device(prob_x, prob_y, split_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """SimDR keypoints in input-crop pixels: coords (N, K, 2) float32, scores (N, K) float32 (numpy).

    prob_x (N, K, Bx), prob_y (N, K, By): torch tensors on any device.
    """
    import torch

    max_x, idx_x = prob_x.float().max(dim=-1)
    max_y, idx_y = prob_y.float().max(dim=-1)
    idx_x, idx_y = prob_x.float().argmax(dim=-1), prob_y.float().argmax(dim=-1)
    # numpy divides the int64 index by the split ratio in float64, then casts to float32.
    coords = torch.stack([idx_x.double() / split_ratio, idx_y.double() / split_ratio], dim=-1).float()
    return coords.cpu().numpy(), torch.maximum(max_x, max_y).cpu().numpy()
