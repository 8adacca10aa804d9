"""Object keypoint similarity (OKS) and OKS non-maximum suppression.

OKS between two poses a, b with K keypoints (COCO definition)::

    OKS = mean_k exp(-d_k^2 / (2 * s^2 * (2 * sigma_k)^2))

with d_k the pixel distance of keypoint k. ``s^2`` is the object area: the
ground-truth area in pycocotools' evaluation, the mean of the two box areas
in the OKS-NMS of the official top-down evaluation (HRNet
deep-high-resolution-net.pytorch ``lib/nms/nms.py``: ``oks_iou``/``oks_nms``,
used by ``lib/dataset/coco.py`` at ``TEST.OKS_THRE = 0.9`` with areas of the
1.25-padded, aspect-corrected crop boxes and no visibility threshold).

The per-keypoint sigmas default to those of the keypoint set with K
keypoints (:mod:`streampose.keypoint_sets`: COCO-17 from pycocotools,
CrowdPose-14 from the CrowdPose API).
"""

from __future__ import annotations

import numpy as np

from ..keypoint_sets import COCO_17, keypoint_set_for

#: COCO-17 per-keypoint OKS sigmas (nose … right ankle), from pycocotools.
COCO_KEYPOINT_SIGMAS = COCO_17.sigmas

#: OKS above which the official top-down evaluation suppresses the lower-scored pose.
OFFICIAL_OKS_NMS_THRESHOLD = 0.9


def _check_keypoints(name: str, keypoints: np.ndarray) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[2] != 2:
        raise ValueError(f"{name} must have shape (N, K, 2), got {keypoints.shape}")
    return keypoints


def _check_rows(name: str, array: np.ndarray, n: int) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {array.shape}")
    return array


def _sigmas_for(num_keypoints: int, sigmas: np.ndarray | None) -> np.ndarray:
    sigmas = keypoint_set_for(num_keypoints).sigmas if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if sigmas.shape != (num_keypoints,):
        raise ValueError(f"sigmas must have shape ({num_keypoints},), got {sigmas.shape}")
    return sigmas


def oks_matrix(
    keypoints_a: np.ndarray,
    keypoints_b: np.ndarray,
    areas_a: np.ndarray,
    areas_b: np.ndarray,
    *,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """Pairwise OKS with the mean of the two areas as the scale, as the official OKS-NMS.

    keypoints_a: (N, K, 2) and keypoints_b: (M, K, 2) pixel coordinates;
    areas_a: (N,), areas_b: (M,) object areas in square pixels; sigmas: (K,),
    default COCO. Returns (N, M) float64 in [0, 1]. All K keypoints count
    (no visibility threshold, as the official evaluation calls it).
    """
    a = _check_keypoints("keypoints_a", keypoints_a)
    b = _check_keypoints("keypoints_b", keypoints_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"keypoints_a has {a.shape[1]} keypoints, keypoints_b {b.shape[1]}")
    area_a = _check_rows("areas_a", areas_a, a.shape[0])
    area_b = _check_rows("areas_b", areas_b, b.shape[0])
    num_keypoints = a.shape[1]
    if num_keypoints == 0:
        raise ValueError("OKS needs at least one keypoint")
    variances = (2.0 * _sigmas_for(num_keypoints, sigmas)) ** 2
    squared_distances = ((a[:, None, :, :] - b[None, :, :, :]) ** 2).sum(axis=-1)  # (N, M, K)
    # np.spacing(1) keeps the official guard against zero areas.
    mean_areas = (area_a[:, None] + area_b[None, :]) / 2.0 + np.spacing(1)
    exponent = squared_distances / variances / mean_areas[:, :, None] / 2.0
    return np.exp(-exponent).mean(axis=-1)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float = OFFICIAL_OKS_NMS_THRESHOLD,
    *,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy OKS non-maximum suppression of the poses of one image.

    keypoints: (N, K, 2) pixels; scores: (N,) person scores; areas: (N,) box
    areas in square pixels; threshold: a pose whose OKS with an already kept,
    higher-scored pose is above it is dropped. Returns the kept indices
    (int64), highest score first. Ties in score keep the official order
    (numpy ``argsort`` reversed: the later index first).
    """
    kp = _check_keypoints("keypoints", keypoints)
    n = kp.shape[0]
    score = _check_rows("scores", scores, n)
    area = _check_rows("areas", areas, n)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(score)[::-1]
    overlaps = oks_matrix(kp[order], kp[order], area[order], area[order], sigmas=sigmas)
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for rank in range(n):
        if suppressed[rank]:
            continue
        keep.append(order[rank])
        suppressed[rank + 1:] |= overlaps[rank, rank + 1:] > threshold
    return np.asarray(keep, dtype=np.int64)
