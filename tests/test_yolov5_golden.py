"""YOLOv5n through our loader, network and post-processing against the official implementation.

Goldens: ../shared/golden/yolov5n_detect.{npz,json} (ultralytics/yolov5 detect.py
path, fp32 fused model, conf 0.25, IoU 0.45, max_det 300, all classes).
Tolerance classes from ../shared/golden/INDEX.md:
- exact: letterboxed uint8 input;
- yolo_raw: cx, cy, w, h to 1e-2 px, objectness / class probabilities to 1e-4;
- checksum: per-column sum and sum of squares to 1e-4 |ref| + 1e-4 max|column|, min / max as "net";
- yolo_det: same detections and classes in the same order, boxes to 1e-2 px, scores to 1e-4;
  detect.py's rounded boxes equal unless a coordinate is within 1e-2 of k + 0.5.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")

from streampose.models.yolov5.detector import YoloV5Detector  # noqa: E402
from streampose.models.yolov5.letterbox import boxes_to_frame  # noqa: E402
from streampose.models.yolov5.postprocess import non_max_suppression  # noqa: E402

BOX_TOL_PX = 1e-2
PROB_TOL = 1e-4
CASES = [(image, mode) for image in ("bus", "zidane") for mode in ("square", "rect")]


@pytest.fixture(scope="module")
def golden(shared_dir):
    arrays = np.load(shared_dir / "golden" / "yolov5n_detect.npz")
    meta = json.loads((shared_dir / "golden" / "yolov5n_detect.json").read_text())
    return {k: arrays[k] for k in arrays.files}, meta


@pytest.fixture(scope="module")
def detectors(shared_dir):
    weights = shared_dir / "weights" / "yolov5n.pt"
    # The official run: all classes, fp32, conv+BN fused, its default thresholds.
    return {mode: YoloV5Detector.from_checkpoint(weights, classes=None, letterbox=mode, device="cpu",
                                                 conf_threshold=0.25, iou_threshold=0.45, max_detections=300)
            for mode in ("square", "rect")}


@pytest.fixture(scope="module")
def outputs(shared_dir, detectors):
    """Our input, raw output and NMS output for every (image, mode)."""
    result = {}
    for image_name, mode in CASES:
        image = cv2.imread(str(shared_dir / "media" / f"{image_name}.jpg"))
        det = detectors[mode]
        x, canvas_hw = det.preprocess([image])
        raw = det.forward(x)
        nms = non_max_suppression(raw, 0.25, 0.45, 300)[0].numpy()
        final = det.postprocess(raw, canvas_hw, [image.shape[:2]])[0]
        result[(image_name, mode)] = dict(image=image, x=x, canvas_hw=canvas_hw, raw=raw[0].numpy(), nms=nms,
                                          final=final)
    return result


def _check_raw_rows(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, what
    box_err = np.abs(ours[:, :4] - ref[:, :4]).max()
    prob_err = np.abs(ours[:, 4:] - ref[:, 4:]).max()
    assert box_err <= BOX_TOL_PX, f"{what}: box columns differ by {box_err} px"
    assert prob_err <= PROB_TOL, f"{what}: probability columns differ by {prob_err}"


@pytest.mark.parametrize("image_name,mode", CASES)
def test_letterboxed_input_is_bitwise_official(golden, outputs, image_name, mode):
    arrays, meta = golden
    out = outputs[(image_name, mode)]
    ours = (out["x"][0] * 255).round().to(torch.uint8).numpy()
    square = arrays[f"{image_name}_square_input_u8"]
    if mode == "square":
        ref = square
    else:
        y, x = arrays[f"{image_name}_rect_crop_of_square_yx"]
        h, w = meta["images"][image_name]["rect"]["input_shape"][2:]
        ref = square[:, y:y + h, x:x + w]
    assert ours.shape == ref.shape
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("image_name,mode", CASES)
def test_raw_output_matches_official(golden, outputs, image_name, mode):
    arrays, _ = golden
    raw = outputs[(image_name, mode)]["raw"]
    p = f"{image_name}_{mode}_"
    assert raw.shape[0] == arrays[p + "raw_obj"].shape[0]
    obj_err = np.abs(raw[:, 4] - arrays[p + "raw_obj"]).max()
    assert obj_err <= PROB_TOL, f"objectness differs by {obj_err}"
    # The NMS candidates are the same rows.
    assert np.array_equal(np.flatnonzero(raw[:, 4] > 0.25), arrays[p + "raw_cand_idx"])
    _check_raw_rows(raw[arrays[p + "raw_cand_idx"]], arrays[p + "raw_cand"], "candidate rows")
    _check_raw_rows(raw[arrays[p + "raw_sample_idx"]], arrays[p + "raw_sample"], "sampled rows")


@pytest.mark.parametrize("image_name,mode", CASES)
def test_raw_column_checksums_match_official(golden, outputs, image_name, mode):
    arrays, _ = golden
    raw = outputs[(image_name, mode)]["raw"].astype(np.float64)
    ref = arrays[f"{image_name}_{mode}_raw_col_checksums"]
    ours = np.stack([raw.sum(0), (raw ** 2).sum(0), raw.min(0), raw.max(0)], 1)
    column_max = np.abs(ref[:, 2:4]).max(1)
    for col in (0, 1):  # sum, sum of squares
        tol = 1e-4 * np.abs(ref[:, col]) + 1e-4 * column_max
        assert np.all(np.abs(ours[:, col] - ref[:, col]) <= tol), f"checksum column {col}"
    for col in (2, 3):  # min, max: "net"
        assert np.abs(ours[:, col] - ref[:, col]).max() <= 1e-4 * np.abs(ref[:, col]).max()


def _check_detections(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, f"{what}: {ours.shape[0]} detections, official {ref.shape[0]}"
    assert np.array_equal(ours[:, 5], ref[:, 5]), f"{what}: classes/order {ours[:, 5]} vs {ref[:, 5]}"
    assert np.abs(ours[:, :4] - ref[:, :4]).max() <= BOX_TOL_PX, what
    assert np.abs(ours[:, 4] - ref[:, 4]).max() <= PROB_TOL, what


@pytest.mark.parametrize("image_name,mode", CASES)
def test_detections_match_official(golden, outputs, image_name, mode):
    arrays, _ = golden
    out = outputs[(image_name, mode)]
    p = f"{image_name}_{mode}_"
    _check_detections(out["nms"], arrays[p + "det_letterbox"], "NMS output in letterbox pixels")

    scaled = boxes_to_frame(out["nms"][:, :4], out["canvas_hw"], out["image"].shape[:2])
    _check_detections(np.hstack([scaled, out["nms"][:, 4:]]), arrays[p + "det_scaled"], "boxes in frame pixels")

    final = out["final"]  # the public API: same boxes, scores and classes
    _check_detections(np.hstack([final.xyxy, final.scores[:, None], final.class_ids[:, None]]),
                      arrays[p + "det_scaled"], "YoloV5Detector.detect")

    ref_rounded = arrays[p + "det_detectpy"][:, :4]
    near_half = np.abs(scaled - np.floor(scaled) - 0.5) < BOX_TOL_PX
    assert np.all((np.round(scaled) == ref_rounded) | near_half), "detect.py's rounded boxes"


def test_person_filter_keeps_only_people(shared_dir, detectors, outputs):
    out = outputs[("bus", "rect")]
    everything = out["final"]
    person_only = YoloV5Detector(detectors["rect"].network, detectors["rect"].names, classes=("person",))
    people = person_only.postprocess(torch.from_numpy(out["raw"][None]), out["canvas_hw"],
                                     [out["image"].shape[:2]])[0]
    assert set(everything.class_ids.tolist()) == {0, 5}  # persons and the bus
    assert people.class_ids.tolist() == [0] * 4
    np.testing.assert_allclose(people.xyxy, everything.xyxy[everything.class_ids == 0], atol=1e-3)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


@pytest.fixture(scope="module")
def coco(shared_dir):
    coco = json.loads((shared_dir / "coco" / "test_coco.json").read_text())
    images = [cv2.imread(str(shared_dir / "coco" / im["file_name"])) for im in coco["images"]]
    return coco, images


def test_every_annotated_coco_person_is_found(shared_dir, coco):
    coco, images = coco
    detector = YoloV5Detector.from_checkpoint(shared_dir / "weights" / "yolov5n.pt", device="cpu")
    results = detector.detect(images)  # four frames of different sizes in one batch
    matched = 0
    for info, found in zip(coco["images"], results):
        assert set(found.class_ids.tolist()) <= {0}
        anns = [a for a in coco["annotations"] if a["image_id"] == info["id"]]
        gt = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=np.float64)
        iou = _iou(gt, found.xyxy.astype(np.float64))
        # Greedy one-to-one matching: a detection can account for one person only.
        used: set[int] = set()
        for g in np.argsort(-iou.max(1)):
            candidates = [d for d in np.argsort(-iou[g]) if d not in used and iou[g, d] >= 0.6]
            assert candidates, f"{info['file_name']}: person {anns[g]['id']} best IoU {iou[g].max():.3f} < 0.6"
            used.add(candidates[0])
            matched += 1
    assert matched == 14


def test_coco_batch_matches_official_per_image_results(golden, coco, detectors):
    """Square letterbox puts every frame in the same 640x640 canvas, so a batch of the four
    COCO images must reproduce the official single-image detections listed in the json
    (boxes rounded by detect.py, scores to 5 decimals)."""
    _, meta = golden
    coco, images = coco
    results = detectors["square"].detect(images)
    for info, ours in zip(coco["images"], results):
        ref = meta["images"][f"{info['id']:06d}"]["square"]["detections"]
        assert len(ours) == len(ref), info["file_name"]
        ref_xyxy = np.array([d["xyxy_detectpy"] for d in ref])
        ref_conf = np.array([d["conf"] for d in ref])
        # Scores closer than the json's 5-decimal rounding may swap places: compare in a canonical order.
        order = np.lexsort((ours.xyxy[:, 0], -np.round(ours.scores, 5)))
        ref_order = np.lexsort((ref_xyxy[:, 0], -ref_conf))
        assert np.abs(ours.scores[order] - ref_conf[ref_order]).max() <= PROB_TOL + 5e-6
        assert ours.class_ids[order].tolist() == [ref[i]["cls"] for i in ref_order]
        assert np.abs(ours.xyxy[order] - ref_xyxy[ref_order]).max() <= 0.5 + BOX_TOL_PX


def test_half_is_cuda_only(detectors):
    # The one fp16 rule (streampose.device): an error on the CPU, as precision = "fp16" is, never a silent fp32.
    with pytest.raises(ValueError, match="half: fp16 needs a CUDA device"):
        YoloV5Detector(detectors["rect"].network, detectors["rect"].names, half=True, device="cpu")
    assert all(p.dtype == torch.float32 for p in detectors["rect"].network.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_on_cuda_finds_the_official_people(shared_dir, golden):
    arrays, _ = golden
    detector = YoloV5Detector.from_checkpoint(shared_dir / "weights" / "yolov5n.pt", classes=None, half=True,
                                              device="cuda")
    assert detector.half and next(detector.network.parameters()).dtype == torch.float16
    for image_name in ("bus", "zidane"):
        found = detector.detect([cv2.imread(str(shared_dir / "media" / f"{image_name}.jpg"))])[0]
        ref = arrays[f"{image_name}_rect_det_scaled"]
        assert len(found) == len(ref)
        iou = _iou(ref[:, :4].astype(np.float64), found.xyxy.astype(np.float64))
        best = iou.argmax(1)  # fp16 may reorder near-equal scores: match rows by overlap
        assert sorted(best.tolist()) == list(range(len(ref))) and iou.max(1).min() > 0.95
        assert found.class_ids[best].tolist() == ref[:, 5].astype(int).tolist()
        assert np.abs(found.scores[best] - ref[:, 4]).max() < 0.02
