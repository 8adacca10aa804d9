"""TopDownEstimator: batching over frames and chunks, empty inputs, errors, and a plug-in model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrnet_recipe import one_torch_thread  # noqa: F401
from streampose.records import Poses
from streampose.topdown.crops import CropSpec
from streampose.topdown.estimator import TopDownEstimator, default_max_batch, person_scores
from streampose.models.hrnet.topdown import CropKeypoints, HeatmapTopDownModel, SimDRTopDownModel
from streampose.models.hrnet.network import HeatmapHeadSpec, HRNetSpec, PoseNetSpec, SimDRHeadSpec, build_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_BACKBONE = HRNetSpec(width=8, layer1_blocks=1, stage_modules=(1, 1, 1), blocks_per_branch=1)


def _tiny(head, input_wh=(96, 128)):
    torch.manual_seed(0)
    return build_network(PoseNetSpec("tiny", TINY_BACKBONE, head, input_wh))


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(3)]
    boxes = [np.array([[10, 20, 110, 200], [150, 30, 220, 230], [0, 0, 320, 240]], np.float32),
             np.zeros((0, 4), np.float32),
             np.array([[50, 50, 90, 180], [200, 100, 300, 239], [5, 5, 40, 40], [100, 10, 180, 120]], np.float32)]
    scores = [np.array([0.9, 0.5, 0.3]), np.zeros(0), np.array([1.0, 0.8, 0.7, 0.6])]
    return images, boxes, scores


@pytest.mark.parametrize("kind", ["heatmap", "heatmap_dark", "simdr"])
def test_batched_equals_per_frame_and_chunked(frames, kind):
    images, boxes, scores = frames
    crop = CropSpec(input_size_wh=(96, 128))
    if kind.startswith("heatmap"):
        model = HeatmapTopDownModel(_tiny(HeatmapHeadSpec()), crop, flip_test=True, use_dark=kind.endswith("dark"))
    else:
        model = SimDRTopDownModel(_tiny(SimDRHeadSpec(input_size_wh=(96, 128))), crop, flip_test=True)
    batched = TopDownEstimator(model, max_batch=64).predict_batch(images, boxes, scores)
    chunked = TopDownEstimator(model, max_batch=2).predict_batch(images, boxes, scores)
    single = [TopDownEstimator(model).predict(i, b, s) for i, b, s in zip(images, boxes, scores)]
    assert [len(p) for p in batched] == [3, 0, 4]
    for a, b, c, xyxy, box_scores in zip(batched, chunked, single, boxes, scores):
        assert isinstance(a, Poses) and a.keypoints.shape == (len(xyxy), 17, 2)
        for other in (b, c):
            np.testing.assert_allclose(other.keypoints, a.keypoints, atol=1e-3)
            np.testing.assert_allclose(other.keypoint_scores, a.keypoint_scores, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(a.xyxy, xyxy)
        np.testing.assert_allclose(a.scores, person_scores(a.keypoint_scores, box_scores), rtol=1e-6)
        if kind.endswith("dark"):
            continue  # DARK's Newton step is unbounded on the random maps of an untrained network (as official)
        # Keypoints land inside the padded crop of their box.
        for kp, (x1, y1, x2, y2) in zip(a.keypoints, xyxy):
            pad = 0.5 * max(x2 - x1, (y2 - y1) * 0.75) * 1.25 + 1
            assert (kp[:, 0] >= (x1 + x2) / 2 - pad).all() and (kp[:, 0] <= (x1 + x2) / 2 + pad).all()


def test_no_boxes_gives_empty_poses(frames):
    images, _, _ = frames
    estimator = TopDownEstimator(HeatmapTopDownModel(_tiny(HeatmapHeadSpec()), CropSpec((96, 128))))
    out = estimator.predict_batch(images, [np.zeros((0, 4))] * 3)
    assert [p.keypoints.shape for p in out] == [(0, 17, 2)] * 3
    assert len(estimator.predict(images[0], [])) == 0


def test_degenerate_box_still_gives_a_pose(frames):
    estimator = TopDownEstimator(HeatmapTopDownModel(_tiny(HeatmapHeadSpec()), CropSpec((96, 128)), flip_test=False))
    poses = estimator.predict(frames[0][0], np.array([[50, 50, 50, 50]]))
    assert len(poses) == 1 and np.isfinite(poses.keypoints).all()


def test_bad_inputs_are_named(frames):
    images, boxes, _ = frames
    estimator = TopDownEstimator(HeatmapTopDownModel(_tiny(HeatmapHeadSpec()), CropSpec((96, 128))))
    with pytest.raises(ValueError, match="BGR uint8"):
        estimator.predict(images[0].astype(np.float32), boxes[0])
    with pytest.raises(ValueError, match="shape \\(N, 4\\)"):
        estimator.predict(images[0], np.zeros((2, 5)))
    with pytest.raises(ValueError, match="box scores"):
        estimator.predict(images[0], boxes[0], np.ones(2))
    with pytest.raises(ValueError, match="max_batch"):
        TopDownEstimator(estimator.model, max_batch=0)
    assert estimator.max_batch == 8  # the CPU default (scripts/bench_crop_batch.py)
    with pytest.raises(ValueError, match="flip_test"):
        HeatmapTopDownModel(build_network(PoseNetSpec("k5", TINY_BACKBONE, HeatmapHeadSpec(num_joints=5), (96, 128))),
                            CropSpec((96, 128)), flip_test=True)


class BrightestPixelModel:
    """A stand-in for another model family: square crops, own normalisation, normalised (y, x) output.

    Like MoveNet it reports positions normalised to the crop; the "network"
    finds the brightest pixel of the crop for every keypoint.
    """

    def __init__(self):
        self.crop = CropSpec(input_size_wh=(64, 64), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        self.num_keypoints = 17
        self.device = torch.device("cpu")

    def infer(self, batch) -> CropKeypoints:
        n, _, h, w = batch.shape
        flat = batch.sum(1).reshape(n, -1).argmax(1).numpy()
        y_norm, x_norm = (flat // w + 0.5) / h, (flat % w + 0.5) / w  # pixel centres, normalised
        yx = np.repeat(np.stack([y_norm, x_norm], 1)[:, None], self.num_keypoints, axis=1)
        size = self.crop.input_size_wh
        # The decoder of such a model: normalised (y, x) → (x, y) in a space of the input size.
        coords = np.stack([yx[..., 1] * size[0] - 0.5, yx[..., 0] * size[1] - 0.5], -1).astype(np.float32)
        return CropKeypoints(coords, np.ones((n, self.num_keypoints), np.float32), size)


def test_another_model_family_plugs_in():
    image = np.zeros((200, 300, 3), np.uint8)
    dots = [(60, 80), (230, 40)]
    for x, y in dots:
        image[y, x] = 255
    boxes = np.array([[30, 30, 100, 150], [200, 10, 260, 90]], np.float32)
    poses = TopDownEstimator(BrightestPixelModel()).predict(image, boxes)
    for kp, box, (x, y) in zip(poses.keypoints, boxes, dots):
        px_per_crop_px = max(box[2] - box[0], box[3] - box[1]) * 1.25 / 64
        assert np.abs(kp - [x, y]).max() <= px_per_crop_px, (kp[0], (x, y))


def test_crops_per_forward_default_by_device():
    assert default_max_batch(torch.device("cpu")) == default_max_batch("cpu") == 8
    assert default_max_batch(torch.device("cuda", 1)) == default_max_batch("cuda") == 64
