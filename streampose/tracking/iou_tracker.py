"""Box-IoU person tracker with an optional keypoint-OKS term.

Each frame's people (boxes, optionally keypoints) are matched to the live
tracks by a globally optimal assignment (maximum total similarity,
:func:`streampose.assignment.match_weights`) on a similarity of

    (1 - oks_weight) * IoU(predicted track box, box) + oks_weight * OKS(track pose, pose)

and a pair below ``min_similarity`` is never matched. The 0.2 OKS / 0.8 IoU
blend is the one used by the pose-tracking code of the "Simple Baselines for
Human Pose Estimation and Tracking" line of HRNet projects (Xiao et al., ECCV
2018); OKS is the COCO keypoint similarity, with the per-keypoint sigmas of
the COCO evaluation (cocodataset/cocoapi, ``PythonAPI/pycocotools/cocoeval.py``).

Track life cycle (all counts in frames of one source):

- a person no track claims starts a **tentative** track;
- a tentative track missed once is removed (one-frame false positives never
  get an ID); at its ``min_hits``-th consecutive hit it is **confirmed** and
  receives its ID — IDs are therefore dense (0, 1, 2, ...) and only ever
  given to confirmed tracks;
- a confirmed track missed is **lost**: its box is extrapolated at constant
  velocity, it can still be matched, and a match makes it confirmed again with
  the same ID; lost for more than ``max_age`` consecutive frames, it is
  removed, and its ID is never given again.

The tracker labels, it does not filter: :meth:`IoUTracker.update` returns one
ID per input row, ``UNTRACKED`` (-1) for rows on tentative tracks.

Numba kernels are written once in Python and compiled; ``use_numba=False``
runs the same code uncompiled (the twin the tests compare against).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba.extending import register_jitable

from ..assignment import match_weights
from ..keypoint_sets import COCO_17, keypoint_set_for
from ..records import UNTRACKED
from .checks import check_int
from .params import TrackerParams

__all__ = ["COCO_KEYPOINT_SIGMAS", "IoUTracker", "TrackerParams", "iou_matrix", "similarity_matrix"]

#: Per-keypoint OKS sigmas of the COCO evaluation, COCO-17 order.
COCO_KEYPOINT_SIGMAS = COCO_17.sigmas

TENTATIVE, CONFIRMED, LOST = 0, 1, 2
_STATE_NAMES = {TENTATIVE: "tentative", CONFIRMED: "confirmed", LOST: "lost"}

# How much a new velocity measurement moves the estimate (exponential average):
# 0.5 follows a walking person within two frames and halves detector box jitter.
_VELOCITY_GAIN = 0.5


@register_jitable  # callable from other kernels, and still plain Python for the twins
def _box_iou(a_xyxy: np.ndarray, i: int, b_xyxy: np.ndarray, j: int) -> float:
    w = min(a_xyxy[i, 2], b_xyxy[j, 2]) - max(a_xyxy[i, 0], b_xyxy[j, 0])
    h = min(a_xyxy[i, 3], b_xyxy[j, 3]) - max(a_xyxy[i, 1], b_xyxy[j, 1])
    if w <= 0.0 or h <= 0.0:
        return 0.0
    inter = w * h
    area_a = (a_xyxy[i, 2] - a_xyxy[i, 0]) * (a_xyxy[i, 3] - a_xyxy[i, 1])
    area_b = (b_xyxy[j, 2] - b_xyxy[j, 0]) * (b_xyxy[j, 3] - b_xyxy[j, 1])
    return inter / (area_a + area_b - inter)


def _iou_matrix(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    n, m = a_xyxy.shape[0], b_xyxy.shape[0]
    out = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            out[i, j] = _box_iou(a_xyxy, i, b_xyxy, j)
    return out


def _similarity_matrix(track_xyxy: np.ndarray, det_xyxy: np.ndarray,
                       track_classes: np.ndarray, det_classes: np.ndarray,
                       track_keypoints: np.ndarray, track_visible: np.ndarray,
                       det_keypoints: np.ndarray, det_visible: np.ndarray,
                       sigmas: np.ndarray, oks_weight: float, min_similarity: float) -> np.ndarray:
    n, m = track_xyxy.shape[0], det_xyxy.shape[0]
    num_keypoints = sigmas.shape[0]
    use_oks = oks_weight > 0.0 and num_keypoints > 0
    out = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            # Boxes that do not overlap never match: keeps the matrix sparse
            # and the OKS loop off most pairs.
            if track_classes[i] != det_classes[j]:
                continue
            iou = _box_iou(track_xyxy, i, det_xyxy, j)
            if iou <= 0.0:
                continue
            sim = iou
            # Even a perfect OKS cannot lift this pair to the minimum: skip it.
            if use_oks and (1.0 - oks_weight) * iou + oks_weight >= min_similarity:
                area = (det_xyxy[j, 2] - det_xyxy[j, 0]) * (det_xyxy[j, 3] - det_xyxy[j, 1])
                total = 0.0
                count = 0
                for k in range(num_keypoints):
                    if track_visible[i, k] and det_visible[j, k]:
                        dx = track_keypoints[i, k, 0] - det_keypoints[j, k, 0]
                        dy = track_keypoints[i, k, 1] - det_keypoints[j, k, 1]
                        var = (2.0 * sigmas[k]) ** 2
                        total += np.exp(-(dx * dx + dy * dy) / (2.0 * var * (area + 1e-9)))
                        count += 1
                if count > 0:
                    sim = (1.0 - oks_weight) * sim + oks_weight * (total / count)
            if sim >= min_similarity:
                out[i, j] = sim
    return out


_iou_matrix_py = _iou_matrix
_iou_matrix_nb = numba.njit(cache=True, nogil=True)(_iou_matrix)
_similarity_matrix_py = _similarity_matrix
_similarity_matrix_nb = numba.njit(cache=True, nogil=True)(_similarity_matrix)


def iou_matrix(a_xyxy: np.ndarray, b_xyxy: np.ndarray, *, use_numba: bool = True) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes → (N, M) float64; degenerate boxes give 0."""
    a = np.ascontiguousarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.ascontiguousarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    return (_iou_matrix_nb if use_numba else _iou_matrix_py)(a, b)


