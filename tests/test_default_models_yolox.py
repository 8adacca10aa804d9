"""Our YOLOX nets against the original ONNX files run by onnxruntime, and the converter."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from streampose.errors import CheckpointError, UserError
from streampose.models.yolox.network import VARIANTS, build_yolox
from streampose.models.yolox.detector import BUNDLED_DETECTORS, YoloxDetector

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
COCO_IMAGES = ("000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg")
# (original ONNX file, bundled state dict)
MODELS = [("light_person_detector_192.onnx", "light_person_detector_192.pth"),
          ("yolox_nano_416x416.onnx", "yolox_nano_416.pth")]


def _reference_boxes(session, image: np.ndarray, size: int, score_thr: float, nms_thr: float) -> np.ndarray:
    """onnxruntime forward + an independent numpy decode (grid/exp, greedy NMS) of the same recipe."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[:int(h * r), :int(w * r)] = cv2.resize(image, (int(w * r), int(h * r)), interpolation=cv2.INTER_LINEAR)
    out = session.run(None, {"images": canvas.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
    rows = []
    for stride in (8, 16, 32):
        n = size // stride
        gy, gx = np.mgrid[0:n, 0:n]
        rows.append(np.stack([gx.ravel(), gy.ravel(), np.full(n * n, stride)], 1))
    grid = np.concatenate(rows).astype(np.float32)
    cx, cy = (out[:, 0] + grid[:, 0]) * grid[:, 2], (out[:, 1] + grid[:, 1]) * grid[:, 2]
    bw, bh = np.exp(out[:, 2]) * grid[:, 2], np.exp(out[:, 3]) * grid[:, 2]
    score = out[:, 4] * out[:, 5:].max(1)
    keep = (score > score_thr) & (out[:, 5:].argmax(1) == 0)
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)[keep] / r
    score = score[keep]
    chosen = []
    for i in np.argsort(-score):
        if all(_iou(boxes[i], boxes[j]) <= nms_thr for j in chosen):
            chosen.append(i)
    out_boxes = boxes[chosen]
    out_boxes[:, [0, 2]] = out_boxes[:, [0, 2]].clip(0, w)
    out_boxes[:, [1, 3]] = out_boxes[:, [1, 3]].clip(0, h)
    return out_boxes


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("onnx_file,pth_file", MODELS)
def test_boxes_match_onnxruntime(shared_dir, onnx_file, pth_file):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(shared_dir / "weights" / onnx_file), providers=["CPUExecutionProvider"])
    meta = BUNDLED_DETECTORS[pth_file]
    detector = YoloxDetector.from_weights(REPO / "weights" / pth_file, device="cpu")
    images = [cv2.imread(str(shared_dir / "coco" / name)) for name in COCO_IMAGES]
    ious, total = [], 0
    for image, ours in zip(images, detector.detect(images)):
        ref = _reference_boxes(session, image, meta.img_size, meta.score_threshold, meta.nms_threshold)
        assert len(ours) == len(ref)
        total += len(ref)
        for box in ref:
            ious.append(max(_iou(box, mine) for mine in ours.xyxy))
    assert total >= 10  # the four images hold 14 people; both models find most of them
    assert min(ious) >= 0.95, ious


@pytest.mark.parametrize("onnx_file,pth_file", MODELS)
def test_raw_outputs_match_onnxruntime(shared_dir, onnx_file, pth_file):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(shared_dir / "weights" / onnx_file), providers=["CPUExecutionProvider"])
    size = BUNDLED_DETECTORS[pth_file].img_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (1, 3, size, size)).astype(np.float32)
    net = build_yolox(BUNDLED_DETECTORS[pth_file].variant).eval()
    net.load_state_dict(torch.load(REPO / "weights" / pth_file, weights_only=True))
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    ref = session.run(None, {"images": x})[0]
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_converter_reproduces_committed_state_dicts(shared_dir, tmp_path):
    pytest.importorskip("onnx")
    spec = importlib.util.spec_from_file_location("convert_yolox", REPO / "scripts" / "convert_yolox.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["convert_yolox"] = module
    spec.loader.exec_module(module)
    assert module.main(["--source-dir", str(shared_dir / "weights"), "--output-dir", str(tmp_path)]) == 0
    for _src, _variant, out in module.BUNDLED:
        fresh = torch.load(tmp_path / out, weights_only=True)
        committed = torch.load(REPO / "weights" / out, weights_only=True)
        assert fresh.keys() == committed.keys()
        for key in fresh:
            assert torch.equal(fresh[key], committed[key]), key


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_builds_and_runs(variant):
    net = build_yolox(variant).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 64, 96))
    # (8*12 + 4*6 + 2*3) anchor points for a 64x96 input
    assert out.shape == (2, 96 + 24 + 6, 5 + VARIANTS[variant].num_classes)


def test_empty_image_gives_empty_detections():
    detector = YoloxDetector.from_weights(REPO / "weights" / "light_person_detector_192.pth")
    dets = detector.predict(np.full((120, 200, 3), 114, np.uint8))
    assert len(dets) == 0 and dets.xyxy.shape == (0, 4)


def test_bad_weights_are_named(tmp_path):
    with pytest.raises(UserError, match="not found"):
        YoloxDetector.from_weights(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(3)}, bad)
    with pytest.raises(CheckpointError, match="fit no YOLOX variant"):
        YoloxDetector.from_weights(bad, img_size=192)
