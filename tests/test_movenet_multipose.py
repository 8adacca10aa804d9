"""MoveNet MultiPose Lightning converted from Google's TF.js graph: fidelity to the graph's own arithmetic,
and the bottom-up model, step and pipeline built on it.

No TF.js runtime is available, so the reference is a NumPy evaluation of the
graph's operators (``scripts/tfjs_graph.py``): the weights are read exactly
(every byte of the shard), our network matches the graph layer by layer to
1e-4 at square and non-square input sizes, and our NumPy decoding matches the
graph's in-graph decoding (centre NMS, top 6, boxes, keypoint weighting and
refinement, scores), on the real maps and on synthetic maps fed straight into
the decoding part of the graph.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from scripts.convert_movenet_tfjs import _P
from scripts.tfjs_graph import evaluate, read_graph
from streampose.config import apply_overrides, load_pipeline
from streampose.errors import CheckpointError, ConfigError
from streampose.models import registry
from streampose.models.movenet.multipose import MoveNetMultiPoseModel, load_movenet_multipose, placement_for
from streampose.models.movenet.multipose_decode import decode_multi_pose
from streampose.models.protocols import BottomUpPoseModel
from streampose.models.recognise import recognise
from tfjs_checks import BACKBONE_LAYERS, assert_bundled_state_dict_is_the_graphs, assert_weights_read_exactly

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WEIGHTS = "weights/movenet_multipose_lightning.pth"


@pytest.fixture(scope="module")
def graph(shared_dir):
    return read_graph(shared_dir / "weights" / "movenet_tfjs" / "movenet-multipose.json")


@pytest.fixture(scope="module")
def model():
    return load_movenet_multipose(WEIGHTS)


def test_weights_are_read_exactly(graph, shared_dir):
    assert_weights_read_exactly(graph, shared_dir / "weights" / "movenet_tfjs" / "movenet-multipose.bin", 179)


def test_bundled_state_dict_is_the_graphs_weights_exactly(graph):
    assert_bundled_state_dict_is_the_graphs(graph, WEIGHTS, "multipose")


HEAD_LOGITS = {  # our head → the graph node of its output convolution (before any sigmoid)
    "center": _P + "center_0/conv2d_4/BiasAdd",
    "keypoint_heatmap": _P + "kpt_heatmap_0/conv2d_7/BiasAdd",
    "keypoint_offset": _P + "kpt_offset_0/conv2d_9/BiasAdd",
    "keypoint_regress": _P + "kpt_regress_0/conv2d_8/BiasAdd",
    "box_scale": _P + "box_scale_0/conv2d_5/BiasAdd",
    "box_offset": _P + "box_offset_0/conv2d_6/BiasAdd",
}
LAYERS = {  # our intermediate → the graph node that computes it
    **BACKBONE_LAYERS,
    "center": _P + "Sigmoid",
    "keypoint_heatmap": _P + "Sigmoid_1",
    **{k: v for k, v in HEAD_LOGITS.items() if k not in ("center", "keypoint_heatmap")},
}
MAP_ORDER = ("center", "keypoint_heatmap", "keypoint_offset", "keypoint_regress", "box_scale", "box_offset")


def _input(shared_dir, name: str, hw: tuple[int, int]) -> np.ndarray:
    """A real image resized to ``hw``, as the graph's (1, H, W, 3) int32 RGB input."""
    image = cv2.imread(str(shared_dir / "media" / name))[:, :, ::-1]
    return cv2.resize(np.ascontiguousarray(image), hw[::-1], interpolation=cv2.INTER_LINEAR).astype(np.int32)[None]


def _ours(network, x: np.ndarray) -> dict[str, np.ndarray]:
    spec = network.spec
    batch = (torch.from_numpy(x).float().permute(0, 3, 1, 2) - spec.input_mean) / spec.input_std
    with torch.inference_mode():
        taps = network.backbone(batch)
        fpn = network.fpn(taps)
        maps = network(batch)
    nhwc = {name: t.permute(0, 2, 3, 1).numpy() for name, t in
            zip(("tap_stride4", "tap_stride8", "tap_stride16", "tap_stride32", "fpn", *MAP_ORDER),
                (*taps, fpn, *maps))}
    return {**nhwc, "decoded": decode_multi_pose(*(m.numpy() for m in maps))}


@pytest.mark.parametrize("name, hw", [("zidane.jpg", (256, 256)), ("zidane.jpg", (160, 256)),
                                      ("bus.jpg", (256, 192))])
