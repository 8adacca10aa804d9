"""Bottom-up grouping: Numba kernels vs the same algorithm in Python with ``munkres``, side by side.

For 1, 5, 10, 20 and 30 people, synthetic frames are rendered (768x512 maps,
the parser resolution of a 640x427 frame at input size 512; Gaussian peaks at
every joint, one tag per person, ``--occluded`` of the joints other than the
nose left out so refine has work), then each frame is grouped by both
implementations in turn and the median milliseconds per frame are reported:

- ``match``: peaks → people (``match_by_tag``): Numba kernel vs the official
  Python loop with ``munkres.Munkres().compute`` for the assignment (what the
  simple-HigherHRNet project ran per joint, per frame). This is the grouping
  figure of the issue (goal: >= 50x at 20 people, < 2 ms per frame);
- ``parse``: the whole parser (peaks, match, adjust, scores, refine): Numba
  vs the official formulation (torch max-pool / topk, Python + munkres,
  whole-map numpy refine).

Each call is timed alone with garbage collection paused (as ``timeit``
does), the two implementations alternating frame by frame, each right after
the frame's peak search (caches as cold as in a pipeline: a call after
streaming the 27 MB of maps costs the Numba match about 70 us more than a
repeated call on the same peaks, shown in its own column). The first call of
the Numba kernels is excluded from the timings and reported
on its own; by default it is a compile from scratch (a fresh Numba cache
directory), ``--warm-cache`` keeps the normal cache. Results are checked to
be identical (the Numba match against the official loop with the installed
``munkres``, which must be 3.0.0 with its C kernel to agree on equal-cost
assignments, as the goldens do; frames where another version resolved a tie
otherwise are counted, and then the Numba result must equal its plain-Python
twin).

Every person keeps its nose (the first joint of the official order): a
person without one is created at a later joint, and when a joint then has
more such candidates than there are new-person slots, the official
assignment (either solver) may hand a person's joint to another one, which
would make the people count depend on the occlusion draw. A Gaussian whose
centre falls exactly between pixels can still leave two equal peaks for one
joint (the official parser then starts an extra person); the people counts
found are printed when they differ from the number rendered.

    python scripts/bench_grouping.py            # about a minute on 2 cores
    python scripts/bench_grouping.py --frames 5 --people 1 20
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[1, 5, 10, 20, 30])
    parser.add_argument("--frames", type=int, default=10, help="frames per people count (default 10)")
    parser.add_argument("--occluded", type=float, default=0.2, help="fraction of joints left out (default 0.2)")
    parser.add_argument("--clutter", type=int, default=0,
                        help="spurious peaks per joint map (value 0.11-0.5, random tag), as a network's false "
                             "responses above the detection threshold (default 0)")
    parser.add_argument("--size", type=int, nargs=2, default=[768, 512], metavar=("W", "H"))
    parser.add_argument("--no-parse", action="store_true", help="time the match only (the parse reference is slow)")
    parser.add_argument("--warm-cache", action="store_true", help="use Numba's normal cache (first call may be a "
                                                                  "cache load instead of a compile)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_frames(num_people: int, count: int, size_wh, occluded: float, rng, clutter: int = 0):
    """Rendered (heatmaps, tags (J, H, W, 1)) frames with ``num_people`` people each."""
    import numpy as np

    from streampose.models.higherhrnet.synthetic import TAG_NOISE_STD, TAG_STEP, random_people, render_maps

    frames = []
    for _ in range(count):
        people = random_people(num_people, size_wh, rng)
        hidden = rng.random(people.shape[:2]) < occluded
        hidden[:, 0] = False
        people[hidden] = np.nan
        noise = rng.normal(0.0, TAG_NOISE_STD, people.shape[:2])
        heatmaps, tags = render_maps(people, size_wh, noise)
        add_clutter(heatmaps, tags, clutter, num_people * TAG_STEP, rng)
        frames.append((heatmaps, tags[..., None]))
    return frames


def add_clutter(heatmaps, tags, per_joint: int, tag_range: float, rng) -> None:
    """Weak Gaussian blobs with random tags, where they exceed what is already there."""
    import numpy as np

    num_joints, height, width = heatmaps.shape
    for j in range(num_joints):
        for _ in range(per_joint):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            amplitude = rng.uniform(0.11, 0.5)
            x0, x1 = max(int(cx) - 6, 0), min(int(cx) + 7, width)
            y0, y1 = max(int(cy) - 6, 0), min(int(cy) + 7, height)
            u = np.arange(x0, x1)[None, :]
            v = np.arange(y0, y1)[:, None]
            g = (amplitude * np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / 8.0)).astype(np.float32)
            wins = g > heatmaps[j, y0:y1, x0:x1]
            heatmaps[j, y0:y1, x0:x1][wins] = g[wins]
            tags[j, y0:y1, x0:x1][wins] = rng.uniform(-1.0, tag_range + 1.0)


def timed(fn, *args):
    """(result, milliseconds) of one call, garbage collection paused as timeit does."""
    gc.disable()
    try:
        start = time.perf_counter()
        out = fn(*args)
        return out, (time.perf_counter() - start) * 1e3
    finally:
        gc.enable()


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.warm_cache:
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_grouping_numba_")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from streampose.models.higherhrnet import grouping as G
    from streampose.models.higherhrnet import grouping_reference as R

    rng = np.random.default_rng(args.seed)
    size_wh = tuple(args.size)
    warm = make_frames(3, 1, size_wh, args.occluded, rng, args.clutter)[0]
    _, first_ms = timed(G.parse, *warm)
    print(f"first call (JIT {'compile' if not args.warm_cache else 'compile or cache load'}, excluded below): "
          f"{first_ms / 1e3:.1f} s")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"numpy {np.__version__}, munkres {getattr(__import__('munkres'), '__version__', '?')}; "
          f"maps {size_wh[0]}x{size_wh[1]}, {args.frames} frames per row, {args.occluded:.0%} joints occluded, "
          f"{args.clutter} spurious peaks per joint")
    header = (f"{'people':>6} | {'match Numba ms':>14} | {'(repeat call)':>13} | {'match munkres ms':>16} | "
              f"{'speed-up':>8}")
    if not args.no_parse:
        header += f" | {'parse Numba ms':>14} | {'parse ref. ms':>13} | {'speed-up':>8}"
    print(header)
    print("-" * len(header))
    for num_people in args.people:
        frames = make_frames(num_people, args.frames, size_wh, args.occluded, rng, args.clutter)
        rows = {"match": [], "match_repeat": [], "match_ref": [], "parse": [], "parse_ref": []}
        munkres_ties = 0
        found: list[int] = []
        for heatmaps, tags in frames:
            # Each implementation runs right after the peak search, as in a pipeline (cold caches).
            peaks = G.top_k(heatmaps, tags)
            ours, t = timed(G.match_by_tag, peaks)
            rows["match"].append(t)
            rows["match_repeat"].append(timed(G.match_by_tag, peaks)[1])
            peaks = G.top_k(heatmaps, tags)
            ref, t = timed(R.match_by_tag_reference, peaks, G.ParserParams(), R.munkres_package_assign)
            rows["match_ref"].append(t)
            if not np.array_equal(ours, ref):
                munkres_ties += 1
                if not np.array_equal(ours, R.match_by_tag_reference(peaks)):
                    raise SystemExit(f"{num_people} people: the Numba match differs from its twin")
            found.append(len(ours))
            if not args.no_parse:
                ours, t = timed(G.parse, heatmaps, tags)
                rows["parse"].append(t)
                ref, t = timed(R.parse_reference, heatmaps, tags)
                rows["parse_ref"].append(t)
                if not np.array_equal(ours.grouped, ref.grouped):
                    raise SystemExit(f"{num_people} people: the parsers disagree")
        med = {k: statistics.median(v) for k, v in rows.items() if v}
        line = (f"{num_people:>6} | {med['match']:>14.3f} | {med['match_repeat']:>13.3f} | "
                f"{med['match_ref']:>16.2f} | {med['match_ref'] / med['match']:>7.0f}x")
        if not args.no_parse:
            line += f" | {med['parse']:>14.1f} | {med['parse_ref']:>13.0f} | {med['parse_ref'] / med['parse']:>7.0f}x"
        if sorted(set(found)) != [num_people]:
            line += f"  (people found: {min(found)}-{max(found)})"
        if munkres_ties:
            line += f"  ({munkres_ties} frames: munkres resolved equal costs otherwise)"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
