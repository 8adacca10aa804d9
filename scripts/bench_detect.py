#!/usr/bin/env python
"""YOLOv5 detection speed: frames/s at several batch sizes, conv+BN fused vs unfused, side by side.

Every configuration runs in one process, interleaved round-robin (one timed
call of each configuration per round), so load changes on a shared machine hit
all of them alike; the figure per configuration is the median over rounds.
A timed call is the whole ``YoloV5Detector.detect`` (letterbox, forward, NMS,
mapping back) on real video frames.

    python scripts/bench_detect.py                      # ../shared weights and video
    python scripts/bench_detect.py --weights weights/crowdhuman_yolov5m.pt --batches 1 4
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))


def parse_args() -> argparse.Namespace:
    shared = REPO.parent / "shared"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(shared / "weights" / "yolov5n.pt"), help="yolov5 .pt file")
    parser.add_argument("--video", default=str(shared / "media" / "one-by-one-person-detection.mp4"),
                        help="frames to detect on (the first frames after --start)")
    parser.add_argument("--start", type=int, default=70, help="first frame used (people visible from ~60)")
    parser.add_argument("--img-size", type=int, default=640)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=7, help="timed calls per configuration")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


def read_frames(path: str, start: int, count: int):
    import av

    frames = []
    with av.open(path) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= start:
                frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == count:
                break
    return frames


def main() -> int:
    args = parse_args()
    import torch

    from streampose.models.yolov5.detector import YoloV5Detector

    if args.threads:
        torch.set_num_threads(args.threads)
    frames = read_frames(args.video, args.start, max(args.batches))
    detectors = {fuse: YoloV5Detector.from_checkpoint(args.weights, img_size=args.img_size, fuse=fuse,
                                                      device=args.device)
                 for fuse in (False, True)}
    configs = [(fuse, batch) for batch in args.batches for fuse in (False, True)]

    def timed(fuse: bool, batch: int) -> float:
        if detectors[fuse].device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        detectors[fuse].detect(frames[:batch])
        if detectors[fuse].device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for fuse, batch in configs:  # warm-up: allocator, oneDNN primitives for each shape
        timed(fuse, batch)
    seconds: dict[tuple[bool, int], list[float]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for config in configs:
            seconds[config].append(timed(*config))

    fps = {c: c[1] / statistics.median(s) for c, s in seconds.items()}
    h, w = frames[0].shape[:2]
    print(f"# {Path(args.weights).name}, img_size {args.img_size} (rect letterbox of {w}x{h} frames), "
          f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, median of {args.rounds} interleaved rounds")
    print("| batch | unfused frames/s | fused frames/s | fusion speed-up | fused ms/frame |")
    print("|---:|---:|---:|---:|---:|")
    for batch in args.batches:
        unfused, fused = fps[(False, batch)], fps[(True, batch)]
        print(f"| {batch} | {unfused:.1f} | {fused:.1f} | {fused / unfused:.2f}x | {1000 / fused:.0f} |")
    base = fps[(True, args.batches[0])]
    print("batching (fused): " + ", ".join(f"batch {b}: {fps[(True, b)] / base:.2f}x of batch {args.batches[0]}"
                                           for b in args.batches[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
