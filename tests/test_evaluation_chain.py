"""The whole top-down evaluation chain is exact: a stand-in network that "sees" the ground truth scores AP ~1.

The stand-in is a torch module plugged into the real ``HeatmapTopDownModel`` /
``TopDownEstimator`` exactly as HRNet is: it receives the normalised crop
batch (and, with flip test, the flipped batch) and returns (N, 17, 64, 48)
heatmaps. It is built per image with that image's annotations and the boxes
the estimator is asked about; it recognises which box (and whether flipped)
each crop in the batch is by correlating the batch with crops it warps itself
with the public crop functions, and renders a Gaussian (sigma 2, as the
training targets) at the heatmap-space position of each labelled keypoint of
the annotated person that box overlaps most, as a perfectly equivariant
network would (mirrored, left/right swapped, for a flipped crop).

Everything after the network is the real code: decoding (argmax + quarter
offset), flip-back with the one-pixel shift, mapping back to the image,
rescoring, OKS-NMS, results records and pycocotools.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from streampose.evaluation.coco_eval import load_ground_truth
from streampose.evaluation.runner import run_coco_evaluation
from streampose.records import COCO_FLIP_INDEX
from streampose.topdown.crops import HRNET_CROP, affine_points, crop_transforms, warp_crops, xyxy_to_center_scale
from streampose.topdown.estimator import TopDownEstimator
from streampose.models.hrnet.topdown import HeatmapTopDownModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIGMA = 2.0
HEATMAP_WH = (HRNET_CROP.input_size_wh[0] // 4, HRNET_CROP.input_size_wh[1] // 4)


def _signature(crops: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N, H*W/16): 4x4-pooled, per-channel standardised, channel-averaged, unit length.

    Invariant to any per-channel affine normalisation and to the channel
    order, so it compares uint8 BGR crops with the normalised RGB batch.
    """
    x = torch.nn.functional.avg_pool2d(crops.float(), 4).flatten(2)
    x = (x - x.mean(dim=2, keepdim=True)) / (x.std(dim=2, keepdim=True) + 1e-6)
    x = x.mean(dim=1)
    return x / (x.norm(dim=1, keepdim=True) + 1e-12)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def _render(points_xy: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """(K, 2) heatmap-space points → (K, H, W) float32 Gaussians; unlabelled keypoints stay zero."""
    w, h = HEATMAP_WH
    xs, ys = np.arange(w), np.arange(h)[:, None]
    maps = np.zeros((len(points_xy), h, w), np.float32)
    for k, ((x, y), on) in enumerate(zip(points_xy, labelled)):
        if on:
            maps[k] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * SIGMA**2))
    return maps


class GroundTruthHeatmapNet(torch.nn.Module):
    """Heatmaps a perfect network would give for the crops of ``xyxy`` in ``image``."""

    def __init__(self, image: np.ndarray, xyxy: np.ndarray, annotations: list[dict], offset_px: float = 0.0):
        super().__init__()
        self.spec = SimpleNamespace(num_joints=17)
        self._device_anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        centers, scales = xyxy_to_center_scale(xyxy, HRNET_CROP)
        crops = warp_crops(image, crop_transforms(centers, scales, HRNET_CROP.input_size_wh),
                           HRNET_CROP.input_size_wh)
        plain = torch.from_numpy(crops).permute(0, 3, 1, 2)
        # candidates: every box as is, then every box mirrored
        self.signatures = _signature(torch.cat([plain, plain.flip(3)]))
        to_heatmap = crop_transforms(centers, scales, HEATMAP_WH)
        people = [a for a in annotations if a["category_id"] == 1 and not a.get("iscrowd", 0)]
        gt_xyxy = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                            for a in people]).reshape(-1, 4)
        targets, mirrored = [], []
        empty = np.zeros((17, HEATMAP_WH[1], HEATMAP_WH[0]), np.float32)
        for i, box in enumerate(np.asarray(xyxy, np.float64)):
            ious = _iou(box, gt_xyxy) if len(people) else np.zeros(0)
            if len(ious) == 0 or ious.max() < 0.1:  # background: nothing to see
                targets.append(empty)
                mirrored.append(empty)
                continue
            keypoints = np.asarray(people[int(ious.argmax())]["keypoints"], np.float64).reshape(17, 3)
            labelled = keypoints[:, 2] > 0
            points = affine_points(keypoints[:, :2], to_heatmap[i]) + offset_px
            targets.append(_render(points, labelled))
            # The mirrored crop shows keypoint flip_index[k] where channel k peaks:
            # x_input -> (W_in - 1) - x_input, i.e. x_heatmap -> (W_in - 1) / 4 - x_heatmap.
            points[:, 0] = (HRNET_CROP.input_size_wh[0] - 1) / 4.0 - points[:, 0]
            order = list(COCO_FLIP_INDEX)
            mirrored.append(_render(points[order], labelled[order]))
        self.targets = torch.from_numpy(np.stack(targets + mirrored))
        self.best_similarity = 1.0

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        similarity = _signature(batch.cpu()) @ self.signatures.T
        best, which = similarity.max(dim=1)
        self.best_similarity = min(self.best_similarity, float(best.min()))
        return self.targets[which].to(batch.device)


