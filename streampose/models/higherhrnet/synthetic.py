"""Heatmaps and tags rendered from known people, to test and time the grouping.

:func:`render_maps` follows the rendering of ``../shared/golden`` (file
``higherhrnet_parser_rendered.json``, key ``rendering``): a Gaussian
(sigma 2, 13x13 window) at every labelled keypoint, people combined per joint
by maximum (ties to the later person), and where a person's Gaussian wins the
tag map holds that person's tag ``p * 1.5 + noise[p, j]``. What a correct
parser must do with such maps is known: return exactly the people that have
keypoints, at their keypoints. :func:`random_people` places synthetic people
for benchmarks.
"""

from __future__ import annotations

import numpy as np

from ...records import NUM_KEYPOINTS
from .resize import ResizeGeometry

SIGMA = 2.0
RADIUS = 6
TAG_STEP = 1.5
TAG_NOISE_STD = 0.05


def map_keypoints(keypoints: np.ndarray, geometry: ResizeGeometry) -> np.ndarray:
    """(P, K, 3) frame keypoints (x, y, v) → (P, K, 2) map pixels (official ``affine_transform``); NaN where v == 0."""
    trans = geometry.trans
    keypoints = np.asarray(keypoints, dtype=np.float64)
    out = np.full(keypoints.shape[:2] + (2,), np.nan)
    for p in range(keypoints.shape[0]):
        for k in range(keypoints.shape[1]):
            x, y, v = keypoints[p, k]
            if v > 0:
                out[p, k] = np.dot(trans, np.array([x, y, 1.0]))[:2]
    return out


def render_maps(mapped: np.ndarray, size_wh: tuple[int, int], tag_noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Render (heatmaps (K, H, W), tags (K, H, W)) float32 from mapped keypoints.

    mapped: (P, K, 2) map-pixel keypoints, NaN for unlabelled ones; tag_noise:
    (P, K) added to the person tag ``p * 1.5``. A keypoint whose rounded
    centre falls outside the map renders nothing.
    """
    width, height = size_wh
    num_people, num_joints = mapped.shape[:2]
    heatmaps = np.zeros((num_joints, height, width), dtype=np.float64)
    tags = np.zeros((num_joints, height, width), dtype=np.float64)
    for p in range(num_people):
        for j in range(num_joints):
            mx, my = mapped[p, j]
            if np.isnan(mx):
                continue
            ix, iy = int(np.floor(mx + 0.5)), int(np.floor(my + 0.5))
            if not (0 <= ix < width and 0 <= iy < height):
                continue
            x0, x1 = max(ix - RADIUS, 0), min(ix + RADIUS, width - 1) + 1
            y0, y1 = max(iy - RADIUS, 0), min(iy + RADIUS, height - 1) + 1
            u = np.arange(x0, x1, dtype=np.float64)[None, :]
            v = np.arange(y0, y1, dtype=np.float64)[:, None]
            g = np.exp(-((u - mx) ** 2 + (v - my) ** 2) / (2 * SIGMA**2))
            window = heatmaps[j, y0:y1, x0:x1]
            wins = g >= window
            window[wins] = g[wins]
            tags[j, y0:y1, x0:x1][wins] = p * TAG_STEP + tag_noise[p, j]
    return heatmaps.astype(np.float32), tags.astype(np.float32)


def coco_tag_noise(image_id: int, num_people: int) -> np.ndarray:
    """The golden's per-(person, joint) tag noise: ``RandomState(image_id).normal(0, 0.05, (P, 17))``."""
    return np.random.RandomState(image_id).normal(0.0, TAG_NOISE_STD, size=(num_people, NUM_KEYPOINTS))


#: A standing person, COCO-17 (x, y) relative to the hip centre, in units of the person height.
_TEMPLATE = np.array([
    [0.00, -0.45], [-0.02, -0.47], [0.02, -0.47], [-0.05, -0.45], [0.05, -0.45],
    [-0.10, -0.33], [0.10, -0.33], [-0.14, -0.17], [0.14, -0.17], [-0.15, -0.02], [0.15, -0.02],
    [-0.07, 0.00], [0.07, 0.00], [-0.07, 0.24], [0.07, 0.24], [-0.07, 0.47], [0.07, 0.47],
])


def random_people(num_people: int, size_wh: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(P, 17, 2) map-pixel keypoints of people standing side by side without overlap.

    People are spread over a grid of cells covering the map, 60-90% of the cell
    height tall, with a little joint jitter, so every person is separable.
    """
    width, height = size_wh
    cols = int(np.ceil(np.sqrt(num_people * width / height)))
    rows = int(np.ceil(num_people / cols))
    cell_w, cell_h = width / cols, height / rows
    cells = rng.permutation(rows * cols)[:num_people]
    people = np.empty((num_people, NUM_KEYPOINTS, 2))
    for p, cell in enumerate(cells):
        r, c = divmod(int(cell), cols)
        tall = min(cell_h, cell_w * 2.5) * rng.uniform(0.6, 0.9)
        centre = np.array([(c + 0.5) * cell_w, (r + 0.5) * cell_h])
        people[p] = centre + tall * (_TEMPLATE + rng.normal(0.0, 0.01, _TEMPLATE.shape))
    return people
