#!/usr/bin/env python3
"""The measurements that pick the default pipeline: accuracy, people found, false boxes, FPS, side by side.

For each candidate (a bundled detector at an input size x a bundled pose model,
or a bundled bottom-up model alone), in one run on this machine:

- COCO keypoint AP on ``../shared/coco`` (4 images, 14 people) with the
  candidate's own detector boxes (official protocol of ``scripts/evaluate_coco.py``,
  no flip test: what the pipeline runs); a bottom-up model sees the whole images;
- people found: mean poses per frame on each ``../shared/media`` clip;
- false big boxes: the share of frames with a box covering more than 30% of the
  frame (on these clips no person is that large, so each such box is false): the
  detector's boxes, or a bottom-up model's own person boxes;
- FPS end to end at 640x360 (the one-by-one clip scaled down), the full
  multiprocess pipeline with one torch thread per model stage.

    python scripts/bench_default_choice.py --frames 300
    python scripts/bench_default_choice.py --only "light320 + lightning,multipose"   # those candidates only
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SHARED = REPO_ROOT.parent / "shared"
CLIPS = ("street-demo.mp4", "classroom.gif", "soccer-mpeg4.mp4", "face-demographics-walking.gif",
         "zidane.jpg", "bus.jpg")
#: (name, detector registry name, detector input size, pose registry name); bottom-up: no detector (None), and
#: the size is the bottom-up model's (the longer side of its input)
CANDIDATES = (
    ("light192 + lightning", "light_person_detector_192", 192, "movenet_lightning"),
    ("light256 + lightning (old default)", "light_person_detector_192", 256, "movenet_lightning"),
    ("light320 + lightning", "light_person_detector_192", 320, "movenet_lightning"),
    ("light256 + thunder", "light_person_detector_192", 256, "movenet_thunder"),
    ("light320 + thunder", "light_person_detector_192", 320, "movenet_thunder"),
    ("nano416 + lightning", "yolox_nano_416", 416, "movenet_lightning"),
    ("nano416 + thunder", "yolox_nano_416", 416, "movenet_thunder"),
    ("multipose 256 (bottom-up)", None, 256, "movenet_multipose_lightning"),
    ("multipose 320 (bottom-up)", None, 320, "movenet_multipose_lightning"),
)


def pipeline_file(folder: Path, name: str, det: str | None, size: int | None, pose: str) -> Path:
    """A pipeline definition like pipelines/default.toml with the candidate's models (like
    pipelines/multipose.toml for a bottom-up model: no detector)."""
    from streampose.models import registry

    path = folder / f"{name.split()[0].replace('+', '')}_{size}_{pose}.toml"
    entry = registry.get(pose)
    if det is None:
        stages = [("pose", f'type = "{entry.family_info.step_type}", weights = "{entry.weights}", '
                           f"input_size = {size}, threads = 1")]
    else:
        stages = [("detect", f'type = "yolox_detector", weights = "{registry.get(det).weights}", img_size = {size}, '
                             "threads = 1"),
                  ("pose", f'type = "movenet_pose", weights = "{entry.weights}", threads = 1')]
    text = f'description = "{name}"\n' + "".join(
        f'[[stages]]\nname = "{stage}"\nbatch_size = 4\nsteps = [ {{ {step} }} ]\n' for stage, step in stages)
    path.write_text(text + '[[stages]]\nname = "render"\n'
                    'steps = [ { type = "iou_tracker" }, { type = "one_euro_filter" }, { type = "draw" } ]\n')
    return path


def coco_ap(pipeline: Path, bottom_up: bool = False) -> float:
    """AP with the pipeline's own detector boxes (bottom-up: whole images, the model finds the people)."""
    from streampose.evaluation.cli import main as evaluate

    out = io.StringIO()
    boxes = [] if bottom_up else ["--boxes", "detector", "--no-flip"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = evaluate(["--images", str(SHARED / "coco"), "--annotations", str(SHARED / "coco" / "test_coco.json"),
                         "--pipeline", str(pipeline), *boxes, "--no-progress"])
    if code:
        raise RuntimeError(f"evaluation of {pipeline} failed")
    line = next(ln for ln in out.getvalue().splitlines() if ln.startswith("AP @[OKS=0.50:0.95 | all]"))
    return float(line.split()[-1])


def people_and_false_boxes(pipeline: Path) -> tuple[dict[str, float], float]:
    import streampose

    people, big, frames = {}, 0, 0
    with streampose.Pipeline(str(pipeline), smooth=False) as pipe:
        for clip in CLIPS:
            counts = []
            for result in pipe.predict(str(SHARED / "media" / clip), max_frames=60):
                h, w = result.image.shape[:2]
                counts.append(len(result.poses))
                # a bottom-up pipeline has no detections: its people's own boxes
                dets = result.detections if result.detections is not None else result.poses
                if dets is not None and len(dets):
                    area = (dets.xyxy[:, 2] - dets.xyxy[:, 0]) * (dets.xyxy[:, 3] - dets.xyxy[:, 1])
                    big += bool((area > 0.3 * w * h).any())
                frames += 1
            people[clip] = sum(counts) / len(counts)
    return people, big / frames


def small_clip(folder: Path, frames: int) -> Path:
    """The first ``frames`` of the one-by-one clip at 640x360 (H.264), for the FPS runs."""
    import av
    import cv2

    out = folder / "one-by-one-640x360.mp4"
    with av.open(str(SHARED / "media" / "one-by-one-person-detection.mp4")) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for k, frame in enumerate(src.decode(video=0)):
            if k >= frames:
                break
            image = cv2.resize(frame.to_ndarray(format="bgr24"), (640, 360), interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


def fps(pipeline: Path, source: Path) -> float:
    from streampose.config import load_pipeline
    from streampose.runtime import run_pipeline

    result = run_pipeline(load_pipeline(str(pipeline)), [str(source)], [], progress=False)
    return result.stats.fps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames of the FPS clip (default %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON lines")
    parser.add_argument("--only", default="", help="run only the candidates whose name contains one of these "
                        "comma-separated texts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = small_clip(folder, args.frames)
        for name, det, size, pose in CANDIDATES:
            if not any(text in name for text in args.only.split(",")):
                continue
            pipeline = pipeline_file(folder, name, det, size, pose)
            people, false_rate = people_and_false_boxes(pipeline)
            row = {"candidate": name, "coco_ap_detector_boxes": coco_ap(pipeline, bottom_up=det is None),
                   "people": people,
                   "false_big_box_rate": false_rate, "fps_640x360": fps(pipeline, clip)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print("| candidate | COCO AP (own boxes) | people/frame: " + " / ".join(CLIPS) + " | frames with a >30% box "
          "| FPS 640x360 |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        people = " / ".join(f"{r['people'][c]:.1f}" for c in CLIPS)
        print(f"| {r['candidate']} | {r['coco_ap_detector_boxes']:.3f} | {people} | {100 * r['false_big_box_rate']:.0f}% "
              f"| {r['fps_640x360']:.1f} |")
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
