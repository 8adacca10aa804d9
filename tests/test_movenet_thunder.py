"""MoveNet Thunder converted from Google's TF.js graph: fidelity to the graph's own arithmetic.

No TF.js runtime is available, so the reference is a NumPy evaluation of the
graph's operators (``scripts/tfjs_graph.py``): the weights are read exactly
(every byte of the shard, float16 values kept), and our PyTorch network and
decoding match the graph layer by layer, and in the final keypoints, to 1e-4.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from scripts.convert_movenet_tfjs import _P
from scripts.tfjs_graph import evaluate, read_graph
from streampose.models.movenet.network import MoveNetSinglePose
from streampose.models.movenet.topdown import load_movenet_topdown
from tfjs_checks import BACKBONE_LAYERS, assert_bundled_state_dict_is_the_graphs, assert_weights_read_exactly

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def graph(shared_dir):
    return read_graph(shared_dir / "weights" / "movenet_tfjs" / "movenet-thunder.json")


@pytest.fixture(scope="module")
def network():
    return load_movenet_topdown("weights/movenet_thunder.pth").network.eval()


def test_weights_are_read_exactly(graph, shared_dir):
    assert_weights_read_exactly(graph, shared_dir / "weights" / "movenet_tfjs" / "movenet-thunder.bin", 149)


def test_bundled_state_dict_is_the_graphs_weights_exactly(graph):
    assert_bundled_state_dict_is_the_graphs(graph, "weights/movenet_thunder.pth", "thunder")


def _crops(shared_dir) -> np.ndarray:
    """Three 256x256 RGB int32 person crops from real images (as the graph's input)."""
    crops = []
    for name, (x0, y0, x1, y1) in (("zidane.jpg", (640, 40, 1180, 720)), ("zidane.jpg", (120, 180, 560, 720)),
                                   ("bus.jpg", (40, 220, 300, 900))):
        image = cv2.imread(str(shared_dir / "media" / name))[y0:y1, x0:x1, ::-1]
        crops.append(cv2.resize(np.ascontiguousarray(image), (256, 256), interpolation=cv2.INTER_LINEAR))
    return np.stack(crops).astype(np.int32)


LAYERS = {  # our intermediate → the graph node that computes it
    **BACKBONE_LAYERS,
    "center": _P + "Sigmoid_1",
    "heatmaps": _P + "Sigmoid",
    "offsets": _P + "kpt_offset_0/conv2d_7/BiasAdd",
    "regress": _P + "kpt_regress_0/conv2d_6/BiasAdd",
}


def _ours(network, crop: np.ndarray) -> dict[str, np.ndarray]:
    spec = network.spec
    x = (torch.from_numpy(crop).float().permute(0, 3, 1, 2) - spec.input_mean) / spec.input_std
    with torch.inference_mode():
        taps = network.backbone(x)
        fpn = network.fpn(taps)
        center, heatmaps, offsets, regress = network(x)
        keypoints = MoveNetSinglePose(network)(torch.from_numpy(crop).float().permute(0, 3, 1, 2))
    nhwc = {name: t.permute(0, 2, 3, 1).numpy() for name, t in
            zip(("tap_stride4", "tap_stride8", "tap_stride16", "tap_stride32", "fpn", "center", "heatmaps",
                 "offsets", "regress"), (*taps, fpn, center, heatmaps, offsets, regress))}
    return {**nhwc, "keypoints": keypoints.numpy()}


@pytest.mark.parametrize("index", range(3))
def test_forward_matches_the_graph_layer_by_layer(graph, network, shared_dir, index):
    crop = _crops(shared_dir)[index:index + 1]
    reference = evaluate(graph, {"input": crop}, fetch=[*LAYERS.values(), "Identity"])
    ours = _ours(network, crop)
    for name, node in LAYERS.items():
        ref = reference[node]
        scale = max(1.0, float(np.abs(ref).max()))
        assert ours[name].shape == ref.shape, name
        assert np.abs(ours[name] - ref).max() <= 1e-4 * scale, (name, np.abs(ours[name] - ref).max(), scale)
    keypoints = reference["Identity"][:, 0]  # (1, 17, 3) y, x, score in [0, 1]
    assert np.abs(ours["keypoints"] - keypoints).max() <= 1e-4
    assert keypoints[0, :, 2].max() > 0.3  # a real person: the comparison is not of empty maps


def test_thunder_finds_the_people_of_zidane(shared_dir):
    from streampose.topdown.estimator import TopDownEstimator

    image = cv2.imread(str(shared_dir / "media" / "zidane.jpg"))
    boxes = np.array([[747, 41, 1148, 712], [123, 197, 715, 711]], np.float32)
    poses = TopDownEstimator(load_movenet_topdown("weights/movenet_thunder.pth")).predict(image, boxes)
    assert poses.keypoints.shape == (2, 17, 2)
    # Face and shoulders are in view (the legs of both are cut off by the frame).
    assert (poses.keypoint_scores[:, :7].mean(axis=1) > 0.5).all()
    inside = ((poses.keypoints >= boxes[:, None, :2] - 20) & (poses.keypoints <= boxes[:, None, 2:] + 20)).all(axis=2)
    confident = poses.keypoint_scores > 0.3
    assert confident.sum() >= 14 and inside[confident].mean() >= 0.9