def similarity_matrix(track_xyxy: np.ndarray, det_xyxy: np.ndarray,
                      track_classes: np.ndarray, det_classes: np.ndarray,
                      track_keypoints: np.ndarray, track_visible: np.ndarray,
                      det_keypoints: np.ndarray, det_visible: np.ndarray,
                      sigmas: np.ndarray, oks_weight: float, min_similarity: float = 0.0, *,
                      use_numba: bool = True) -> np.ndarray:
    """(T, D) float64 track-to-detection similarity, 0 where a pair may not match.

    A pair may not match when its boxes do not overlap, its classes differ, or
    its similarity is below ``min_similarity``. Boxes (T, 4) / (D, 4) xyxy
    float64; classes (T,) / (D,) int64; keypoints (T, K, 2) / (D, K, 2)
    float64 with visibility (T, K) / (D, K) bool; sigmas (K,) float64 (K may
    be 0: boxes only). OKS uses the detection box area as the object scale; a
    pair with no keypoint visible on both sides gets its IoU alone.
    """
    kernel = _similarity_matrix_nb if use_numba else _similarity_matrix_py
    return kernel(np.ascontiguousarray(track_xyxy, dtype=np.float64),
                  np.ascontiguousarray(det_xyxy, dtype=np.float64), track_classes, det_classes,
                  track_keypoints, track_visible, det_keypoints, det_visible, sigmas,
                  float(oks_weight), float(min_similarity))


def _sigmas_for(num_keypoints: int) -> np.ndarray:
    # The keypoint set's own sigmas (COCO-17, CrowdPose-14); others: the mean COCO sigma for each keypoint.
    return keypoint_set_for(num_keypoints).sigmas


