"""Crowded-scene check: people found vs annotated, per image, for each pipeline that runs without downloads.

Images: the four ``../shared/coco`` images (COCO-17 ground truth) and a
2x2 mosaic of them at half size (every annotated person of the four, small:
a synthetic crowd whose keypoints are known exactly by the same scaling).
Pipelines: the bundled ``default`` (light YOLOX 256 → MoveNet Lightning),
``default`` with the bundled YOLOX-nano 416 detector, and ``detect_yolov5n``
with ``../shared/weights/yolov5n.pt`` (boxes only). Their detector and pose
steps run inline on each image, as in a pipeline.

Columns: ``annotated`` = ground-truth people with keypoints (``crowd`` the
iscrowd regions, ignored); ``found`` = people (poses, or boxes) the pipeline
returns; ``matched`` = found people matched one-to-one (greedy by score) to
an annotated person at OKS >= 0.5 (COCO sigmas, ground-truth area; boxes-only
pipelines: box IoU >= 0.5 against all non-crowd annotations). A number to
track, not a bar to pass.

    python scripts/crowded_scenes.py [--shared ../shared] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

MATCH_THRESHOLD = 0.5


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(REPO_ROOT.parent / "shared"), help="the shared data folder")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    return parser.parse_args(argv)


def scenes(shared: Path):
    """[(name, BGR image, (P, 17, 3) keypoints and (P,) areas of people with keypoints, (Q, 4) xyxy of all)]."""
    import cv2

    data = json.loads((shared / "coco" / "test_coco.json").read_text())
    out = []
    for image in sorted(data["images"], key=lambda i: i["id"]):
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"] and not a.get("iscrowd", 0)]
        with_keypoints = [a for a in anns if a["num_keypoints"] > 0]
        keypoints = np.array([a["keypoints"] for a in with_keypoints], np.float64).reshape(-1, 17, 3)
        areas = np.array([a["area"] for a in with_keypoints], np.float64)
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in anns], np.float64).reshape(-1, 4)
        out.append((str(image["id"]), cv2.imread(str(shared / "coco" / image["file_name"])), (keypoints, areas),
                    boxes))
    out.append(mosaic(out))
    return out


def mosaic(parts):
    """The four images at half size in a 2x2 grid, their people moved with them."""
    import cv2

    cell_w = max(img.shape[1] for _, img, _, _ in parts) // 2
    cell_h = max(img.shape[0] for _, img, _, _ in parts) // 2
    canvas = np.full((2 * cell_h, 2 * cell_w, 3), 114, np.uint8)
    keypoints, areas, boxes = [], [], []
    for i, (_, img, (kp, area), xyxy) in enumerate(parts[:4]):
        h, w = img.shape[0] // 2, img.shape[1] // 2
        x0, y0 = (i % 2) * cell_w, (i // 2) * cell_h
        canvas[y0:y0 + h, x0:x0 + w] = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        sx, sy = w / img.shape[1], h / img.shape[0]
        moved = kp.copy()
        moved[..., 0] = kp[..., 0] * sx + x0
        moved[..., 1] = kp[..., 1] * sy + y0
        keypoints.append(moved)
        areas.append(area * sx * sy)
        boxes.append(xyxy * [sx, sy, sx, sy] + [x0, y0, x0, y0])
    return "mosaic 2x2", canvas, (np.concatenate(keypoints), np.concatenate(areas)), np.concatenate(boxes)


def pipelines(shared: Path):
    """(label, pipeline name, overrides) of every pipeline that runs with what is here."""
    return [
        ("default (YOLOX light 256 + MoveNet Lightning)", "default", {}),
        ("default, YOLOX-nano 416 detector", "default",
         {"det_model": str(REPO_ROOT / "weights" / "yolox_nano_416.pth"), "img_size": 416}),
        ("detect_yolov5n (boxes only)", "detect_yolov5n", {"det_model": str(shared / "weights" / "yolov5n.pt")}),
    ]


def start_steps(name: str, overrides: dict):
    from streampose.config import apply_overrides, load_pipeline, step_class
    from streampose.step import build_step

    config = apply_overrides(load_pipeline(name), device="cpu", **overrides)
    steps = []
    for stage in config.stages:
        for spec in stage.steps:
            if step_class(spec).role in ("detector", "pose"):
                step = build_step(dict(spec))
                step.start()
                steps.append(step)
    return steps


def run_steps(steps, image: np.ndarray):
    from streampose.records import Frame, FramePacket

    packet = FramePacket(0, "crowd", 0, None, image.shape, 0.0)
    frames = [Frame(packet, image.copy())]
    for step in steps:
        frames = step.process(frames)
    return frames[0].packet


def greedy_matches(similarity: np.ndarray, scores: np.ndarray, threshold: float) -> int:
    """Found people (rows, best score first) matched one-to-one to annotated ones (columns) at >= threshold."""
    taken = np.zeros(similarity.shape[1], bool)
    matched = 0
    for row in np.argsort(-scores, kind="stable"):
        candidates = np.where(~taken, similarity[row], -1.0)
        if candidates.size and candidates.max() >= threshold:
            taken[int(candidates.argmax())] = True
            matched += 1
    return matched


def oks_to_ground_truth(poses, gt) -> np.ndarray:
    """(found, annotated) OKS as pycocotools computes it: labelled keypoints only, ground-truth area."""
    from streampose.keypoint_sets import COCO_17

    keypoints, areas = gt
    variances = (2 * COCO_17.sigmas) ** 2
    out = np.zeros((len(poses), len(keypoints)))
    for j, person in enumerate(keypoints):
        labelled = person[:, 2] > 0
        d2 = ((poses.keypoints[:, labelled].astype(np.float64) - person[labelled, :2]) ** 2).sum(axis=2)
        out[:, j] = np.exp(-d2 / variances[labelled] / (areas[j] + np.spacing(1)) / 2).mean(axis=1)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def main(argv=None) -> int:
    args = parse_args(argv)
    shared = Path(args.shared)
    images = scenes(shared)
    rows = []
    for label, name, overrides in pipelines(shared):
        steps = start_steps(name, overrides)
        try:
            for image_name, image, keypoints, boxes in images:
                packet = run_steps(steps, image)
                if packet.poses is not None:
                    found = len(packet.poses)
                    matched = greedy_matches(oks_to_ground_truth(packet.poses, keypoints), packet.poses.scores,
                                             MATCH_THRESHOLD)
                    annotated = len(keypoints[0])
                else:
                    det = packet.detections
                    found = len(det)
                    matched = greedy_matches(box_iou(det.xyxy.astype(np.float64), boxes), det.scores,
                                             MATCH_THRESHOLD)
                    annotated = len(boxes)
                rows.append((label, image_name, annotated, found, matched))
        finally:
            for step in steps:
                step.close()
    if args.markdown:
        print("| pipeline | image | annotated | found | matched |")
        print("|---|---|---:|---:|---:|")
        for row in rows:
            print("| " + " | ".join(str(v) for v in row) + " |")
    else:
        width = max(len(r[0]) for r in rows)
        print(f"{'pipeline':<{width}}  {'image':>12}  annotated  found  matched")
        for label, image_name, annotated, found, matched in rows:
            print(f"{label:<{width}}  {image_name:>12}  {annotated:>9}  {found:>5}  {matched:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
