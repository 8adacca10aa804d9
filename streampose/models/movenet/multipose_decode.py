"""MoveNet MultiPose decoding: the six head maps → up to 6 people, as the TF.js graph computes it.

A pure NumPy function (no torch), so another backend running the network
(ONNX Runtime, OpenVINO) reuses it. It follows the in-graph decoding of
Google's MultiPose Lightning (tfhub.dev/google/tfjs-model/movenet/multipose/lightning/1,
read operator by operator from its TF.js ``model.json``), on an H x W grid of
stride-4 cells:

1. person centres: the centre heatmap is kept only where it equals its 5x5
   max pool (to within ``CENTRE_NMS_TOLERANCE``), and the 6 highest cells are
   taken (ties: the lower flat index first), whatever their score;
2. boxes: size (height, width) >= 0 and centre offset read at each centre
   cell; box = centre + offset -/+ size / 2, clipped to the grid;
3. rough keypoints: centre cell + the regression vector read there;
4. each keypoint heatmap is weighted by ``exp(-d^2 / (KEYPOINT_SPREAD * min(H, W)))``,
   d the distance to that person's rough keypoint, and zeroed outside the
   person's box; the argmax cell plus the offset read there is the keypoint;
5. keypoint score: the largest weighted value over the 6 people at that cell
   (as the graph does: ``Max`` over people, then gather); person score: centre
   score x the sum of the keypoint scores above ``KEYPOINT_SCORE_THRESHOLD``
   divided by their count (by 1 when none are).

Constants are the graph's own (float16 as stored, widened); the converter
(``scripts/convert_movenet_tfjs.py --model multipose``) checks them against
the graph, and ``tests/test_movenet_multipose.py`` checks this function
against a NumPy evaluation of the graph's operators.
"""

from __future__ import annotations

import numpy as np

from .network import OUTPUT_STRIDE

#: people the graph always returns (its ``TopKV2`` k).
MAX_PEOPLE = 6
#: centre non-maximum suppression: max pool window, and |centre - pooled| below which a cell is a peak.
CENTRE_NMS_WINDOW = 5
CENTRE_NMS_TOLERANCE = float(np.float16(1e-6))
#: keypoint weighting ``exp(-d^2 / (KEYPOINT_SPREAD * min(H, W)))`` (float16(0.3) in the graph).
KEYPOINT_SPREAD = float(np.float16(0.3))
#: keypoint scores at or below this are left out of the person score (float16 in the graph; the output keeps them).
KEYPOINT_SCORE_THRESHOLD = 0.126953125

#: layout of a decoded row (the graph's ``[1, 6, 56]`` output): K x (y, x, score), then the box
#: (ymin, xmin, ymax, xmax), then the person score; coordinates in [0, 1] of the network input.
BOX_COLUMNS = slice(-5, -1)
SCORE_COLUMN = -1


def _max_pool_same(x: np.ndarray, window: int) -> np.ndarray:
    """(H, W) → (H, W) max over a window x window neighbourhood (TensorFlow "SAME": borders see less)."""
    pad = window // 2
    padded = np.pad(x, pad, constant_values=-np.inf)
    out = np.full_like(x, -np.inf)
    h, w = x.shape
    for i in range(window):
        for j in range(window):
            np.maximum(out, padded[i:i + h, j:j + w], out=out)
    return out


def decode_multi_pose(center: np.ndarray, heatmaps: np.ndarray, offsets: np.ndarray, regress: np.ndarray,
                      box_scale: np.ndarray, box_offset: np.ndarray) -> np.ndarray:
    """Head maps of B images → (B, 6, 3K + 5) float32 rows (see ``BOX_COLUMNS``, ``SCORE_COLUMN``).

    center: (B, 1, H, W) after sigmoid; heatmaps: (B, K, H, W) after sigmoid;
    offsets and regress: (B, 2K, H, W), channels (dy, dx) per keypoint;
    box_scale: (B, 2, H, W) (height, width); box_offset: (B, 2, H, W) (dy, dx);
    vectors in grid cells (stride 4). Every row is returned, best centre first,
    however low its score: callers filter by the person score.
    """
    maps = [np.asarray(m, dtype=np.float32) for m in (center, heatmaps, offsets, regress, box_scale, box_offset)]
    return np.stack([_decode_one(*(m[b] for m in maps)) for b in range(maps[0].shape[0])])


