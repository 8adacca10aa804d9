"""The Python API: streampose.predict / Pipeline / Result on real media with the bundled models."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import streampose
from streampose.errors import UserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe():
    with streampose.Pipeline() as pipeline:
        yield pipeline


def test_predict_yields_one_result_per_frame_with_records(shared_dir):
    results = list(streampose.predict(str(shared_dir / "media" / "street-demo.mp4")))
    assert [r.frame_index for r in results] == [0, 1, 2, 3, 4]
    assert all(len(r.poses) >= 3 for r in results)  # a street with about 11 people
    first = results[0]
    assert first.poses.keypoints.shape == (len(first.poses), 17, 2)
    assert first.detections is not None and len(first.detections) == len(first.poses)
    h, w = first.image.shape[:2]
    assert (w, h) == (960, 540)
    assert first.packet.source_name.endswith("street-demo.mp4")


def test_results_plot_dict_and_coco(pipe, shared_dir):
    image = cv2.imread(str(shared_dir / "media" / "zidane.jpg"))
    result = pipe(image)
    assert len(result.poses) >= 2
    annotated = result.plot()
    assert annotated.shape == image.shape and (annotated != image).any()
    assert (result.image == image).all()  # the frame is not drawn on
    record = result.to_dict()
    assert json.loads(json.dumps(record))["poses"] and record["frame"] == 0
    rows = result.to_coco(image_id=7)
    assert len(rows) == len(result.poses)
    assert rows[0]["image_id"] == 7 and rows[0]["category_id"] == 1 and len(rows[0]["keypoints"]) == 51


def test_coco_rows_load_into_pycocotools(pipe, shared_dir):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(shared_dir / "coco" / "test_coco.json"))
    rows = []
    for image_id in gt.getImgIds():
        info = gt.loadImgs(image_id)[0]
        rows += pipe(cv2.imread(str(shared_dir / "coco" / info["file_name"]))).to_coco(image_id)
    evaluation = COCOeval(gt, gt.loadRes(rows), "keypoints")
    evaluation.evaluate(), evaluation.accumulate(), evaluation.summarize()
    assert evaluation.stats[0] > 0.4  # the bundled default pair scores 0.6 here


def test_sources_of_every_form(pipe, shared_dir):
    image = cv2.imread(str(shared_dir / "media" / "bus.jpg"))
    by_array = pipe(image)
    by_path = next(pipe.predict(str(shared_dir / "media" / "bus.jpg")))
    assert np.allclose(by_array.poses.keypoints, by_path.poses.keypoints, atol=1e-3)
    mixed = list(pipe.predict([image, str(shared_dir / "media" / "zidane.jpg")]))
    assert len(mixed) == 2 and mixed[1].image.shape == (720, 1280, 3)
    assert len(list(pipe.predict(str(shared_dir / "media" / "soccer-mpeg4.mp4"), max_frames=2))) == 2


def test_models_by_registry_name_and_overrides(shared_dir):
    image = cv2.imread(str(shared_dir / "media" / "zidane.jpg"))
    with streampose.Pipeline(det_model="yolox_nano_416", pose_model="movenet_lightning", conf=0.5,
                             smooth=False) as pipe:
        detector = next(s for s in pipe.steps if s.role == "detector")
        assert detector.options.weights == "weights/yolox_nano_416.pth" and detector.options.score_threshold == 0.5
        assert "one_euro_filter" not in [s.type_name for s in pipe.steps]
        assert len(pipe(image).poses) >= 2


def test_bad_inputs_are_one_line_user_errors(pipe):
    with pytest.raises(UserError, match=r"expected a BGR uint8 \(H, W, 3\) numpy image, got float32"):
        pipe(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(UserError, match="expected a path, URL, webcam index, numpy image or list"):
        next(pipe.predict(3.5))
    with pytest.raises(UserError, match="unknown option"):
        streampose.Pipeline(confidence=0.3)
    with pytest.raises(UserError, match="not found"):
        next(pipe.predict("no-such-video.mp4"))
