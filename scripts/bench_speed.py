"""Speed where it counts (issue 17): the runtime against the demo's method, threads, replicas, crowds, precision.

Every part runs its variants side by side in one run, alternating rounds (``--rounds``)
and reporting the median, so a shared machine's noise hits all variants alike:

(a) *demo*: our top-down pipeline (real ``../shared/weights/yolov5n.pt`` → HRNet-w32
    256x192 in the official checkpoint layout, recipe weights from
    ``scripts/make_recipe_weights.py``; flip test off; IoU tracker and draw) against a
    faithful re-implementation of the original top-down demo's loop in one process:
    detect → crop every person (one ``cv2.warpAffine`` each) → one stacked forward per
    frame → numpy decode, sequential, same torch threads (all cores), same weights and frames.
(b) *threads*: the process pipeline against ``--inline`` (one process, all cores), and
    against its slowest stage run alone (pose step, all cores, detections computed
    beforehand); for the top-down and the default pipelines, and the default one with
    two pose replicas.
(c) *crowds*: the default pipeline at N people per frame: N people of ``street-demo.mp4``
    (its detected people, cropped) pasted at their own scale into a 2x8 grid on a grey frame
    of the clip's size, *before* (this issue: fp32, one pinned thread per model stage) and
    *after* (the default: threads by cost, bf16 where the CPU has it); and
    ``pipelines/multipose.toml`` (MoveNet MultiPose, bottom-up: one forward per frame
    whatever the crowd, at most 6 people found); and the default pipeline's pose step alone
    in one process on all cores (detections made first), the bound of its pose stage.
(d) *backends*: crops/s of HRNet-w32 and MoveNet per backend (torch fp32, torch bf16 where the
    CPU has it, onnxruntime, openvino when installed), and the default pipeline end to end on each.

(g) *GPU* (CUDA only, ``--parts g``): HRNet-w32 crops/s in torch fp32 / fp16 and as a TensorRT fp16
    engine, and the top-down pipeline with its pose stage on one GPU vs replicas on two.

    python scripts/bench_speed.py                       # parts a-d (CPU)
    python scripts/bench_speed.py --parts a,b --frames 40 --rounds 2 --json /tmp/speed.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout; spawned workers inherit sys.path
    sys.path.insert(0, str(REPO_ROOT))

SHARED = REPO_ROOT.parent / "shared"
THIS_FILE = str(Path(__file__).resolve())
#: the runtime opens ``frames:<file.npy>`` sources with this (spawned captures import it by path).
OPENER = f"{THIS_FILE}:open_frames"
CORES = os.cpu_count() or 1


# --- frames -------------------------------------------------------------------------------------------

class FramesSource:
    """Frames from a ``.npy`` array (N, H, W, 3) uint8, as an offline source (the I/O Source contract)."""

    def __init__(self, spec: str, source_id: int) -> None:
        from streampose.records import StreamStart

        self.frames_bgr = np.load(spec.split(":", 1)[1], mmap_mode="r")
        n, h, w, _ = self.frames_bgr.shape
        self.start_event = StreamStart(source_id, spec, w, h, 25.0, n, False)
        self.live = False
        self.stats: dict[str, int] = {}

    def frames(self):
        for i in range(len(self.frames_bgr)):
            yield np.ascontiguousarray(self.frames_bgr[i]), i / 25.0

    def close(self) -> None:
        self.frames_bgr = None


def open_frames(spec: str, source_id: int, options: object = None) -> FramesSource:
    return FramesSource(spec, source_id)


def read_clip(name: str, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of a clip, looped when it is shorter (street-demo.mp4 has 5)."""
    import cv2

    capture = cv2.VideoCapture(str(SHARED / "media" / name))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"cannot read ../shared/media/{name}")
    return [frames[i % len(frames)] for i in range(count)]


def save_frames(frames: list[np.ndarray], folder: Path, name: str) -> str:
    path = folder / f"{name}.npy"
    np.save(path, np.stack(frames))
    return f"frames:{path}"


# --- pipelines ----------------------------------------------------------------------------------------

def topdown_pipeline(det_weights: str, pose_weights: str, pose_precision: str = "auto",
                     det_precision: str = "auto") -> dict:
    return {"description": "bench_speed top-down", "stages": [
        {"name": "detect", "batch_size": 4, "steps": [
            {"type": "yolov5_detector", "weights": det_weights, "img_size": 640, "conf_threshold": 0.4,
             "iou_threshold": 0.5, "precision": det_precision}]},
        {"name": "pose", "batch_size": 4, "steps": [
            {"type": "topdown_pose", "weights": pose_weights, "flip_test": False, "precision": pose_precision}]},
        {"name": "render", "steps": [{"type": "iou_tracker"}, {"type": "draw"}]}]}


