"""fp32 vs bf16 on the CPU: COCO keypoint AP on ../shared/coco and keypoint / box differences.

Trained weights only: the bundled light detector + MoveNet (the default pair)
and the real ``yolov5n.pt`` (its boxes given to MoveNet). Each model runs
through its pipeline step with ``precision = "fp32"`` and ``"bf16"`` (the
step's own autocast wrapper), so the figures are those of the runtime. Prints
one Markdown table (the one in BENCHMARKS.md "CPU precision") and, with
``--json``, writes the rows. Needs a CPU with AMX or AVX512-BF16.

    python scripts/bf16_accuracy.py [--shared ../shared] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

#: AP lost in bf16 up to which bf16 becomes the CPU default of a model (issue 17).
NEGLIGIBLE_AP_LOSS = 0.005

POSE = {"type": "movenet_pose"}
DETECTORS = {
    "light_person_detector (bundled)": {"type": "yolox_detector", "weights": "weights/light_person_detector_192.pth",
                                        "img_size": 256, "score_threshold": 0.3, "nms_threshold": 0.5},
    "yolov5n.pt": {"type": "yolov5_detector", "weights": "{shared}/weights/yolov5n.pt", "img_size": 640},
}


@dataclass
class AccuracyRow:
    """One model's fp32 vs bf16 figures.

    ap_fp32 / ap_bf16: COCO keypoint AP (MoveNet on ground-truth boxes for
    the pose model; MoveNet fp32 on the detector's boxes for a detector);
    keypoint_px_mean / _max: MoveNet keypoint distance bf16 vs fp32 on the
    same ground-truth boxes (pose model only); box_iou_min: the lowest IoU
    between matched fp32 and bf16 boxes, boxes_fp32 / boxes_bf16: boxes found
    (detectors only).
    """

    model: str
    ap_fp32: float
    ap_bf16: float
    keypoint_px_mean: float | None = None
    keypoint_px_max: float | None = None
    box_iou_min: float | None = None
    boxes_fp32: int | None = None
    boxes_bf16: int | None = None

    @property
    def ap_loss(self) -> float:
        return self.ap_fp32 - self.ap_bf16

    @property
    def negligible(self) -> bool:
        return self.ap_loss <= NEGLIGIBLE_AP_LOSS


def _started(spec: dict, precision: str, shared: Path):
    from streampose.step import build_step

    spec = {k: (v.format(shared=shared) if isinstance(v, str) else v) for k, v in spec.items()}
    step = build_step({**spec, "device": "cpu", "precision": precision})
    step.start()
    return step


def _evaluate(shared: Path, pose_step, detector_step=None):
    from streampose.evaluation.estimators import StepDetector, StepPoseEstimator
    from streampose.evaluation.runner import run_coco_evaluation

    return run_coco_evaluation(shared / "coco", shared / "coco" / "test_coco.json",
                               estimator=StepPoseEstimator(pose_step, "topdown"), estimator_kind="topdown",
                               boxes_from=StepDetector(detector_step) if detector_step is not None else "gt",
                               progress=False)


def _images_and_gt_boxes(shared: Path):
    import cv2

    data = json.loads((shared / "coco" / "test_coco.json").read_text())
    out = []
    for image in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"] and not a.get("iscrowd")]
        xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        out.append((cv2.imread(str(shared / "coco" / image["file_name"])), xyxy))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def pose_row(shared: Path) -> AccuracyRow:
    """MoveNet fp32 vs bf16 on ground-truth boxes."""
    from streampose.evaluation.estimators import StepPoseEstimator

    steps = {p: _started(POSE, p, shared) for p in ("fp32", "bf16")}
    ap = {p: _evaluate(shared, step).stats["AP"] for p, step in steps.items()}
    distances = []
    for image, xyxy in _images_and_gt_boxes(shared):
        poses = {p: StepPoseEstimator(step, "topdown").predict(image, xyxy) for p, step in steps.items()}
        distances.append(np.linalg.norm(poses["bf16"].keypoints - poses["fp32"].keypoints, axis=2).ravel())
    d = np.concatenate(distances)
    return AccuracyRow("movenet_pose (bundled MoveNet Lightning)", ap["fp32"], ap["bf16"],
                       keypoint_px_mean=float(d.mean()), keypoint_px_max=float(d.max()))


def detector_row(name: str, shared: Path) -> AccuracyRow:
    """A detector fp32 vs bf16: AP of MoveNet (fp32) on its boxes, and how its boxes moved."""
    from streampose.evaluation.estimators import StepDetector

    pose = _started(POSE, "fp32", shared)
    steps = {p: _started(DETECTORS[name], p, shared) for p in ("fp32", "bf16")}
    ap = {p: _evaluate(shared, pose, step).stats["AP"] for p, step in steps.items()}
    iou_min, counts = 1.0, {"fp32": 0, "bf16": 0}
    for image, _ in _images_and_gt_boxes(shared):
        boxes = {p: StepDetector(step).predict(image) for p, step in steps.items()}
        for p in counts:
            counts[p] += len(boxes[p].xyxy)
        if len(boxes["fp32"].xyxy) and len(boxes["bf16"].xyxy):
            iou_min = min(iou_min, float(_iou(boxes["fp32"].xyxy, boxes["bf16"].xyxy).max(axis=1).min()))
    return AccuracyRow(name, ap["fp32"], ap["bf16"], box_iou_min=iou_min, boxes_fp32=counts["fp32"],
                       boxes_bf16=counts["bf16"])


def accuracy_table(shared: Path) -> list[AccuracyRow]:
    """Every row: the pose model, then each detector."""
    return [pose_row(shared)] + [detector_row(name, shared) for name in DETECTORS]


def markdown(rows: list[AccuracyRow]) -> str:
    def f(value, fmt):
        return "-" if value is None else format(value, fmt)

    lines = ["| model | AP fp32 | AP bf16 | AP lost | keypoints moved px mean / max | boxes fp32 / bf16, "
             "lowest IoU | bf16 default on CPU |", "|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        boxes = "-" if r.boxes_fp32 is None else f"{r.boxes_fp32} / {r.boxes_bf16}, {r.box_iou_min:.3f}"
        lines.append(f"| {r.model} | {r.ap_fp32:.3f} | {r.ap_bf16:.3f} | {r.ap_loss:+.3f} | "
                     f"{f(r.keypoint_px_mean, '.2f')} / {f(r.keypoint_px_max, '.2f')} | {boxes} | "
                     f"{'yes' if r.negligible else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(REPO_ROOT.parent / "shared"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    import torch

    from streampose.device import cpu_bf16_support

    support = cpu_bf16_support()
    if support is None:
        print("error: this CPU has no native bf16 (AMX or AVX512-BF16); run on one that has", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    rows = accuracy_table(Path(args.shared))
    print(f"CPU bf16: {support}; COCO AP on {args.shared}/coco (4 images, 14 people), official protocol")
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) | {"ap_loss": r.ap_loss} for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