def test_forward_and_decoding_match_the_graph_layer_by_layer(graph, model, shared_dir, name, hw):
    """Square and non-square inputs (any multiple of 32): every layer, then the graph's [1, 6, 56] output."""
    x = _input(shared_dir, name, hw)
    reference = evaluate(graph, {"input": x}, fetch=[*LAYERS.values(), "Identity"])
    ours = _ours(model.network, x)
    for layer, node in LAYERS.items():
        ref = reference[node]
        scale = max(1.0, float(np.abs(ref).max()))
        assert ours[layer].shape == ref.shape, layer
        assert np.abs(ours[layer] - ref).max() <= 1e-4 * scale, (layer, np.abs(ours[layer] - ref).max(), scale)
    expected = reference["Identity"]
    assert expected.shape == ours["decoded"].shape == (1, 6, 56)
    assert np.abs(ours["decoded"] - expected).max() <= 1e-4
    assert expected[0, :, -1].max() > 0.3  # real people: the comparison is not of empty maps


def _graph_decoding(graph, logits: dict[str, np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The graph's decoding part alone, fed head logits (NHWC); returns its output and the maps it decoded."""
    values = evaluate(graph, {HEAD_LOGITS[k]: v for k, v in logits.items()},
                      fetch=["Identity", _P + "Sigmoid", _P + "Sigmoid_1"])
    maps = {**logits, "center": values[_P + "Sigmoid"], "keypoint_heatmap": values[_P + "Sigmoid_1"]}
    return values["Identity"], [maps[k].transpose(0, 3, 1, 2) for k in MAP_ORDER]


def _synthetic_logits(rng, h: int, w: int, peaks: int) -> dict[str, np.ndarray]:
    """Head logits with ``peaks`` clear centres (the rest flat and low: ties everywhere else)."""
    center = np.full((1, h, w, 1), -8.0, np.float32)
    for y, x in zip(rng.integers(2, h - 2, peaks), rng.integers(2, w - 2, peaks)):
        center[0, y, x, 0] = rng.uniform(0.5, 4.0)
    return {"center": center,
            "keypoint_heatmap": rng.normal(-1.0, 2.0, (1, h, w, 17)).astype(np.float32),
            "keypoint_offset": rng.normal(0.0, 0.5, (1, h, w, 34)).astype(np.float32),
            "keypoint_regress": rng.normal(0.0, 4.0, (1, h, w, 34)).astype(np.float32),
            "box_scale": rng.normal(6.0, 4.0, (1, h, w, 2)).astype(np.float32),  # some negative: clamped to 0
            "box_offset": rng.normal(0.0, 1.0, (1, h, w, 2)).astype(np.float32)}


@pytest.mark.parametrize("h, w, peaks", [(16, 16, 9), (8, 24, 2), (24, 8, 0)])
def test_decoding_matches_the_graphs_on_synthetic_maps(graph, h, w, peaks):
    """Fewer than 6 centres (the rest picked among equal zeros), boxes past the grid, empty boxes."""
    expected, maps = _graph_decoding(graph, _synthetic_logits(np.random.default_rng(h * w + peaks), h, w, peaks))
    ours = decode_multi_pose(*maps)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


def test_the_model_finds_the_two_people_of_zidane(model, shared_dir):
    image = cv2.imread(str(shared_dir / "media" / "zidane.jpg"))  # 1280x720: input 256x160 (144 padded)
    assert placement_for(image.shape[:2], 256).input_hw == (160, 256)
    poses = model.predict(image)
    assert len(poses) == 2 and (poses.scores > 0.3).all()
    # Ancelotti (right) and Zidane (left): boxes around them, faces confidently placed inside.
    order = np.argsort(-poses.xyxy[:, 0])
    right, left = poses.xyxy[order]
    assert 700 < right[0] < 800 and right[2] > 1050 and 100 < left[0] < 250 and left[2] > 700
    face = poses.keypoints[order, :5]
    assert (poses.keypoint_scores[order, :5].mean(axis=1) > 0.4).all()
    assert (face[0, :, 0] > 900).all() and (face[0, :, 0] < 1080).all()  # Ancelotti's face
    assert (face[1, :, 0] > 450).all() and (face[1, :, 0] < 700).all()  # Zidane's face
    inside = ((poses.keypoints >= poses.xyxy[:, None, :2] - 10) & (poses.keypoints <= poses.xyxy[:, None, 2:] + 10))
    assert inside.all(axis=2)[poses.keypoint_scores > 0.3].mean() >= 0.9


def test_batches_of_mixed_sizes_give_what_single_frames_give(model, shared_dir):
    zidane, bus = (cv2.imread(str(shared_dir / "media" / n)) for n in ("zidane.jpg", "bus.jpg"))
    batched = model.predict_batch([zidane, bus, zidane[:, ::-1].copy()])
    for image, poses in zip([zidane, bus, zidane[:, ::-1].copy()], batched):
        alone = model.predict(image)
        np.testing.assert_allclose(poses.keypoints, alone.keypoints, atol=1e-3)
        np.testing.assert_allclose(poses.scores, alone.scores, atol=1e-5)
    assert len(batched[1]) >= 2  # the bus: people standing in front of it


def test_forward_and_decode_split_reuses_the_pure_decoder(model, shared_dir):
    """What an ONNX backend would do: its own forward (here: our maps as NumPy), then ``decode``."""
    image = cv2.imread(str(shared_dir / "media" / "zidane.jpg"))
    batch, placements = model.prepare([image])
    maps = model.forward(batch)
    assert all(isinstance(m, np.ndarray) and m.dtype == np.float32 for m in maps)
    assert [m.shape[1] for m in maps] == [1, 17, 34, 34, 2, 2] and maps[0].shape[2:] == (40, 64)
    (poses,) = model.decode(maps, placements)
    np.testing.assert_array_equal(poses.keypoints, model.predict(image).keypoints)


def test_registry_entry_is_a_bundled_bottom_up_model_recognised_by_its_contents(tmp_path):
    entry = registry.get("movenet_multipose_lightning")
    assert (entry.role, entry.family, entry.bundled, entry.present) == ("bottomup", "movenet_multipose", True, True)
    assert isinstance(registry.build(entry.name), BottomUpPoseModel)
    found = recognise(WEIGHTS)
    assert (found.family, found.role, found.entry.name) == ("movenet_multipose", "bottomup", entry.name)
    assert found.describe() == "a bottom-up pose checkpoint (MoveNet MultiPose)"
    assert recognise("weights/movenet_lightning.pth").family == "movenet"  # single-pose files stay top-down


@pytest.mark.parametrize("given", [WEIGHTS, "movenet_multipose_lightning"])
def test_pose_model_picks_the_multipose_step_and_drops_nothing_else(given):
    config = apply_overrides(load_pipeline("default"), pose_model=given, device="cpu")
    specs = {spec["type"]: spec for stage in config.stages for spec in stage.steps}
    assert "movenet_pose" not in specs
    assert specs["movenet_multipose"]["weights"] == WEIGHTS and specs["movenet_multipose"]["device"] == "cpu"


def test_multipose_weights_given_to_det_model_or_a_top_down_loader_say_what_they_are():
    with pytest.raises(ConfigError, match=r"--det-model: .* is a bottom-up pose checkpoint \(MoveNet MultiPose\); "
                                          r"pass it with --pose-model"):
        apply_overrides(load_pipeline("default"), det_model=WEIGHTS)
    from streampose.models.movenet.topdown import load_movenet_topdown

    with pytest.raises(CheckpointError, match="MoveNet MultiPose .* movenet_multipose step"):
        load_movenet_topdown(WEIGHTS)


def test_the_multipose_pipeline_runs_on_a_clip(shared_dir):
    """pipelines/multipose.toml end to end, inline: people on every frame, tracked and smoothed."""
    import streampose

    with streampose.Pipeline("multipose") as pipe:
        results = list(pipe.predict(str(shared_dir / "media" / "street-demo.mp4"), max_frames=3))
    assert len(results) == 3
    assert all(2 <= len(r.poses) <= 6 for r in results)
    assert (results[-1].poses.track_ids >= 0).all()


@pytest.mark.parametrize("options, message", [({"input_size": 250}, "input_size: must be a positive multiple of 32"),
                                              ({"min_pose_score": 1.5}, "min_pose_score: must be between 0 and 1")])
def test_step_options_are_checked(options, message):
    from streampose.step import build_step

    with pytest.raises(ConfigError, match=message):
        build_step({"type": "movenet_multipose", **options})
    with pytest.raises(ValueError, match=message.split(":")[0]):
        MoveNetMultiPoseModel(load_movenet_multipose(WEIGHTS).network, **options)


def test_onnxruntime_backend_runs_the_export_and_our_decoder(shared_dir):
    """``backend = "onnxruntime"``: the exported network, then the same NumPy decoding as torch."""
    pytest.importorskip("onnxruntime")
    from streampose.records import Frame, FramePacket
    from streampose.step import build_step

    image = cv2.imread(str(shared_dir / "media" / "zidane.jpg"))
    people = {}
    for backend in ("torch", "onnxruntime"):
        step = build_step({"type": "movenet_multipose", "backend": backend, "device": "cpu", "threads": 1})
        step.start()
        frame = Frame(FramePacket(0, "zidane", 0, None, image.shape, 0.0), image)
        step.process([frame])
        step.close()
        people[backend] = frame.packet.poses
    assert len(people["onnxruntime"]) == len(people["torch"]) == 2
    np.testing.assert_allclose(people["onnxruntime"].keypoints, people["torch"].keypoints, atol=0.05)
    np.testing.assert_allclose(people["onnxruntime"].scores, people["torch"].scores, atol=1e-4)
