"""One-Euro filtering of keypoints, per track and keypoint.

The One-Euro filter (Casiez, Roussel and Vogel, "1€ Filter: A Simple
Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012)
is a first-order low-pass filter whose cutoff frequency rises with the speed
of the signal: ``cutoff = min_cutoff + beta * speed``, where the speed is
itself low-pass filtered at ``d_cutoff``. A keypoint at rest is smoothed
hard; a moving one is followed closely.

Here each keypoint is filtered as a 2-D point: the speed is the length of
its filtered velocity (pixels per second), so x and y share one cutoff and
diagonal motion is treated like horizontal motion. Time steps come from frame
timestamps, so variable frame rates and dropped frames are handled; a
non-increasing timestamp restarts the keypoint (a seek or a clock reset). A
keypoint scoring below ``keypoint_threshold`` does not update the filter: its
output is the last filtered position (or its raw position if it has never been
confident), so an occluded, wandering keypoint does not drag the estimate.

Default parameters (see :class:`OneEuroParams`), chosen from the two
acceptance measurements in ``tests/test_tracking_one_euro.py`` (30 fps, 17
keypoints x 20 people, Gaussian noise of sigma 3 px per coordinate):

- ``beta = 0.1`` per pixel: at steady speed the cutoff is dominated by
  ``beta * speed``, and a first-order filter following a ramp lags by
  ``speed / (2 pi cutoff)``, i.e. about ``1 / (2 pi beta)`` = 1.6 px whatever
  the speed and the frame rate. Measured: 1.40 px behind a pose moving at
  10 px/frame (requirement < 2 px); 1.39-1.45 px at 10-60 fps.
- ``min_cutoff = 0.1`` Hz: at rest the cutoff is set by the noise-induced
  speed estimate, so a small floor suffices.
- ``d_cutoff = 0.2`` Hz: the speed estimate is averaged over ~0.8 s, so 3 px
  noise reads as a slow speed. Measured: frame-to-frame jitter of a still
  pose cut 7.5x (6.0 px -> 0.8 px RMS; requirement >= 5x). The price is the
  start of a motion: in its first second the lag averages 3.4 px (peak 10 px,
  one frame of motion) before settling at 1.4 px. A faster speed estimate
  starts better but smooths less: d_cutoff 0.5 Hz gives 4.5x and 2.2 px,
  1 Hz gives 3.2x and 1.8 px. With fewer frames per second there are fewer
  samples to average: the defaults cut jitter 4.9x at 15 fps, 3.9x at
  10 fps (11x at 60 fps).

The kernel is written once in Python and compiled with Numba; the uncompiled
function is the twin the tests compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from .params import OneEuroParams

__all__ = ["OneEuroFilter", "OneEuroParams"]


def _one_euro_update(keypoints: np.ndarray, scores: np.ndarray, slots: np.ndarray, t_s: float,
                     position: np.ndarray, velocity: np.ndarray, last_t_s: np.ndarray, started: np.ndarray,
                     min_cutoff: float, beta: float, d_cutoff: float, keypoint_threshold: float,
                     out: np.ndarray) -> None:
    """Filter (N, K, 2) keypoints at time t_s into out, updating the slot states in place.

    slots: (N,) state row of each person, -1 = pass through unfiltered.
    position/velocity: (S, K, 2) filtered position (px) and velocity (px/s);
    last_t_s: (S, K) time of the last update; started: (S, K) bool.
    """
    n, k = scores.shape
    two_pi = 2.0 * math.pi
    for p in range(n):
        s = slots[p]
        for j in range(k):
            x = keypoints[p, j, 0]
            y = keypoints[p, j, 1]
            if s < 0:
                out[p, j, 0] = x
                out[p, j, 1] = y
                continue
            confident = scores[p, j] >= keypoint_threshold and math.isfinite(x) and math.isfinite(y)
            if not confident:
                # Hold the estimate; its clock keeps the time of the last real update.
                if started[s, j]:
                    out[p, j, 0] = position[s, j, 0]
                    out[p, j, 1] = position[s, j, 1]
                else:
                    out[p, j, 0] = x
                    out[p, j, 1] = y
                continue
            dt = t_s - last_t_s[s, j]
            if not started[s, j] or not dt > 0.0:
                started[s, j] = True
                position[s, j, 0] = x
                position[s, j, 1] = y
                velocity[s, j, 0] = 0.0
                velocity[s, j, 1] = 0.0
                last_t_s[s, j] = t_s
                out[p, j, 0] = x
                out[p, j, 1] = y
                continue
            r = two_pi * d_cutoff * dt
            a_d = r / (r + 1.0)
            vx = a_d * (x - position[s, j, 0]) / dt + (1.0 - a_d) * velocity[s, j, 0]
            vy = a_d * (y - position[s, j, 1]) / dt + (1.0 - a_d) * velocity[s, j, 1]
            cutoff = min_cutoff + beta * math.sqrt(vx * vx + vy * vy)
            r = two_pi * cutoff * dt
            a = r / (r + 1.0)
            position[s, j, 0] = a * x + (1.0 - a) * position[s, j, 0]
            position[s, j, 1] = a * y + (1.0 - a) * position[s, j, 1]
            velocity[s, j, 0] = vx
            velocity[s, j, 1] = vy
            last_t_s[s, j] = t_s
            out[p, j, 0] = position[s, j, 0]
            out[p, j, 1] = position[s, j, 1]


_one_euro_update_py = _one_euro_update
_one_euro_update_nb = numba.njit(cache=True, nogil=True)(_one_euro_update)


class OneEuroFilter:
    """One-Euro filters for the keypoints of many tracks of one source.

    Keyword arguments are those of :class:`OneEuroParams`; ``use_numba=False``
    runs the plain-Python twin. State is kept per track ID and dropped with
    :meth:`drop` (when the tracker removes the track) or :meth:`drop_stale`.
    """

    def __init__(self, *, min_cutoff: float = 0.1, beta: float = 0.1, d_cutoff: float = 0.2,
                 keypoint_threshold: float = 0.3, use_numba: bool = True) -> None:
        self.params = OneEuroParams(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff,
                                    keypoint_threshold=keypoint_threshold)
        self._kernel = _one_euro_update_nb if use_numba else _one_euro_update_py
        self._num_keypoints: int | None = None
        self._slot_of: dict[int, int] = {}
        self._last_seen_s: dict[int, float] = {}
        self._free: list[int] = []
        self._allocate(0, 0)

    @classmethod
    def from_params(cls, params: OneEuroParams, **kwargs) -> "OneEuroFilter":
        return cls(min_cutoff=params.min_cutoff, beta=params.beta, d_cutoff=params.d_cutoff,
                   keypoint_threshold=params.keypoint_threshold, **kwargs)

    def _allocate(self, capacity: int, k: int) -> None:
        self._position = np.zeros((capacity, k, 2))
        self._velocity = np.zeros((capacity, k, 2))
        self._last_t_s = np.zeros((capacity, k))
        self._started = np.zeros((capacity, k), np.bool_)

    def __len__(self) -> int:
        """Tracks with filter state."""
        return len(self._slot_of)

    @property
    def track_ids(self) -> set[int]:
        return set(self._slot_of)

    def __call__(self, track_ids: np.ndarray, keypoints: np.ndarray, keypoint_scores: np.ndarray,
                 t_s: float) -> np.ndarray:
        """Filtered copy of one frame's keypoints.

        track_ids: (N,) ints, negative = not tracked (passed through);
        keypoints: (N, K, 2) pixels; keypoint_scores: (N, K); t_s: the frame's
        time in seconds. Returns (N, K, 2) float32. Raises ValueError on
        mismatched shapes, a K different from earlier calls, or a non-finite t_s.
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        scores = np.ascontiguousarray(keypoint_scores, dtype=np.float64)
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        if keypoints.ndim != 3 or keypoints.shape[2] != 2:
            raise ValueError(f"keypoints must have shape (N, K, 2), got {keypoints.shape}")
        n, k = keypoints.shape[:2]
        if scores.shape != (n, k) or ids.shape[0] != n:
            raise ValueError(f"keypoint_scores {scores.shape} and track_ids {ids.shape} "
                             f"do not fit keypoints {keypoints.shape}")
        if not math.isfinite(t_s):
            raise ValueError(f"t_s={t_s!r} must be finite")
        if self._num_keypoints is None:
            self._num_keypoints = k
            self._allocate(0, k)
        elif k != self._num_keypoints and n:
            raise ValueError(f"keypoints have {k} points per person; earlier frames had {self._num_keypoints}")
        slots = np.array([self._slot(int(i), t_s) if i >= 0 else -1 for i in ids], dtype=np.int64)
        out = np.empty((n, k, 2))
        self._kernel(np.ascontiguousarray(keypoints), scores, slots, float(t_s), self._position, self._velocity,
                     self._last_t_s, self._started, self.params.min_cutoff, self.params.beta,
                     self.params.d_cutoff, self.params.keypoint_threshold, out)
        return out.astype(np.float32)

    def _slot(self, track_id: int, t_s: float) -> int:
        self._last_seen_s[track_id] = t_s
        slot = self._slot_of.get(track_id)
        if slot is not None:
            return slot
        if not self._free:
            old = self._position.shape[0]
            new = max(8, 2 * old)
            k = self._num_keypoints or 0
            grown = (self._position, self._velocity, self._last_t_s, self._started)
            self._allocate(new, k)
            for dst, src in zip((self._position, self._velocity, self._last_t_s, self._started), grown):
                dst[:old] = src
            self._free = list(range(new - 1, old - 1, -1))
        slot = self._free.pop()
        self._started[slot] = False
        self._slot_of[track_id] = slot
        return slot

    def drop(self, track_ids) -> None:
        """Forget the state of these tracks (unknown IDs are ignored)."""
        for track_id in track_ids:
            slot = self._slot_of.pop(int(track_id), None)
            self._last_seen_s.pop(int(track_id), None)
            if slot is not None:
                self._free.append(slot)

    def drop_stale(self, now_s: float, max_gap_s: float) -> None:
        """Forget tracks not seen for more than ``max_gap_s`` seconds before ``now_s``."""
        self.drop([i for i, t in self._last_seen_s.items() if now_s - t > max_gap_s])