def default_pipeline(**changes) -> dict:
    """``pipelines/default.toml`` as data; changes: ``before=True`` (fp32, one pinned thread per model
    stage, one pose process, as before this issue), ``precision``, ``backend``, ``pose_replicas``, ``det_img_size``."""
    import tomllib

    from streampose.paths import PROJECT_ROOT

    data = tomllib.loads((PROJECT_ROOT / "pipelines" / "default.toml").read_text())
    data = copy.deepcopy(data)
    stages = {s["name"]: s for s in data["stages"]}
    for name in ("detect", "pose"):
        step = stages[name]["steps"][0]
        if changes.get("before"):
            step.update(threads=1, precision="fp32")
        elif "precision" in changes:
            step["precision"] = changes["precision"]
        if "backend" in changes:
            step["backend"] = changes["backend"]
    if changes.get("before"):
        stages["pose"].pop("replicas", None)
    if "pose_replicas" in changes:
        stages["pose"]["replicas"] = changes["pose_replicas"]
    if changes.get("det_img_size"):
        stages["detect"]["steps"][0]["img_size"] = changes["det_img_size"]
    return data


def pipeline_data(name: str) -> dict:
    """``pipelines/<name>.toml`` as data."""
    import tomllib

    from streampose.paths import PROJECT_ROOT

    return tomllib.loads((PROJECT_ROOT / "pipelines" / f"{name}.toml").read_text())


def run(pipeline: dict, source: str, inline: bool = False) -> dict:
    from streampose.config import parse_pipeline
    from streampose.runtime import run_pipeline

    result = run_pipeline(parse_pipeline(copy.deepcopy(pipeline), name="bench_speed"), [source], [], inline=inline,
                          opener=OPENER, progress=False)
    stats = result.stats
    # Frames over first capture → last finished frame (the pipeline's fill included, start-up not): the
    # runtime's steady-state FPS needs more frames than these short runs have.
    fps = stats.total_frames / (stats.last_done - stats.first_capture)
    return {"fps": fps, "frames": stats.total_frames,
            "stages": {s.name: 1000 * s.total_busy_s / s.frames_out for s in stats.stages if s.frames_out}}


