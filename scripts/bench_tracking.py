"""Tracker and One-Euro filter cost per frame at 10, 50, 100 and 300 people.

Synthetic crowd: people on a grid whose neighbouring boxes overlap (so the
assignment has real competition), each walking at its own velocity with 1 px
box noise and 2 px keypoint noise; tracks = people (every person is tracked
from the first frames). Numba kernels are compiled and warmed before timing
(JIT excluded). The plain-Python twins run side by side on fewer frames for
the speed-up ratio.

    .venv/bin/python scripts/bench_tracking.py [--frames 300] [--twin-frames 10]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from streampose.keypoint_sets import COCO_17  # noqa: E402
from streampose.tracking import IoUTracker, OneEuroFilter  # noqa: E402

K = COCO_17.num_keypoints


def _scene(num_people: int, num_frames: int, seed: int = 0):
    """Yield (xyxy (N,4), keypoints (N,K,2), keypoint_scores (N,K), t_s) per frame."""
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(num_people * 2)))
    grid = np.stack(np.divmod(np.arange(num_people), cols), axis=1)[:, ::-1].astype(float)
    centers = grid * np.array([45.0, 110.0]) + 40  # 60x140 boxes: neighbours overlap
    velocity = rng.uniform(-1.5, 1.5, centers.shape)
    layout = np.stack([np.linspace(-20, 20, K), np.linspace(-60, 60, K)], axis=1)
    for f in range(num_frames):
        c = centers + velocity * f + rng.normal(0, 1.0, centers.shape)
        xyxy = np.concatenate([c - [30, 70], c + [30, 70]], axis=1)
        keypoints = c[:, None, :] + layout + rng.normal(0, 2.0, (num_people, K, 2))
        scores = rng.uniform(0.2, 1.0, (num_people, K))
        order = rng.permutation(num_people)  # detectors list people in any order
        yield xyxy[order], keypoints[order], scores[order], f / 30.0


def _time_tracker(num_people: int, num_frames: int, use_numba: bool, with_keypoints: bool) -> tuple[float, set[int]]:
    tracker = IoUTracker(use_numba=use_numba)
    times = []
    ids_seen: set[int] = set()
    for xyxy, keypoints, scores, _ in _scene(num_people, num_frames):
        start = time.perf_counter()
        if with_keypoints:
            ids = tracker.update(xyxy, keypoints=keypoints, keypoint_scores=scores)
        else:
            ids = tracker.update(xyxy)
        times.append(time.perf_counter() - start)
        ids_seen.update(ids[ids >= 0].tolist())
    # Skip the first frames: tracks are being created (not the steady state).
    return 1000 * float(np.median(times[3:])), ids_seen


def _time_filter(num_people: int, num_frames: int, use_numba: bool) -> float:
    filt = OneEuroFilter(use_numba=use_numba)
    ids = np.arange(num_people)
    times = []
    for _, keypoints, scores, t_s in _scene(num_people, num_frames):
        start = time.perf_counter()
        filt(ids, keypoints, scores, t_s)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="timed frames per size (Numba)")
    parser.add_argument("--twin-frames", type=int, default=10, help="timed frames per size (Python twins)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100, 300])
    args = parser.parse_args()

    # Warm-up: compile (or load from cache) every kernel before any timing.
    for xyxy, keypoints, scores, t_s in _scene(5, 3):
        IoUTracker().update(xyxy, keypoints=keypoints, keypoint_scores=scores)
        IoUTracker().update(xyxy)
        OneEuroFilter()(np.arange(5), keypoints, scores, t_s)
    _time_tracker(20, 5, True, True)

    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
          f"median ms per frame; Numba over {args.frames} frames, Python twins over {args.twin_frames}")
    print("| people | IoU tracker | IoU+OKS tracker | One-Euro filter | tracker+filter | "
          "Python twin IoU+OKS | twin / Numba |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        iou_ms, ids_iou = _time_tracker(n, args.frames, True, False)
        oks_ms, ids_oks = _time_tracker(n, args.frames, True, True)
        euro_ms = _time_filter(n, args.frames, True)
        twin_ms, ids_twin = _time_tracker(n, args.twin_frames, False, True)
        if not ids_iou == ids_oks == set(range(n)):
            raise SystemExit(f"tracking broke at {n} people: {len(ids_iou)} / {len(ids_oks)} IDs")
        print(f"| {n} | {iou_ms:.3f} | {oks_ms:.3f} | {euro_ms:.3f} | {oks_ms + euro_ms:.3f} | "
              f"{twin_ms:.1f} | {twin_ms / oks_ms:.0f}x |")


if __name__ == "__main__":
    main()
