"""Top-down pose throughput: one batched call per frame vs a per-person loop, side by side.

The per-person loop is a naive baseline (not the original top-down demo's
method, which stacks every person of a frame into one forward: see
``scripts/bench_speed.py`` part (a)): for every box, crop, forward a batch of one, decode. The batched path is
``TopDownEstimator.predict`` with all boxes of the frame (one crop batch, one
forward). Both use the same network and weights; repetitions alternate
between the two so machine noise hits both alike. Prints crops per second
(median over repetitions) for each number of people per frame, and the ratio.

    python scripts/bench_pose.py                       # HRNet-w32 256x192, random weights, CPU
    python scripts/bench_pose.py --weights weights/pose_hrnet_w32_256x192.pth --flip-test --device cuda

Weights do not change the speed; without ``--weights`` a randomly initialised
network of ``--model`` is used (no download needed).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))


def _estimator(args):
    import torch

    from streampose.device import resolve_device
    from streampose.models import build_model
    from streampose.topdown.crops import CropSpec
    from streampose.topdown.estimator import TopDownEstimator
    from streampose.models.hrnet.topdown import HeatmapTopDownModel, SimDRTopDownModel

    device = resolve_device(args.device)
    if args.weights:
        return TopDownEstimator.from_checkpoint(args.weights, flip_test=args.flip_test, max_batch=args.max_batch,
                                                device=args.device)
    torch.manual_seed(0)
    network = build_model(args.model).to(device)
    crop = CropSpec(input_size_wh=network.spec.input_size_wh)
    if network.spec.head.kind == "simdr":
        model = SimDRTopDownModel(network, crop, flip_test=args.flip_test)
    else:
        model = HeatmapTopDownModel(network, crop, flip_test=args.flip_test)
    return TopDownEstimator(model, max_batch=args.max_batch)


def _boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    """n person-like boxes (about 1:2.5, 100-300 px tall) inside the frame."""
    h = rng.uniform(100, 300, n)
    w = h / rng.uniform(2.0, 3.0, n)
    x1 = rng.uniform(0, width - w)
    y1 = rng.uniform(0, height - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)


def _sync(device) -> None:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="pose_hrnet_w32_256x192",
                        help="registered network when no --weights (default pose_hrnet_w32_256x192)")
    parser.add_argument("--weights", default="", help="an HRNet / SimDR checkpoint instead of random weights")
    parser.add_argument("--people", default="1,5,10,20", help="people per frame, comma separated")
    parser.add_argument("--repeats", type=int, default=5, help="timed frames per variant and size")
    parser.add_argument("--flip-test", action="store_true", help="flip test on (2 forwards per crop)")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--image", default=str(REPO_ROOT.parent / "shared/media/bus.jpg"),
                        help="frame to crop from (content does not matter for speed)")
    args = parser.parse_args(argv)

    import cv2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    estimator = _estimator(args)
    device = estimator.model.device
    image = cv2.imread(args.image)
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    people = [int(p) for p in args.people.split(",")]

    def batched(boxes):
        estimator.predict(image, boxes)

    def per_person(boxes):
        for box in boxes:
            estimator.predict(image, box[None])

    # Warm-up: first calls allocate and pick kernels.
    warm = _boxes(rng, max(people), image.shape[1], image.shape[0])
    batched(warm)
    per_person(warm[:2])
    _sync(device)

    print(f"model {estimator.model.network.spec.name if hasattr(estimator.model, 'network') else args.model}, "
          f"flip_test {args.flip_test}, device {device}, torch threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(f"{'people/frame':>12} | {'batched crops/s':>15} | {'per-person crops/s':>18} | {'ratio':>5}")
    print(f"{'-' * 12}-+-{'-' * 15}-+-{'-' * 18}-+-{'-' * 5}")
    for n in people:
        times = {"batched": [], "per_person": []}
        for _ in range(args.repeats):
            boxes = _boxes(rng, n, image.shape[1], image.shape[0])
            for name, run in (("batched", batched), ("per_person", per_person)):
                start = time.perf_counter()
                run(boxes)
                _sync(device)
                times[name].append(time.perf_counter() - start)
        rate_b = n / statistics.median(times["batched"])
        rate_p = n / statistics.median(times["per_person"])
        print(f"{n:>12} | {rate_b:>15.1f} | {rate_p:>18.1f} | {rate_b / rate_p:>4.2f}x", flush=True)


if __name__ == "__main__":
    main()
