#!/usr/bin/env python3
"""Corpus throughput on Ray with 1, 2 and 3 local nodes, against the plain single-machine run.

    python scripts/bench_ray.py [--pipeline default] [--copies 4] [--nodes 1 2 3]

The corpus is ``--copies`` copies of each short video of ``../shared/media``
(the GIFs and MP4s other than the long one) plus one image folder, in a
temporary folder. Every configuration processes the same corpus:

- ``plain``: the items one after the other in this process, models loaded once
  (:class:`streampose.distributed.item_runner.ItemRunner`, no Ray) — what the
  batch command does per actor, without Ray;
  it runs first and again last, and ratios use the mean of the two, since
  the machine's load may change during the benchmark;
- ``ray N``: a fresh ``ray.cluster_utils.Cluster`` of N nodes (1 CPU each, one
  actor per node), ``run_batch`` from start to end: actor start-up (importing
  torch, loading the models) included, as a user would see it.

It prints frames/s, the ratio to ``plain``, and the per-actor efficiency
``(frames/s with N actors) / (N x plain frames/s)``, side by side, and checks
every configuration's JSONL against ``plain`` byte for byte. On a machine
with fewer cores than actors the actors share the cores, so the numbers show
Ray's overhead and correctness, not a speed-up.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO_ROOT.parent / "shared" / "media"
LONG_VIDEO = "one-by-one-person-detection.mp4"


def make_corpus(root: Path, copies: int) -> None:
    videos = [p for p in sorted(SHARED_MEDIA.iterdir())
              if p.suffix.lower() in (".mp4", ".gif") and p.name != LONG_VIDEO]
    for k in range(copies):
        for video in videos:
            folder = root / f"copy{k}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(video, folder / video.name)
    images = root / "images"
    images.mkdir()
    for image in sorted(SHARED_MEDIA.glob("*.jpg")):
        shutil.copy(image, images / image.name)


def run_plain(items, pipeline, out: Path) -> tuple[int, float]:
    from streampose.distributed.item_runner import ItemRunner

    t0 = time.monotonic()
    runner = ItemRunner(pipeline)
    runner.warm_up()
    frames = 0
    for item in items:
        outcome = runner.run(item.name, item.spec, str(out))
        if outcome.status != "done":
            raise SystemExit(f"plain run failed on {item.spec}: {outcome.error}")
        frames += outcome.frames
    runner.close()
    return frames, time.monotonic() - t0


def run_cluster(items, pipeline, out: Path, nodes: int) -> tuple[int, float]:
    import ray
    from ray.cluster_utils import Cluster

    from streampose.distributed.batch import BatchOptions, run_batch

    store = 100 * 1024 * 1024
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store,
                                                            "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1, object_store_memory=store)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        t0 = time.monotonic()
        result = run_batch(items, pipeline, out, BatchOptions(actors=nodes, progress=False))
        wall = time.monotonic() - t0
        if result.failed:
            raise SystemExit(f"ray {nodes}: {result.failed} item(s) failed: {result.errors}")
        return result.frames, wall
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="default", help="pipeline name or .toml path (default: default)")
    parser.add_argument("--copies", type=int, default=4, help="copies of each short video (default 4)")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3], help="cluster sizes (default 1 2 3)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    from streampose.config import load_pipeline
    from streampose.distributed.corpus import discover_items

    pipeline = load_pipeline(args.pipeline)
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        make_corpus(root / "corpus", args.copies)
        items = discover_items(str(root / "corpus"))
        rows = []
        frames, wall = run_plain(items, pipeline, root / "plain")
        rows.append(("plain (no Ray), first", 1, frames, wall, frames / wall))
        for nodes in args.nodes:
            out = root / f"ray{nodes}"
            frames_n, wall_n = run_cluster(items, pipeline, out, nodes)
            for item in items:
                if (out / f"{item.name}.jsonl").read_bytes() != (root / "plain" / f"{item.name}.jsonl").read_bytes():
                    raise SystemExit(f"ray {nodes}: {item.name} differs from the plain run")
            rows.append((f"ray, {nodes} node(s)", nodes, frames_n, wall_n, frames_n / wall_n))
        # The plain run again at the end: how far the machine's load moved during the benchmark.
        frames, wall = run_plain(items, pipeline, root / "plain-again")
        rows.append(("plain (no Ray), last", 1, frames, wall, frames / wall))
        plain_fps = (rows[0][4] + rows[-1][4]) / 2
    print(f"pipeline {pipeline.name!r}, {len(items)} items, {rows[0][2]} frames; every Ray result equals the "
          "plain run byte for byte")
    print(f"ratios against the mean of the two plain runs, {plain_fps:.1f} frames/s")
    print(f"{'configuration':<24}{'actors':>7}{'frames':>8}{'wall s':>9}{'frames/s':>10}{'vs plain':>10}"
          f"{'per-actor eff.':>16}")
    for label, actors, frames, wall, fps in rows:
        print(f"{label:<24}{actors:>7}{frames:>8}{wall:>9.1f}{fps:>10.1f}{fps / plain_fps:>9.2f}x"
              f"{fps / (actors * plain_fps):>15.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