def _decode_one(center: np.ndarray, heatmaps: np.ndarray, offsets: np.ndarray, regress: np.ndarray,
                box_scale: np.ndarray, box_offset: np.ndarray) -> np.ndarray:
    f32 = np.float32
    k, h, w = heatmaps.shape
    n = MAX_PEOPLE

    # 1. centres: 5x5 peaks, the 6 best (stable order: equal scores keep the lower flat index first)
    c = center[0]
    peaks = c * (np.abs(c - _max_pool_same(c, CENTRE_NMS_WINDOW)) < f32(CENTRE_NMS_TOLERANCE)).astype(f32)
    flat = peaks.reshape(-1)
    best = np.argsort(-flat, kind="stable")[:n]
    centre_scores = flat[best]
    cy, cx = best // w, best % w
    cy_f, cx_f = cy.astype(f32), cx.astype(f32)

    # 2. boxes in cells, clipped to the grid
    size = np.maximum(box_scale[:, cy, cx], f32(0))
    box_y, box_x = cy_f + box_offset[0, cy, cx], cx_f + box_offset[1, cy, cx]
    half_h, half_w = size[0] * f32(0.5), size[1] * f32(0.5)
    ymin, xmin = np.clip(box_y - half_h, f32(0), f32(h)), np.clip(box_x - half_w, f32(0), f32(w))
    ymax, xmax = np.clip(box_y + half_h, f32(0), f32(h)), np.clip(box_x + half_w, f32(0), f32(w))
    input_hw = f32(OUTPUT_STRIDE * h), f32(OUTPUT_STRIDE * w)
    boxes = np.stack((ymin, xmin, ymax, xmax), axis=1) * f32(OUTPUT_STRIDE)
    boxes = np.clip(boxes / np.array([input_hw[0], input_hw[1]] * 2, f32), f32(0), f32(1))

    # 3. rough keypoints from the regression at each centre: (n, k)
    reg = regress[:, cy, cx].T.reshape(n, k, 2)
    rough_y, rough_x = cy_f[:, None] + reg[..., 0], cx_f[:, None] + reg[..., 1]

    # 4. heatmaps weighted by closeness to each person's rough keypoint, inside the person's box: (h, w, n, k)
    grid_y = np.arange(h, dtype=f32).reshape(h, 1, 1, 1)
    grid_x = np.arange(w, dtype=f32).reshape(1, w, 1, 1)
    dy, dx = grid_y - rough_y, grid_x - rough_x
    closeness = np.exp((f32(-1) * (dy * dy + dx * dx)) / (f32(min(h, w)) * f32(KEYPOINT_SPREAD)))
    weighted = heatmaps.transpose(1, 2, 0)[:, :, None, :] * closeness
    gy, gx = grid_y[..., 0], grid_x[..., 0]
    inside = (gy >= ymin) & (gx >= xmin) & (gy < ymax) & (gx < xmax)
    weighted = weighted * inside.astype(f32)[..., None]
    cell = weighted.reshape(h * w, n * k).argmax(axis=0)  # first maximum on ties, as TensorFlow's ArgMax
    ky, kx = cell // w, cell % w
    kpt = np.tile(np.arange(k), n)
    y = (ky.astype(f32) + offsets[2 * kpt, ky, kx]) * (f32(OUTPUT_STRIDE) / input_hw[0])
    x = (kx.astype(f32) + offsets[2 * kpt + 1, ky, kx]) * (f32(OUTPUT_STRIDE) / input_hw[1])

    # 5. scores
    scores = weighted.max(axis=2)[ky, kx, kpt].reshape(n, k)
    confident = scores > f32(KEYPOINT_SCORE_THRESHOLD)
    count = np.maximum(confident.astype(f32).sum(axis=1), f32(1))
    person = (f32(1) / count) * (centre_scores[:, None] * np.where(confident, scores, f32(0))).sum(axis=1)

    keypoints = np.stack((y.reshape(n, k), x.reshape(n, k), scores), axis=-1).reshape(n, 3 * k)
    return np.concatenate((keypoints, boxes, person[:, None]), axis=1).astype(f32)