class IoUTracker:
    """Tracks of one source; call :meth:`update` once per frame, in order.

    Keyword arguments are those of :class:`TrackerParams`; ``first_id`` is the
    ID the first confirmed track gets (a caller restarting a source passes the
    previous tracker's :attr:`next_id` so IDs are never reused);
    ``use_numba=False`` runs the plain-Python twins of the kernels.
    """

    def __init__(self, *, min_hits: int = 3, max_age: int = 30, min_similarity: float = 0.3,
                 oks_weight: float = 0.2, keypoint_threshold: float = 0.3, first_id: int = 0,
                 use_numba: bool = True) -> None:
        self.params = TrackerParams(min_hits=min_hits, max_age=max_age, min_similarity=min_similarity,
                                    oks_weight=oks_weight, keypoint_threshold=keypoint_threshold)
        check_int("first_id", first_id, 0)
        self._use_numba = use_numba
        self._next_id = first_id
        self._num_keypoints = 0
        self._sigmas = np.zeros(0)
        #: IDs of confirmed tracks removed by the last update (their state may be dropped).
        self.removed_ids: tuple[int, ...] = ()
        self._allocate(0)

    @classmethod
    def from_params(cls, params: TrackerParams, **kwargs) -> "IoUTracker":
        return cls(min_hits=params.min_hits, max_age=params.max_age, min_similarity=params.min_similarity,
                   oks_weight=params.oks_weight, keypoint_threshold=params.keypoint_threshold, **kwargs)

    # Track state, one row per live track (struct of arrays).
    def _allocate(self, n: int) -> None:
        k = self._num_keypoints
        self._xyxy = np.zeros((n, 4))          # last matched box
        self._velocity = np.zeros((n, 4))      # box change per frame
        self._classes = np.zeros(n, np.int64)
        self._keypoints = np.zeros((n, k, 2))  # last matched keypoints
        self._visible = np.zeros((n, k), np.bool_)
        self._hits = np.zeros(n, np.int64)     # matches since creation
        self._misses = np.zeros(n, np.int64)   # consecutive unmatched frames
        self._states = np.zeros(n, np.int8)
        self._ids = np.zeros(n, np.int64)      # UNTRACKED while tentative

    @property
    def next_id(self) -> int:
        """The ID the next confirmed track will get."""
        return self._next_id

    def __len__(self) -> int:
        """Live tracks (tentative, confirmed and lost)."""
        return self._xyxy.shape[0]

    def states(self) -> dict[int, str]:
        """``{track_id: "confirmed" | "lost"}`` for every track that has an ID."""
        return {int(i): _STATE_NAMES[int(s)] for i, s in zip(self._ids, self._states) if s != TENTATIVE}

    def predicted_xyxy(self) -> np.ndarray:
        """(T, 4) boxes the tracks are expected at in the next frame (constant velocity)."""
        return self._xyxy + self._velocity * (self._misses + 1)[:, None]

    def update(self, xyxy: np.ndarray, *, class_ids: np.ndarray | None = None,
               keypoints: np.ndarray | None = None, keypoint_scores: np.ndarray | None = None) -> np.ndarray:
        """Match one frame's N people and return their track IDs.

        xyxy: (N, 4) boxes in frame pixels; class_ids: (N,) ints (people of
        different classes never match; None = all one class); keypoints
        (N, K, 2) with keypoint_scores (N, K), both or neither. Returns (N,)
        int64 track IDs, ``UNTRACKED`` (-1) for people on tentative tracks.
        Raises ValueError on mismatched shapes or non-finite boxes.
        """
        det_xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        n = det_xyxy.shape[0]
        if not np.isfinite(det_xyxy).all():
            raise ValueError("xyxy must be finite")
        det_classes = (np.zeros(n, np.int64) if class_ids is None
                       else np.asarray(class_ids, dtype=np.int64).reshape(-1))
        if det_classes.shape[0] != n:
            raise ValueError(f"class_ids has {det_classes.shape[0]} rows, xyxy has {n}")
        det_keypoints, det_visible = self._keypoints_of(n, keypoints, keypoint_scores)

        predicted = self.predicted_xyxy()
        track_keypoints = self._keypoints
        if self.params.oks_weight > 0 and self._num_keypoints:
            # Move the last seen pose with its box, so OKS compares like with like.
            shift = (predicted[:, :2] + predicted[:, 2:] - self._xyxy[:, :2] - self._xyxy[:, 2:]) / 2
            track_keypoints = self._keypoints + shift[:, None, :]
        similarity = similarity_matrix(
            predicted, det_xyxy, self._classes, det_classes,
            np.ascontiguousarray(track_keypoints), self._visible, det_keypoints, det_visible,
            self._sigmas, self.params.oks_weight if self._num_keypoints else 0.0, self.params.min_similarity,
            use_numba=self._use_numba)
        rows, cols = match_weights(similarity, use_numba=self._use_numba)

        # Matched tracks: new box, smoothed velocity, maybe confirmed.
        gap = (self._misses[rows] + 1)[:, None]
        measured = (det_xyxy[cols] - self._xyxy[rows]) / gap
        first = (self._hits[rows] == 1)[:, None]
        self._velocity[rows] = np.where(first, measured,
                                        _VELOCITY_GAIN * measured + (1 - _VELOCITY_GAIN) * self._velocity[rows])
        self._xyxy[rows] = det_xyxy[cols]
        self._keypoints[rows] = det_keypoints[cols]
        self._visible[rows] = det_visible[cols]
        self._hits[rows] += 1
        self._misses[rows] = 0
        confirm = rows[(self._states[rows] == TENTATIVE) & (self._hits[rows] >= self.params.min_hits)]
        self._ids[confirm] = self._take_ids(confirm.size)
        # Lost tracks found again are confirmed again (they had min_hits already).
        self._states[rows] = np.where(self._hits[rows] >= self.params.min_hits, CONFIRMED, TENTATIVE)

        # Unmatched tracks: tentative ones die, confirmed ones get lost, then too old ones die.
        unmatched = np.ones(len(self), np.bool_)
        unmatched[rows] = False
        self._misses[unmatched] += 1
        self._states[unmatched & (self._states == CONFIRMED)] = LOST
        remove = unmatched & ((self._states == TENTATIVE) | (self._misses > self.params.max_age))
        self.removed_ids = tuple(int(i) for i in self._ids[remove & (self._states != TENTATIVE)])

        track_ids = np.full(n, UNTRACKED, np.int64)
        track_ids[cols] = np.where(self._states[rows] == TENTATIVE, UNTRACKED, self._ids[rows])

        # New tracks for people no track claimed.
        new = np.ones(n, np.bool_)
        new[cols] = False
        new_index = np.flatnonzero(new)
        keep = ~remove
        self._compact_and_append(keep, det_xyxy[new_index], det_classes[new_index],
                                 det_keypoints[new_index], det_visible[new_index])
        if self.params.min_hits == 1 and new_index.size:
            track_ids[new_index] = self._ids[-new_index.size:]
        return track_ids

    def _take_ids(self, count: int) -> np.ndarray:
        ids = np.arange(self._next_id, self._next_id + count, dtype=np.int64)
        self._next_id += count
        return ids

    def _keypoints_of(self, n: int, keypoints: np.ndarray | None,
                      keypoint_scores: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if (keypoints is None) != (keypoint_scores is None):
            raise ValueError("give keypoints and keypoint_scores together, or neither")
        if keypoints is None:
            k = self._num_keypoints
            return np.zeros((n, k, 2)), np.zeros((n, k), np.bool_)
        keypoints = np.asarray(keypoints, dtype=np.float64)
        scores = np.asarray(keypoint_scores, dtype=np.float64)
        if keypoints.ndim != 3 or keypoints.shape[0] != n or keypoints.shape[2] != 2:
            raise ValueError(f"keypoints must have shape ({n}, K, 2), got {keypoints.shape}")
        k = keypoints.shape[1]
        if scores.shape != (n, k):
            raise ValueError(f"keypoint_scores must have shape ({n}, {k}), got {scores.shape}")
        if k != self._num_keypoints:
            if self._num_keypoints:
                raise ValueError(f"keypoints have {k} points per person; earlier frames had {self._num_keypoints}")
            # First frame with keypoints: earlier tracks simply have none visible.
            self._num_keypoints = k
            self._sigmas = _sigmas_for(k)
            self._keypoints = np.zeros((len(self), k, 2))
            self._visible = np.zeros((len(self), k), np.bool_)
        visible = (scores >= self.params.keypoint_threshold) & np.isfinite(keypoints).all(axis=2)
        return np.ascontiguousarray(np.nan_to_num(keypoints)), visible

    def _compact_and_append(self, keep: np.ndarray, xyxy: np.ndarray, classes: np.ndarray,
                            keypoints: np.ndarray, visible: np.ndarray) -> None:
        m = xyxy.shape[0]
        confirmed_now = self.params.min_hits == 1
        ids = self._take_ids(m) if confirmed_now else np.full(m, UNTRACKED, np.int64)
        state = CONFIRMED if confirmed_now else TENTATIVE
        self._xyxy = np.concatenate([self._xyxy[keep], xyxy])
        self._velocity = np.concatenate([self._velocity[keep], np.zeros((m, 4))])
        self._classes = np.concatenate([self._classes[keep], classes])
        self._keypoints = np.concatenate([self._keypoints[keep], keypoints])
        self._visible = np.concatenate([self._visible[keep], visible])
        self._hits = np.concatenate([self._hits[keep], np.ones(m, np.int64)])
        self._misses = np.concatenate([self._misses[keep], np.zeros(m, np.int64)])
        self._states = np.concatenate([self._states[keep], np.full(m, state, np.int8)])
        self._ids = np.concatenate([self._ids[keep], ids])
