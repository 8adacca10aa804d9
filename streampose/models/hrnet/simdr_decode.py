"""Decoding SimDR outputs: 1-D x and y distributions per keypoint → coordinates and confidence.

SimDR (Li et al., ECCV 2022; leeyegy/SimDR ``lib/core/function.py``
``validate_simdr``): probabilities are the softmax of the logits over bins;
the coordinate is the first maximal bin divided by the split ratio (input
pixels of the crop), the confidence the larger of the two axes' maximal
probabilities. Works on numpy arrays or torch tensors (returns numpy).
"""

from __future__ import annotations

import numpy as np


def simdr_probabilities(logits):
    """Softmax over the last axis (bins), torch in → torch out (float32)."""
    import torch

    return torch.softmax(torch.as_tensor(logits), dim=-1)


def decode_simdr(prob_x, prob_y, split_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """coords (N, K, 2) float32 in input-crop pixels and scores (N, K) float32.

    prob_x: (N, K, W * split_ratio), prob_y: (N, K, H * split_ratio)
    probabilities (or anything whose argmax and max are wanted).
    """
    px, py = (np.asarray(p.detach().cpu().numpy() if hasattr(p, "detach") else p) for p in (prob_x, prob_y))
    idx_x, idx_y = np.argmax(px, axis=-1), np.argmax(py, axis=-1)
    max_x, max_y = np.max(px, axis=-1), np.max(py, axis=-1)
    coords = np.stack([idx_x / split_ratio, idx_y / split_ratio], axis=-1).astype(np.float32)
    return coords, np.maximum(max_x, max_y).astype(np.float32)
