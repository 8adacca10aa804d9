#!/usr/bin/env python3
"""End-to-end pipeline benchmark: FPS, per-stage time, capture→sink latency, dropped frames.

A thin script over the runtime's own statistics (:class:`streampose.runtime.RunStats`):
it runs each ``--pipeline`` in turn over the same sources (side by side in one
run, so the figures compare on a shared machine), with no sinks unless
``--output`` is given, and prints one table row per pipeline plus each run's
per-stage summary. Model issues add their pipelines to ``pipelines/`` and
benchmark them with ``--pipeline NAME``.

    python scripts/benchmark.py --pipeline passthrough --max-frames 500
    python scripts/benchmark.py --pipeline passthrough --pipeline topdown_hrnet_w32 --device cuda \\
        --source ../shared/media/one-by-one-person-detection.mp4 --max-frames 300 --json results.jsonl

Multi-source live mode (``--live-sources 1,2,4,8``): for each N, one run with
N paced live sources (FFmpeg ``lavfi`` test patterns in real time, each
``--live-seconds`` long at ``--live-fps``) next to one offline source (the
first ``--source``, read whole), and a row per source: frames, FPS, capture →
sink latency p50/p99 and frames dropped (made by the source but never finished):

    python scripts/benchmark.py --live-sources 1,2,4,8 --live-seconds 8
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout; spawned workers inherit sys.path
    sys.path.insert(0, str(REPO_ROOT))

from streampose.config import apply_overrides, load_pipeline  # noqa: E402
from streampose.errors import UserError  # noqa: E402
from streampose.paths import PROJECT_ROOT  # noqa: E402
from streampose.runtime import StageFailed, run_pipeline  # noqa: E402

DEFAULT_SOURCE = str(PROJECT_ROOT.parent / "shared" / "media" / "one-by-one-person-detection.mp4")


def run_one(name: str, args: argparse.Namespace) -> dict:
    pipeline = apply_overrides(load_pipeline(name), device=args.device, det_model=args.det_model,
                               pose_model=args.pose_model, img_size=args.img_size)
    sinks = []
    if args.output:
        from streampose.io.outputs import sink_specs

        sinks = sink_specs(args.output, False, num_sources=len(args.source), sources=args.source,
                           overwrite=True)  # scratch outputs, rewritten each run
    result = run_pipeline(pipeline, args.source, sinks, inline=args.inline, max_frames=args.max_frames,
                          progress=False)
    stats = result.stats
    row = {
        "pipeline": name, "sources": args.source, "inline": args.inline, "device": args.device,
        "frames": stats.total_frames, "fps": stats.fps, "wall_s": stats.wall_s, "dropped": stats.dropped,
        "latency_p50_ms": stats.latency.percentile(50), "latency_p99_ms": stats.latency.percentile(99),
        "stages": {s.name: {"ms_per_frame": 1000 * s.total_busy_s / s.frames_out if s.frames_out else None,
                            "steps_ms": {k: 1000 * v / s.frames_out if s.frames_out else None
                                         for k, v in s.busy_s.items()},
                            "frames_in": s.frames_in, "frames_out": s.frames_out, "dropped": s.dropped,
                            "wait_in_s": s.wait_in_s, "wait_out_s": s.wait_out_s}
                   for s in stats.stages},
    }
    print(f"\n== {name}", file=sys.stderr)
    for line in stats.summary_lines():
        print(line, file=sys.stderr)
    return row


def run_live(args: argparse.Namespace) -> list[dict]:
    """One run per N in ``--live-sources``: N paced live sources plus one offline source."""
    pipeline = apply_overrides(load_pipeline(args.pipeline[0]), device=args.device, det_model=args.det_model,
                               pose_model=args.pose_model, img_size=args.img_size)
    patterns = ("testsrc", "testsrc2", "smptebars", "rgbtestsrc", "smptehdbars", "yuvtestsrc", "pal75bars",
                "pal100bars")
    rows = []
    for n in args.live_sources:
        live = [f"lavfi:{patterns[i % len(patterns)]}=size={args.live_size}:rate={args.live_fps}:"
                f"duration={args.live_seconds},realtime" + ("" if i < len(patterns) else f",setpts=PTS+{i}")
                for i in range(n)]
        result = run_pipeline(pipeline, live + [args.source[0]], [], progress=False)
        stats = result.stats
        made = int(args.live_fps * args.live_seconds)
        print(f"\n== {n} live + 1 offline", file=sys.stderr)
        for line in stats.summary_lines():
            print(line, file=sys.stderr)
        for name, frames in stats.frames_done.items():
            hist = stats.source_latency.get(name)
            is_live = name.startswith("lavfi:")
            shown = name.split("=")[0] if is_live else "offline: " + Path(name).name
            rows.append({"live_sources": n, "source": shown, "live": is_live, "frames": frames,
                         "fps": frames / args.live_seconds if is_live else None,
                         "latency_p50_ms": hist.percentile(50) if hist else None,
                         "latency_p99_ms": hist.percentile(99) if hist else None,
                         "dropped": max(0, made - frames) if is_live else None})
    print(f"\n{'N live':>6}  {'source (live: lavfi pattern)':<44}{'frames':>8}{'fps':>8}{'p50 ms':>9}{'p99 ms':>9}{'dropped':>9}")
    for row in rows:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"{row['live_sources']:>6}  {row['source'][:43]:<44}{row['frames']:>8}{fmt(row['fps'], '.1f'):>8}"
              f"{fmt(row['latency_p50_ms'], '.1f'):>9}{fmt(row['latency_p99_ms'], '.1f'):>9}"
              f"{fmt(row['dropped'], 'd'):>9}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", action="append", help="pipeline name or .toml path; repeat to compare "
                                                             "(default: passthrough)")
    parser.add_argument("--source", action="append", help=f"repeatable (default: {DEFAULT_SOURCE})")
    parser.add_argument("--max-frames", type=int, default=300, help="frames per source (default 300)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N for every model step")
    parser.add_argument("--det-model")
    parser.add_argument("--pose-model")
    parser.add_argument("--img-size", type=int)
    parser.add_argument("--inline", action="store_true", help="one process instead of one per stage")
    parser.add_argument("--output", action="append", help="also write these sinks (default: none)")
    parser.add_argument("--json", metavar="PATH", help="append one JSON object per pipeline to PATH")
    live = parser.add_argument_group("multi-source live mode")
    live.add_argument("--live-sources", type=lambda t: [int(v) for v in t.split(",")], metavar="N,N,...",
                      help="one run per N: N paced live sources plus one offline source (the first --source)")
    live.add_argument("--live-seconds", type=float, default=8.0, help="length of each live source (default 8)")
    live.add_argument("--live-fps", type=int, default=15, help="frame rate of each live source (default 15)")
    live.add_argument("--live-size", default="320x240", help="frame size of each live source (default 320x240)")
    args = parser.parse_args()
    args.pipeline = args.pipeline or ["passthrough"]
    args.source = args.source or [DEFAULT_SOURCE]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    rows = []
    try:
        if args.live_sources:
            rows = run_live(args)
            if args.json:
                with open(args.json, "a", encoding="utf-8") as f:
                    for row in rows:
                        f.write(json.dumps(row) + "\n")
            return 0
        for name in args.pipeline:
            rows.append(run_one(name, args))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"error: stage {e.stage!r} failed:\n{e.details}", file=sys.stderr)
        return 1
    print(f"\n{'pipeline':<26}{'frames':>8}{'fps':>9}{'p50 ms':>9}{'p99 ms':>9}{'dropped':>9}  per-stage ms/frame")
    for row in rows:
        stages = "  ".join(f"{k} {v['ms_per_frame']:.2f}" for k, v in row["stages"].items()
                           if v["ms_per_frame"] is not None)
        fps = f"{row['fps']:.1f}" if row["fps"] else "-"
        p50 = f"{row['latency_p50_ms']:.1f}" if row["latency_p50_ms"] is not None else "-"
        p99 = f"{row['latency_p99_ms']:.1f}" if row["latency_p99_ms"] is not None else "-"
        print(f"{row['pipeline']:<26}{row['frames']:>8}{fps:>9}{p50:>9}{p99:>9}{row['dropped']:>9}  {stages}")
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
