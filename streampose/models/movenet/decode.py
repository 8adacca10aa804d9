"""MoveNet SinglePose decoding, re-done in torch from the operators of the TFLite graph.

Given the four head maps (stride-4 grid of G x G cells, G = 48 for a 192 input):

1. the person centre is the argmax of the centre heatmap weighted by
   ``1 / (distance to the grid centre (G/2, G/2) + 1.8)``, which prefers the
   person in the middle of the crop;
2. each keypoint's rough position is the centre plus the regression vector
   read at the centre cell;
3. each keypoint heatmap is divided by ``distance to that rough position + 1.8``
   and its argmax is the keypoint's cell;
4. the keypoint is that cell plus the offset vector read there, divided by G;
   its score is the (undivided) heatmap value there.

Pure functions over tensors; nothing here knows about the network.

The int8 graph rounds each intermediate value of these steps to an int8 grid.
``decode_single_pose`` computes in float, but passes each intermediate through
an optional ``rounding(name, tensor)`` hook: with the graph's rounding plugged
in, a test checks that this code reproduces the graph's keypoints exactly.
"""

from __future__ import annotations

from typing import Callable

import torch

#: constant added to distances in the centre and keypoint weightings (from the graph).
DISTANCE_BIAS = 1.8

Rounding = Callable[[str, torch.Tensor], torch.Tensor]


def _no_rounding(_name: str, tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def decode_single_pose(
    center: torch.Tensor,
    heatmaps: torch.Tensor,
    offsets: torch.Tensor,
    regress: torch.Tensor,
    rounding: Rounding | None = None,
    distance_bias: float = DISTANCE_BIAS,
) -> torch.Tensor:
    """Head maps → keypoints (B, K, 3) float32 rows of (y, x, score), y/x normalised to [0, 1].

    center: (B, 1, G, G) sigmoid; heatmaps: (B, K, G, G) sigmoid; offsets and
    regress: (B, 2K, G, G), channels (dy, dx) per keypoint, in cells.
    rounding: see the module docstring; None computes in plain float.
    distance_bias: the constant added to distances (the Thunder graph stores 1.8 as float16).
    """
    r = rounding or _no_rounding
    b, k, h, w = heatmaps.shape
    dtype, device = heatmaps.dtype, heatmaps.device
    grid_y = r("grid_y", torch.arange(h, device=device, dtype=dtype)).view(-1, 1)
    grid_x = r("grid_x", torch.arange(w, device=device, dtype=dtype)).view(1, -1)
    batch = torch.arange(b, device=device)

    # 1. person centre
    exact_y = torch.arange(h, device=device, dtype=dtype).view(-1, 1)
    exact_x = torch.arange(w, device=device, dtype=dtype).view(1, -1)
    centre_weight = r("centre_weight", 1.0 / (torch.sqrt((exact_y - h // 2) ** 2 + (exact_x - w // 2) ** 2)
                                              + distance_bias))
    weighted = r("weighted_centre", center[:, 0] * centre_weight)
    flat = weighted.reshape(b, -1).argmax(dim=1)
    cy, cx = flat // w, flat % w

    # 2. rough keypoints from the regression at the centre
    reg = regress[batch, :, cy, cx].view(b, k, 2)
    rough_y = r("rough_y", r("centre_y", cy.to(dtype)).view(b, 1) + reg[..., 0])
    rough_x = r("rough_x", r("centre_x", cx.to(dtype)).view(b, 1) + reg[..., 1])

    # 3. keypoint cells: heatmaps divided by the distance to the rough keypoint
    delta_y = r("delta_y", grid_y - rough_y.view(b, k, 1, 1))
    delta_x = r("delta_x", grid_x - rough_x.view(b, k, 1, 1))
    distance_sq = r("distance_sq", r("delta_y_sq", delta_y * delta_y) + r("delta_x_sq", delta_x * delta_x))
    distance = r("distance_biased", r("distance", torch.sqrt(distance_sq)) + distance_bias)
    divided = r("divided_heatmaps", heatmaps / distance)
    flat_k = divided.reshape(b, k, -1).argmax(dim=2)
    ky, kx = flat_k // w, flat_k % w

    # 4. refine with the offsets at the keypoint cell
    kpt = torch.arange(k, device=device).view(1, k)
    bi = batch.view(b, 1)
    scores = r("scores", heatmaps[bi, kpt, ky, kx])
    y = r("keypoint_y", r("cell_y", ky.to(dtype)) + offsets[bi, 2 * kpt, ky, kx])
    x = r("keypoint_x", r("cell_x", kx.to(dtype)) + offsets[bi, 2 * kpt + 1, ky, kx])
    return torch.stack((r("y", y / h), r("x", x / w), scores), dim=-1).float()
