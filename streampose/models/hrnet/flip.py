"""Flip test: bring the outputs of a horizontally flipped crop back to the original frame.

Torch functions (they run where the network ran). As the official code:
- heatmaps (HRNet ``lib/utils/transforms.py`` ``flip_back`` and
  ``TEST.SHIFT_HEATMAP``): reverse the columns, swap left/right joints, then
  shift one column to the right (column 0 keeps its value);
- SimDR (leeyegy/SimDR ``flip_back_simdr`` and its SHIFT_HEATMAP): x logits
  reversed over bins, joints swapped, then shifted one bin to the LEFT (the
  last bin keeps its value); y logits only joint-swapped.
"""

from __future__ import annotations

from typing import Sequence

from ...records import COCO_FLIP_INDEX


def flip_back_heatmaps(heatmaps_flipped, flip_index: Sequence[int] = COCO_FLIP_INDEX, *, shift: bool = True):
    """(N, K, H, W) outputs of the flipped input → aligned with the original crop."""
    import torch

    out = heatmaps_flipped.flip(3)[:, list(flip_index)]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=3)
    return out


def flip_back_simdr(x_flipped, y_flipped, flip_index: Sequence[int] = COCO_FLIP_INDEX, *, shift: bool = True):
    """SimDR logits of the flipped input (N, K, Bx), (N, K, By) → aligned with the original crop."""
    import torch

    index = list(flip_index)
    x = x_flipped.flip(2)[:, index]
    if shift:
        x = torch.cat([x[..., 1:], x[..., -1:]], dim=2)
    return x, y_flipped[:, index]


def average_heatmaps(heatmaps, heatmaps_flipped_back):
    """Flip-test average of heatmaps: (a + b) * 0.5."""
    return (heatmaps + heatmaps_flipped_back) * 0.5