def rounds(variants: dict, n_rounds: int) -> dict:
    """Run every variant once per round, alternating; returns each one's runs (median FPS first)."""
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(n_rounds):
        for name, fn in variants.items():
            runs[name].append(fn())
    out = {}
    for name, rs in runs.items():
        rs = sorted(rs, key=lambda r: r["fps"])
        out[name] = rs[len(rs) // 2] | {"fps_all": [round(r["fps"], 2) for r in rs]}
    return out


# --- (a) the demo's method ----------------------------------------------------------------------------

def recipe_hrnet_w32(folder: Path) -> Path:
    """HRNet-w32 256x192 recipe weights saved in the official checkpoint layout."""
    import torch

    from scripts.make_recipe_weights import load_layout, recipe_state_dict, to_torch

    path = folder / "pose_hrnet_w32_256x192_recipe.pth"
    if not path.exists():
        layout = load_layout(SHARED / "golden" / "recipe_pose_hrnet_w32_256x192.json")
        torch.save(to_torch(recipe_state_dict(layout)), path)
    return path


class DemoLoop:
    """The original top-down demo's method, re-implemented: per frame detect, crop every person
    (one cv2.warpAffine each, normalised one by one), one stacked forward, decode in numpy."""

    def __init__(self, det_weights: str, pose_weights: Path) -> None:
        import torch

        from streampose.models.hrnet.checkpoints import load_pose_model
        from streampose.models.yolov5.detector import YoloV5Detector

        self.detector = YoloV5Detector.from_checkpoint(det_weights, img_size=640, conf_threshold=0.4,
                                                       iou_threshold=0.5, device="cpu")
        self.network, _ = load_pose_model(pose_weights, device=torch.device("cpu"))
        self.network.eval()

    def frame(self, image: np.ndarray) -> int:
        import cv2
        import torch

        from streampose.topdown.crops import HRNET_CROP, get_affine_transform, transform_preds, xyxy_to_center_scale
        from streampose.models.hrnet.heatmap_decode import decode_heatmaps

        detections = self.detector.detect([image])[0]
        people = detections.xyxy[detections.class_ids == 0]
        if not len(people):
            return 0
        centers, scales = xyxy_to_center_scale(people, HRNET_CROP)
        w, h = HRNET_CROP.input_size_wh
        mean, std = np.array(HRNET_CROP.mean, np.float32), np.array(HRNET_CROP.std, np.float32)
        inputs = []
        for center, scale in zip(centers, scales):
            trans = get_affine_transform(center, scale, (w, h))
            crop = cv2.warpAffine(image, trans, (w, h), flags=cv2.INTER_LINEAR)
            rgb = crop[:, :, ::-1].astype(np.float32) / 255.0
            inputs.append(((rgb - mean) / std).transpose(2, 0, 1))
        with torch.inference_mode():
            heatmaps = self.network(torch.from_numpy(np.stack(inputs))).numpy()
        coords, _ = decode_heatmaps(heatmaps)
        transform_preds(coords, centers, scales, heatmaps.shape[3:1:-1])
        return len(people)

    def run(self, frames: list[np.ndarray]) -> dict:
        self.frame(frames[0])  # warm-up, not timed (the pipeline's models warm up before its clock starts)
        start = time.perf_counter()
        people = [self.frame(f) for f in frames]
        seconds = time.perf_counter() - start
        return {"fps": len(frames) / seconds, "people_per_frame": statistics.fmean(people)}


def part_a(args, folder: Path) -> dict:
    import torch

    det = str(SHARED / "weights" / "yolov5n.pt")
    pose = str(recipe_hrnet_w32(folder))
    frames = read_clip("street-demo.mp4", args.frames)
    source = save_frames(frames, folder, "street")
    torch.set_num_threads(CORES)
    demo = DemoLoop(det, Path(pose))
    variants = {
        "demo loop (fp32, all cores)": lambda: demo.run(frames),
        "ours fp32": lambda: run(topdown_pipeline(det, pose, "fp32", "fp32"), source),
        "ours default (auto precision)": lambda: run(topdown_pipeline(det, pose), source),
        "ours bf16": lambda: run(topdown_pipeline(det, pose, "bf16", "bf16"), source),
    }
    if not _bf16():
        del variants["ours bf16"]
    res = rounds(variants, args.rounds)
    base = res["demo loop (fp32, all cores)"]["fps"]
    print(f"\n(a) top-down HRNet-w32 vs the original demo's method, street-demo.mp4 (5 frames looped) {len(frames)} frames, "
          f"{res['demo loop (fp32, all cores)']['people_per_frame']:.1f} people/frame (YOLOv5n), flip off")
    print(f"backend auto: {_auto_backends()}")
    _table(res, base, "vs demo loop")
    return res


# --- (b) threads and replicas -------------------------------------------------------------------------

def pose_alone(pipeline: dict, frames: list[np.ndarray], rounds_: int) -> dict:
    """The pipeline's pose stage run alone in this process with all cores: detections computed first."""
    import torch

    from streampose.config import parse_pipeline
    from streampose.records import Frame, FramePacket
    from streampose.step import build_step

    config = parse_pipeline(copy.deepcopy(pipeline), name="alone")
    torch.set_num_threads(CORES)
    detect = build_step(config.stages[0].steps[0])
    pose = build_step(config.stages[1].steps[0])
    detect.start()
    pose.start()
    torch.set_num_threads(CORES)
    batch = config.stages[1].batch_size
    packets = []
    for i, image in enumerate(frames):
        frame = Frame(FramePacket(0, "alone", i, None, image.shape, 0.0), image)
        detect.process([frame])
        packets.append(frame.packet)
    pose.process([Frame(packets[0], frames[0])])  # warm-up
    fps = []
    for _ in range(rounds_):
        start = time.perf_counter()
        for k in range(0, len(frames), batch):
            pose.process([Frame(p, frames[k + j]) for j, p in enumerate(packets[k:k + batch])])
        fps.append(len(frames) / (time.perf_counter() - start))
    detect.close()
    pose.close()
    return {"fps": statistics.median(fps), "fps_all": [round(f, 2) for f in fps]}


def part_b(args, folder: Path) -> dict:
    det = str(SHARED / "weights" / "yolov5n.pt")
    pose = str(recipe_hrnet_w32(folder))
    out = {}
    for title, pipeline, n_frames in (
            ("top-down (YOLOv5n → HRNet-w32, default precision)", topdown_pipeline(det, pose), args.frames),
            ("default (bundled YOLOX → MoveNet)", default_pipeline(), args.fast_frames)):
        frames = read_clip("street-demo.mp4", n_frames)
        source = save_frames(frames, folder, f"street{n_frames}")
        variants = {"processes (default)": lambda p=pipeline: run(p, source),
                    "--inline": lambda p=pipeline: run(p, source, inline=True)}
        if "MoveNet" in title:
            variants["processes, 1 pose process (no replicas)"] = lambda: run(default_pipeline(pose_replicas=1), source)
        res = rounds(variants, args.rounds)
        res["pose stage alone (all cores)"] = pose_alone(pipeline, frames, args.rounds)
        print(f"\n(b) {title}, street-demo.mp4 (5 frames looped) {n_frames} frames")
        _table(res, res["--inline"]["fps"], "vs --inline", extra=res["pose stage alone (all cores)"]["fps"],
               extra_name="vs stage alone")
        out[title] = res
    return out


# --- (c) crowds ---------------------------------------------------------------------------------------

#: the crowd canvas: 2 rows of 8 cells, one person each, at the clip's own size (960x540).
CROWD_GRID = (2, 8)


def crowd_frames(frames: list[np.ndarray], people: int) -> tuple[list[np.ndarray], float]:
    """Frames of the clip's size with ``people`` people: person crops of the clip (the default
    detector's boxes, largest first) pasted into a grid of cells on grey, one per cell, at their own
    scale (shrunk only to fit a cell); and the mean number of people the default detector finds."""
    import cv2
    import torch

    from streampose.records import Frame, FramePacket
    from streampose.step import build_step

    torch.set_num_threads(CORES)
    detector = build_step({"type": "yolox_detector", "img_size": 256, "score_threshold": 0.3,
                           "nms_threshold": 0.5, "device": "cpu", "precision": "fp32"})
    detector.start()

    def detect(image):
        frame = Frame(FramePacket(0, "crowd", 0, None, image.shape, 0.0), image)
        detector.process([frame])
        return frame.packet.detections

    h, w = frames[0].shape[:2]
    rows, cols = CROWD_GRID
    cell_h, cell_w = h // rows, w // cols
    out, found = [], []
    for i, image in enumerate(frames):
        d = detect(image)
        order = np.argsort(-(d.xyxy[:, 2] - d.xyxy[:, 0]) * (d.xyxy[:, 3] - d.xyxy[:, 1]))
        crops = []
        for x1, y1, x2, y2 in d.xyxy[order]:
            bw, bh = x2 - x1, y2 - y1
            if bw > 0.4 * w or bh < 0.15 * h:  # not one person, or too small to be found alone
                continue
            # some context around the person (the detector was trained on scenes), scaled to the cell
            crop = image[int(max(0, y1 - 0.1 * bh)):int(y2 + 0.1 * bh), int(max(0, x1 - 0.2 * bw)):int(x2 + 0.2 * bw)]
            scale = min(cell_w / crop.shape[1], cell_h / crop.shape[0])
            crops.append(cv2.resize(crop, None, fx=scale, fy=scale))
        canvas = np.full_like(image, 114)
        for k in range(people):
            crop = crops[k % len(crops)]
            r, c = divmod(k, cols)
            y0 = r * cell_h + (cell_h - crop.shape[0]) // 2
            x0 = c * cell_w + (cell_w - crop.shape[1]) // 2
            canvas[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
        out.append(canvas)
        found.append(len(detect(canvas)))
    detector.close()
    return out, statistics.fmean(found)


def part_c(args, folder: Path) -> dict:
    street = read_clip("street-demo.mp4", args.frames)
    out = {}
    print(f"\n(c) default pipeline FPS vs people per frame, {len(street)} frames of street-demo.mp4's people on grey")
    print(f"{'people asked':>12} | {'found':>5} | {'before FPS':>10} | {'after FPS':>9} | {'after/before':>12} | "
          f"{'pose alone FPS':>14} | {'multipose FPS':>13}")
    for people in args.people:
        frames, found = crowd_frames(street, people)
        source = save_frames(frames, folder, f"crowd{people}")
        res = rounds({"before": lambda: run(default_pipeline(before=True), source),
                      "after": lambda: run(default_pipeline(), source),
                      "multipose": lambda: run(pipeline_data("multipose"), source)}, args.rounds)
        res["people_found"] = found
        # the bound: the default pipeline's pose step alone in one process on all cores, detections made first
        res["pose alone"] = pose_alone(default_pipeline(), frames, args.rounds)
        out[people] = res
        print(f"{people:>12} | {found:>5.1f} | {res['before']['fps']:>10.1f} | {res['after']['fps']:>9.1f} | "
              f"{res['after']['fps'] / res['before']['fps']:>11.2f}x | {res['pose alone']['fps']:>14.1f} | "
              f"{res['multipose']['fps']:>13.1f}", flush=True)
    return out


# --- (d) precision and backends -----------------------------------------------------------------------

def _bf16() -> bool:
    from streampose.device import cpu_bf16_support

    return cpu_bf16_support() is not None


def _backends() -> list[str]:
    """The variants of (d) available here: torch fp32, torch bf16 (native bf16 CPUs), onnxruntime, openvino."""
    import importlib.util

    names = ["torch fp32"] + (["torch bf16"] if _bf16() else [])
    return names + [b for b in ("onnxruntime", "openvino") if importlib.util.find_spec(b)]


def crops_per_s(network, batch: int, size_hw: tuple[int, int], variant: str, reps: int) -> float:
    import torch

    from streampose.export.backends import prepare_network

    backend, _, precision = variant.partition(" ")
    net = prepare_network(network, backend=backend, precision=precision or "fp32", device="cpu", threads=CORES)
    x = torch.randn(batch, 3, *size_hw)
    with torch.inference_mode():
        net(x)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def part_d(args, folder: Path) -> dict:
    import torch

    from streampose.models.hrnet.checkpoints import load_pose_model
    from streampose.models.movenet.topdown import load_movenet_topdown

    torch.set_num_threads(CORES)
    hrnet, _ = load_pose_model(recipe_hrnet_w32(folder), device=torch.device("cpu"))
    movenet = load_movenet_topdown(device=torch.device("cpu")).network
    precisions = _backends()
    out: dict = {"crops_per_s": {}}
    print(f"\n(d) crops/s per backend, {CORES} threads (median of {args.reps}, best of {args.rounds} rounds)")
    print(f"{'model':<10} {'batch':>5} | " + " | ".join(f"{p:>11}" for p in precisions) + " | best/fp32")
    for name, net, size, batch in (("HRNet-w32", hrnet.eval(), (256, 192), 8), ("MoveNet", movenet, (192, 192), 16)):
        rates = {p: 0.0 for p in precisions}
        for _ in range(args.rounds):  # alternate the precisions
            for p in precisions:
                rates[p] = max(rates[p], crops_per_s(net, batch, size, p, args.reps))
        out["crops_per_s"][name] = rates
        print(f"{name:<10} {batch:>5} | " + " | ".join(f"{rates[p]:>11.1f}" for p in precisions)
              + f" | {max(rates.values()) / rates['torch fp32']:.2f}x", flush=True)
    street = read_clip("street-demo.mp4", args.frames)
    source = save_frames(street, folder, "street")
    def pipeline(variant):
        backend, _, precision = variant.partition(" ")
        return default_pipeline(precision=precision or "fp32", backend=backend)

    variants = {f"default pipeline {p}": (lambda p=p: run(pipeline(p), source)) for p in precisions}
    # the default as it is: backend "auto" (the table `streampose backends --measure` wrote for this machine,
    # torch without one) and precision "auto"
    variants["default pipeline auto"] = lambda: run(default_pipeline(), source)
    res = rounds(variants, args.rounds)
    print(f"\n(d) default pipeline end to end, street-demo.mp4 (5 frames looped) {len(street)} frames; "
          f"backend auto: {_auto_backends()}")
    _table(res, res["default pipeline torch fp32"]["fps"], "vs fp32")
    out["e2e"] = res
    return out


def _auto_backends() -> str:
    """What backend = "auto" runs per model family here (the measured table, else torch)."""
    import torch

    from streampose.export.backend_choice import fastest_backend, table_path

    families = ("yolov5", "hrnet", "yolox", "movenet", "movenet_multipose")
    chosen = ", ".join(f"{f} {fastest_backend(f, torch.device('cpu'))}" for f in families)
    return f"{chosen} (table {table_path()})"


# --- (g) GPU: fp16 vs TensorRT, replicas over GPUs ----------------------------------------------------

def part_g(args, folder: Path) -> dict:
    """CUDA only: HRNet-w32 crops/s in torch fp16 vs a TensorRT fp16 engine; the top-down pipeline
    with its pose stage on one GPU vs two replicas (``devices = ["cuda:0", "cuda:1"]``)."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        print("\n(g) skipped: no CUDA device")
        return {}
    from streampose.export.backends import BackendNetwork
    from streampose.gpu.acceleration import accelerate_network
    from streampose.models.hrnet.checkpoints import load_pose_model

    device = torch.device("cuda:0")
    network, _ = load_pose_model(recipe_hrnet_w32(folder), device=device)
    network.eval()
    x = torch.randn(32, 3, 256, 192, device=device)
    variants = {"torch fp32": network, "torch fp16": accelerate_network(network, precision="fp16",
                                                                        channels_last=True)}
    if importlib.util.find_spec("tensorrt"):
        variants["tensorrt fp16"] = BackendNetwork(network, "tensorrt", model_name="hrnet", fp16=True)
    out: dict = {"crops_per_s": {}}
    print(f"\n(g) HRNet-w32 crops/s on {torch.cuda.get_device_name(0)}, batch 32")
    for name, net in variants.items():
        with torch.inference_mode():
            for _ in range(3):
                net(x)
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(args.reps * 4):
                net(x)
            torch.cuda.synchronize(device)
        rate = 32 * args.reps * 4 / (time.perf_counter() - start)
        out["crops_per_s"][name] = rate
        print(f"{name:<16} {rate:>9.1f} crops/s  {rate / out['crops_per_s']['torch fp32']:.2f}x fp32", flush=True)
    if torch.cuda.device_count() >= 2:
        det = str(SHARED / "weights" / "yolov5n.pt")
        pose = str(recipe_hrnet_w32(folder))
        source = save_frames(read_clip("street-demo.mp4", args.frames * 4), folder, "street_gpu")

        def pipeline(devices):
            data = topdown_pipeline(det, pose)
            for stage in data["stages"]:
                for step in stage["steps"]:
                    if step["type"] in ("yolov5_detector", "topdown_pose"):
                        step["device"] = "cuda:0"
            data["stages"][1]["devices"] = devices
            return data

        res = rounds({"pose on cuda:0": lambda: run(pipeline(["cuda:0"]), source),
                      "pose replicas on cuda:0 + cuda:1": lambda: run(pipeline(["cuda:0", "cuda:1"]), source)},
                     args.rounds)
        print("\n(g) top-down pipeline, pose stage on one GPU vs two replicas")
        _table(res, res["pose on cuda:0"]["fps"], "vs one GPU")
        out["replicas"] = res
    else:
        print("(g) 2-replica scaling skipped: fewer than 2 GPUs")
    return out


# --- output -------------------------------------------------------------------------------------------

def _table(res: dict, base: float, ratio_name: str, extra: float | None = None, extra_name: str = "") -> None:
    head = f"{'variant':<40} | {'FPS':>7} | {ratio_name:>12}" + (f" | {extra_name:>14}" if extra else "")
    print(head + " | runs / ms per frame by stage")
    for name, r in res.items():
        if not isinstance(r, dict) or "fps" not in r:
            continue
        line = f"{name:<40} | {r['fps']:>7.2f} | {r['fps'] / base:>11.2f}x"
        if extra:
            line += f" | {r['fps'] / extra:>13.2f}x"
        stages = ", ".join(f"{k} {v:.0f}" for k, v in r.get("stages", {}).items())
        print(line + f" | {r.get('fps_all')} {stages}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="a,b,c,d", help="comma separated: a, b, c, d, g (CUDA)")
    parser.add_argument("--frames", type=int, default=40, help="frames per run (default 40)")
    parser.add_argument("--fast-frames", type=int, default=200,
                        help="frames per run of the default pipeline in (b), ~10x faster than the top-down one "
                             "(default 200: short runs measure the pipeline's fill more than its rate)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per variant (median)")
    parser.add_argument("--reps", type=int, default=5, help="forwards per crops/s figure (d)")
    parser.add_argument("--people", default="1,4,8,16", help="people per frame for (c)")
    parser.add_argument("--json", metavar="PATH", help="append the results as one JSON line")
    args = parser.parse_args(argv)
    args.people = [int(p) for p in args.people.split(",")]
    import torch

    from streampose.device import cpu_bf16_support

    print(f"{platform.machine()}, {CORES} cores, bf16: {cpu_bf16_support() or 'no'}, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        folder = Path(tmp)
        for part, fn in (("a", part_a), ("b", part_b), ("c", part_c), ("d", part_d), ("g", part_g)):
            if part in args.parts.split(","):
                results[part] = fn(args, folder)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps(results, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