class StandInEstimator:
    """A top-down estimator that builds the real TopDownEstimator around the stand-in net per image."""

    def __init__(self, images_dir, annotations_json, *, flip_test: bool, offset_px: float = 0.0):
        import cv2

        coco = load_ground_truth(annotations_json)
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # as the runner and the official loaders
        self.images = {i: cv2.imread(str(images_dir / coco.imgs[i]["file_name"]), flags) for i in coco.imgs}
        self.annotations = {i: coco.imgToAnns.get(i, []) for i in coco.imgs}
        self.flip_test = flip_test
        self.offset_px = offset_px
        self.worst_match = 1.0
        self.calls = 0

    def _image_id(self, image: np.ndarray) -> int:
        for image_id, known in self.images.items():
            if known.shape == image.shape and np.array_equal(known, image):
                return image_id
        raise AssertionError("the runner passed an image that is not one of the dataset's")

    def predict(self, image, xyxy, box_scores):
        image_id = self._image_id(image)
        net = GroundTruthHeatmapNet(image, xyxy, self.annotations[image_id], self.offset_px)
        model = HeatmapTopDownModel(net, HRNET_CROP, flip_test=self.flip_test)
        poses = TopDownEstimator(model, max_batch=16).predict(image, xyxy, box_scores)
        self.worst_match = min(self.worst_match, net.best_similarity)
        self.calls += 1
        return poses


@pytest.fixture(scope="module")
def coco_dir(shared_dir):
    return shared_dir / "coco"


@pytest.mark.parametrize("flip_test", [True, False])
def test_chain_with_ground_truth_boxes_is_exact(coco_dir, flip_test, tmp_path):
    annotations = coco_dir / "test_coco.json"
    estimator = StandInEstimator(coco_dir, annotations, flip_test=flip_test)
    out = tmp_path / "results.json"
    evaluation = run_coco_evaluation(coco_dir, annotations, estimator=estimator, boxes_from="gt",
                                     results_out=out, progress=False)
    print(f"stand-in chain, ground-truth boxes, flip_test={flip_test}: {evaluation.stats}")
    assert estimator.worst_match > 0.999  # every crop was recognised
    assert evaluation.num_images == 4 and evaluation.num_boxes == 12  # 14 people, 2 without keypoints
    assert len(evaluation.results) == 12
    assert evaluation.stats["AP"] >= 0.99
    assert evaluation.stats["AR"] >= 0.99
    # the file written is the same records, in the COCO results format
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(evaluation.results))
    assert {r["category_id"] for r in written} == {1} and all(len(r["keypoints"]) == 51 for r in written)
    # ground-truth boxes score 1, so each person scores the mean of its confident keypoints
    assert all(0.2 < r["score"] <= 1.0 for r in written)


def test_chain_is_sensitive_to_misplaced_keypoints(coco_dir):
    """The same chain with heatmaps 1.5 heatmap pixels off scores clearly lower: the AP test can fail."""
    annotations = coco_dir / "test_coco.json"
    estimator = StandInEstimator(coco_dir, annotations, flip_test=False, offset_px=1.5)
    evaluation = run_coco_evaluation(coco_dir, annotations, estimator=estimator, boxes_from="gt", progress=False)
    print(f"stand-in chain, keypoints 1.5 heatmap px off: AP {evaluation.stats['AP']:.3f}")
    assert evaluation.stats["AP"] < 0.9


def test_chain_with_detector_boxes(coco_dir):
    annotations = coco_dir / "test_coco.json"
    estimator = StandInEstimator(coco_dir, annotations, flip_test=True)
    evaluation = run_coco_evaluation(coco_dir, annotations, estimator=estimator,
                                     boxes_from=coco_dir / "test_coco_det_AP_H_56.json", progress=False)
    stats = evaluation.stats
    print(f"stand-in chain, test_coco_det_AP_H_56.json boxes: AP {stats['AP']:.4f} AP50 {stats['AP50']:.4f} "
          f"AP75 {stats['AP75']:.4f} AR {stats['AR']:.4f} ({evaluation.num_boxes} boxes, "
          f"{len(evaluation.results)} people after OKS-NMS)")
    assert estimator.worst_match > 0.999
    assert evaluation.num_boxes == 118
    # OKS-NMS removes the duplicate poses of boxes around the same person
    assert len(evaluation.results) < evaluation.num_boxes
    assert all(0.0 <= v <= 1.0 for v in stats.values() if v != -1)
    assert 0.5 < stats["AP"] <= 1.0
