#!/usr/bin/env python3
"""GPU fast path benchmark: the batched device pipeline vs a sequential per-person loop, side by side.

On one machine and one device in one run (``--device cuda`` is the target; ``--device cpu`` checks it works):

1. *pipeline*: the streampose runtime (one process per stage, shared-memory ring) running YOLOv5n
   (``../shared/weights/yolov5n.pt``, real weights, so people counts are real) → ``topdown_pose``
   HRNet-w32 256x192 with the GPU fast path (device crops, device decoding, fp16 autocast +
   channels-last + cuDNN autotuning on CUDA; fp32 on CPU) on a 1080p video with about 10 people per
   frame (``../shared/media/street-demo.mp4`` upscaled to 1920x1080 and looped);
2. *sequential*: a naive per-person loop in one process (not the original demo's method, which
   stacks a frame's people into one forward; that one is ``scripts/bench_speed.py`` (a)): detect
   one frame (fp32), then for each person a cv2 crop, a forward of a batch of one (fp32), a numpy
   decode on the CPU;
3. *standalone*: the pose network alone (same precision, flip test and batch size as the pipeline's
   pose forwards) on device-resident random input: the throughput the pipeline should approach;
4. optionally HigherHRNet-w32 at 512 (``higherhrnet_pose``) through the same runtime.

The pose models use the golden *recipe* weights (``scripts/make_recipe_weights.py``), not trained
ones: speed does not depend on the weights, the printed keypoints would be meaningless. Prints FPS,
per-stage ms/frame, latency p50/p99, GPU utilisation (nvidia-smi / ``torch.cuda.utilization``
sampling, CUDA only), the pipeline/sequential speed-up and pipeline/standalone pose throughput.

    python scripts/bench_gpu.py --device cuda --max-frames 300
    python scripts/bench_gpu.py --device cpu --max-frames 2 --no-flip --threads 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout; spawned workers inherit sys.path
    sys.path.insert(0, str(REPO_ROOT))

SHARED = REPO_ROOT.parent / "shared"


def make_video(path: Path, max_frames: int, size_wh=(1920, 1080)) -> list[np.ndarray]:
    """street-demo.mp4 upscaled to ``size_wh`` and looped to ``max_frames`` frames, written to ``path`` (mp4v)."""
    import cv2

    capture = cv2.VideoCapture(str(SHARED / "media" / "street-demo.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, size_wh, interpolation=cv2.INTER_LINEAR))
    capture.release()
    if not frames:
        raise SystemExit("cannot read ../shared/media/street-demo.mp4")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, size_wh)
    looped = [frames[i % len(frames)] for i in range(max_frames)]
    for frame in looped:
        writer.write(frame)
    writer.release()
    return looped


def recipe_weights(model: str, folder: Path) -> Path:
    from scripts.make_recipe_weights import load_layout, recipe_state_dict, to_torch
    import torch

    path = folder / f"recipe_{model}.pth"
    torch.save(to_torch(recipe_state_dict(load_layout(SHARED / "golden" / f"recipe_{model}.json"))), path)
    return path


class UtilizationSampler:
    """GPU utilisation (%) sampled every ``period_s`` in a thread: nvidia-smi, else torch.cuda.utilization()."""

    def __init__(self, device_index: int = 0, period_s: float = 0.2) -> None:
        self.device_index, self.period_s = device_index, period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float | None:
        try:
            out = subprocess.run(["nvidia-smi", f"--id={self.device_index}", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=2)
            return float(out.stdout.strip().splitlines()[0])
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            try:
                import torch

                return float(torch.cuda.utilization(self.device_index))
            except Exception:  # noqa: BLE001 - pynvml missing or unsupported: no figure, said in the output
                return None

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            value = self._sample()
            if value is not None:
                self.samples.append(value)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


def write_pipeline(path: Path, stages: list[tuple[str, int, dict]]) -> Path:
    def value(v):
        return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")

    lines = ['description = "bench_gpu"']
    for name, batch_size, step in stages:
        options = ", ".join(f"{k} = {value(v)}" for k, v in step.items())
        lines += ["[[stages]]", f'name = "{name}"', f"batch_size = {batch_size}", f"steps = [ {{ {options} }} ]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_runtime(pipeline_path: Path, video: Path, max_frames: int, cuda: bool, inline: bool) -> dict:
    from streampose.config import load_pipeline
    from streampose.runtime import run_pipeline

    sampler = UtilizationSampler() if cuda else None
    if sampler:
        sampler.__enter__()
    try:
        result = run_pipeline(load_pipeline(pipeline_path), [str(video)], [], inline=inline, max_frames=max_frames,
                              progress=False)
    finally:
        if sampler:
            sampler.__exit__()
    stats = result.stats
    return {"frames": stats.total_frames, "fps": stats.fps, "wall_s": stats.wall_s,
            "latency_p50_ms": stats.latency.percentile(50), "latency_p99_ms": stats.latency.percentile(99),
            "stages": {s.name: (1000 * s.total_busy_s / s.frames_out if s.frames_out else None) for s in stats.stages},
            "gpu_util_pct": sampler.mean if sampler else None, "summary": stats.summary_lines()}


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sequential_loop(frames, det_weights: Path, pose_weights: Path, args, device) -> dict:
    """A per-person loop: per frame detect (fp32), per person crop (cv2) → forward (batch 1) → numpy decode."""
    from streampose.models.yolov5.detector import YoloV5Detector
    from streampose.topdown.estimator import TopDownEstimator

    detector = YoloV5Detector.from_checkpoint(det_weights, img_size=args.img_size, device=str(device), half=False)
    pose = TopDownEstimator.from_checkpoint(pose_weights, flip_test=args.flip, device=str(device),
                                            crops_on_device=False, decode_on_device=False)
    people, times = [], []
    for i, frame in enumerate(frames):
        sync(device)
        start = time.perf_counter()
        detections = detector.detect([frame])[0]
        for box, score in zip(detections.xyxy, detections.scores):
            pose.predict(frame, box[None], score[None])
        sync(device)
        if i >= args.warmup or len(frames) <= args.warmup:
            times.append(time.perf_counter() - start)
        people.append(len(detections))
    return {"fps": len(times) / sum(times), "ms_per_frame": 1000 * statistics.fmean(times),
            "people_per_frame": statistics.fmean(people)}


def standalone_pose(pose_weights: Path, batch: int, args, device, precision: str, channels_last: bool) -> dict:
    """Crops/s of the pose network alone (device input, flip test as configured) at ``batch`` crops per forward."""
    import torch

    from streampose.gpu.acceleration import accelerate_network, configure_cudnn
    from streampose.models.hrnet.checkpoints import load_pose_model

    configure_cudnn(device.type == "cuda")
    network, _ = load_pose_model(pose_weights, device=device)
    network = accelerate_network(network, precision=precision, channels_last=channels_last)
    x = torch.randn(batch, 3, 256, 192, device=device)
    reps = args.standalone_reps
    with torch.inference_mode():
        for _ in range(2):
            network(x)
        sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            network(x)
            if args.flip:
                network(x.flip(3))
        sync(device)
    return {"batch": batch, "crops_per_s": batch * reps / (time.perf_counter() - start)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (target), cuda:N or cpu (smoke run)")
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4, help="frames per detect / pose step call")
    parser.add_argument("--img-size", type=int, default=640)
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="pose flip test off (on by default)")
    parser.add_argument("--no-bottomup", dest="bottomup", action="store_false", help="skip HigherHRNet-w32-512")
    parser.add_argument("--sequential-frames", type=int, default=30, help="frames for the sequential loop")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first frames of the sequential loop")
    parser.add_argument("--standalone-reps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per stage (0: default)")
    parser.add_argument("--inline", action="store_true", help="runtime in one process")
    parser.add_argument("--json", metavar="PATH", help="append the result as one JSON line")
    args = parser.parse_args(argv)

    import logging

    import torch

    from streampose.device import resolve_device

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    precision, channels_last = ("fp16", True) if cuda else ("fp32", False)
    det_weights = SHARED / "weights" / "yolov5n.pt"
    tmp = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    video = tmp / "street_1080p.mp4"
    frames = make_video(video, args.max_frames)
    pose_weights = recipe_weights("pose_hrnet_w32_256x192", tmp)
    machine = (torch.cuda.get_device_name(device) if cuda else f"CPU {platform.processor() or platform.machine()}, "
               f"torch threads {args.threads or torch.get_num_threads()}")
    print(f"device {device} ({machine}), torch {torch.__version__}; video 1920x1080 street-demo looped, "
          f"{args.max_frames} frames; detector yolov5n.pt (real weights) img_size {args.img_size}; pose HRNet-w32 "
          f"256x192 RECIPE weights (not trained), flip_test {args.flip}, precision {precision}, "
          f"channels_last {channels_last}")

    threads = {"threads": args.threads} if args.threads else {}
    fast_path = write_pipeline(tmp / "topdown_fast.toml", [
        ("detect", args.batch_size, {"type": "yolov5_detector", "weights": str(det_weights),
                                     "img_size": args.img_size, "half": cuda, "cudnn_benchmark": cuda,
                                     "device": str(device), **threads}),
        ("pose", args.batch_size, {"type": "topdown_pose", "weights": str(pose_weights), "flip_test": args.flip,
                                   "max_batch": 64, "precision": precision, "channels_last": channels_last,
                                   "crops_on_device": True, "decode_on_device": True,
                                   "cudnn_benchmark": cuda, "device": str(device), **threads}),
    ])
    rows = {}
    rows["pipeline"] = run_runtime(fast_path, video, args.max_frames, cuda, args.inline)
    seq_frames = frames[: max(args.sequential_frames, 1)]
    rows["sequential"] = sequential_loop(seq_frames, det_weights, pose_weights, args, device)
    people = rows["sequential"]["people_per_frame"]
    pose_batch = max(1, min(64, round(people * args.batch_size)))
    rows["standalone"] = standalone_pose(pose_weights, pose_batch, args, device, precision, channels_last)
    if args.bottomup:
        try:
            hhr = recipe_weights("pose_higher_hrnet_w32_512", tmp)
            bottomup = write_pipeline(tmp / "bottomup.toml", [
                ("pose", 2, {"type": "higherhrnet_pose", "weights": str(hhr), "flip_test": args.flip,
                             "device": str(device)})])
            rows["higherhrnet_w32_512"] = run_runtime(bottomup, video, args.max_frames, cuda, args.inline)
        except Exception as e:  # noqa: BLE001 - the bottom-up estimator is optional here; say why it is missing
            rows["higherhrnet_w32_512"] = {"error": f"{type(e).__name__}: {e}"}

    p, s, st = rows["pipeline"], rows["sequential"], rows["standalone"]
    pipeline_crops_per_s = p["fps"] * people if p["fps"] else None
    label = "" if cuda else "  [CPU smoke run: not the GPU goal]"
    print(f"\npeople/frame (YOLOv5n fp32, sequential run): {people:.1f}; pose crops per forward ~{pose_batch}{label}")
    print(f"{'variant':<34}{'FPS':>8}{'p50 ms':>9}{'p99 ms':>9}{'GPU %':>7}  per-stage ms/frame")

    def fmt(v, spec=".1f"):
        return "-" if v is None else format(v, spec)

    for name in ("pipeline", "higherhrnet_w32_512"):
        r = rows.get(name)
        if r is None:
            continue
        if "error" in r:
            print(f"{name:<34} not run: {r['error']}")
            continue
        stages = "  ".join(f"{k} {v:.1f}" for k, v in r["stages"].items() if v is not None)
        title = "pipeline (fast path)" if name == "pipeline" else "HigherHRNet-w32-512 (runtime)"
        print(f"{title:<34}{fmt(r['fps']):>8}{fmt(r['latency_p50_ms']):>9}{fmt(r['latency_p99_ms']):>9}"
              f"{fmt(r['gpu_util_pct'], '.0f'):>7}  {stages}")
    print(f"{'sequential fp32 per-person loop':<34}{s['fps']:>8.2f}{'':>9}{'':>9}{'':>7}  "
          f"{s['ms_per_frame']:.1f} ms/frame ({len(seq_frames)} frames, in-process, frames from memory)")
    print(f"standalone pose ({precision}, batch {st['batch']}, flip {args.flip}): {st['crops_per_s']:.1f} crops/s")
    if p["fps"]:
        print(f"pipeline / sequential FPS: {p['fps'] / s['fps']:.2f}x (goal >= 10x on CUDA)")
        print(f"pipeline pose crops/s {pipeline_crops_per_s:.1f} / standalone {st['crops_per_s']:.1f} = "
              f"{pipeline_crops_per_s / st['crops_per_s']:.0%} (goal >= 70% on CUDA)")
    for name in ("pipeline", "higherhrnet_w32_512"):
        if rows.get(name) and "summary" in rows[name]:
            print(f"\n== {name}", file=sys.stderr)
            for line in rows[name].pop("summary"):
                print(line, file=sys.stderr)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps({"device": str(device), "machine": machine, "args": vars(args), **rows}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
