"""HigherHRNetEstimator, the higherhrnet_pose step and the bottom-up pipelines.

The end-to-end test runs the real network (official HigherHRNet-W32-512 with
the golden recipe weights, loaded through our checkpoint loader) on bus.jpg
with flip test and compares the final image-space poses with the official
run. The other tests replace the network by a stub returning stored outputs.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hrnet_recipe import recipe_checkpoint
from streampose.models.higherhrnet import HigherHRNetEstimator
from streampose.errors import CheckpointError, ConfigError, UserError
from streampose.records import Frame, FramePacket

NET = 1e-4


@pytest.fixture(scope="module")
def golden(shared_dir):
    return np.load(shared_dir / "golden" / "higherhrnet_w32_512.npz")


@pytest.fixture(scope="module")
def bus(shared_dir):
    return cv2.imread(str(shared_dir / "media" / "bus.jpg"))


@pytest.fixture(scope="module")
def checkpoint():
    return recipe_checkpoint("pose_higher_hrnet_w32_512")


def assert_poses_equal_official(poses, final_preds: np.ndarray, scores: np.ndarray) -> None:
    assert len(poses) == len(final_preds)
    assert np.abs(poses.keypoints - final_preds[..., :2]).max() <= 1e-3
    assert np.abs(poses.keypoint_scores - final_preds[..., 2]).max() <= NET * np.abs(final_preds[..., 2]).max()
    assert np.abs(poses.scores - scores).max() <= NET * np.abs(scores).max()
    found = poses.keypoint_scores > 0
    assert (poses.xyxy[:, 0] <= np.where(found, poses.keypoints[..., 0], np.inf).min(1)).all()
    assert (poses.xyxy[:, 3] >= np.where(found, poses.keypoints[..., 1], -np.inf).max(1)).all()


def checksums(maps: np.ndarray) -> np.ndarray:
    flat = maps.reshape(maps.shape[0], -1).astype(np.float64)
    return np.stack([flat.sum(1), (flat**2).sum(1), flat.min(1), flat.max(1)], axis=1)


@pytest.mark.slow
def test_flip_test_on_bus_equals_the_official_pipeline(checkpoint, golden, bus):
    torch.manual_seed(0)
    estimator = HigherHRNetEstimator.from_checkpoint(checkpoint, flip_test=True, device="cpu")
    assert estimator.input_size == 512
    seen = {}
    maps_of = estimator.maps

    def recording_maps(images):
        seen["maps"] = maps_of(images)
        return seen["maps"]

    estimator.maps = recording_maps
    poses = estimator.predict(bus)
    maps = seen["maps"]
    assert maps.heatmaps.shape == (1, 17, 704, 512) and maps.tags.shape == (1, 17, 704, 512, 2)
    for ours, name in ((maps.heatmaps[0], "bus_flip_final_heatmaps_checksums"),
                       (np.concatenate([maps.tags[0, ..., 0], maps.tags[0, ..., 1]]), "bus_flip_tags_checksums")):
        ref, got = golden[name][:, :4], checksums(ours)
        tol = 1e-4 * np.abs(ref) + 1e-4 * np.abs(ref).max(axis=0)
        assert (np.abs(got - ref) <= tol).all(), name
    assert_poses_equal_official(poses, golden["bus_flip_final_preds"], golden["bus_flip_scores"])


class StoredOutputs(torch.nn.Module):
    """Stands in for the network: the stored raw outputs of bus.jpg, whatever the input."""

    def __init__(self, golden) -> None:
        super().__init__()
        self.outputs = [torch.from_numpy(golden["bus_raw0_full"]), torch.from_numpy(golden["bus_raw1_full"])]
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return [o.expand(x.shape[0], -1, -1, -1) for o in self.outputs]


def _frame(image: np.ndarray, index: int = 0) -> Frame:
    packet = FramePacket(source_id=0, source_name="test", index=index, pts_s=None, shape=image.shape,
                         capture_time=0.0)
    return Frame(packet, image)


def test_step_fills_poses_like_the_official_noflip_run(checkpoint, golden, bus):
    from streampose.step import build_step

    step = build_step({"type": "higherhrnet_pose", "weights": str(checkpoint), "flip_test": False, "device": "cpu"})
    assert step.role == "pose"
    step.start()
    try:
        step.estimator.network = StoredOutputs(golden)
        frames = step.process([_frame(bus, 0), _frame(bus, 1)])
        assert step.estimator.network.calls == [(2, 3, 704, 512)]  # one batch for two same-size frames
        for frame in frames:
            assert_poses_equal_official(frame.packet.poses, golden["bus_noflip_final_preds"],
                                        golden["bus_noflip_scores"])
    finally:
        step.close()


def test_batches_group_frames_by_size_and_keep_order(checkpoint, golden, bus):
    estimator = HigherHRNetEstimator.from_checkpoint(checkpoint, flip_test=False, device="cpu",
                                                     min_pose_score=0.5, refine=False)
    estimator.network = StoredOutputs(golden)
    small = np.ascontiguousarray(bus[:540, :405])  # same aspect ratio: same 512x704 input
    wide = np.zeros((300, 500, 3), np.uint8)
    results = estimator.predict_batch([bus, wide, small, bus])
    assert [len(c) for c in estimator.network.calls] == [4, 4, 4]
    assert sorted(c[0] for c in estimator.network.calls) == [1, 1, 2]
    assert len(results) == 4
    assert np.array_equal(results[0].keypoints, results[3].keypoints)
    assert (results[0].scores >= 0.5).all()
    # Half-size frame, same network input: half the coordinates (the integer centre shifts x by 0.5 px).
    assert np.allclose(results[2].keypoints, results[0].keypoints / 2 + np.array([0.5, 0.0]), atol=1e-3)


def test_scales_run_each_input_size_and_stack_tags(checkpoint, golden, bus):
    estimator = HigherHRNetEstimator.from_checkpoint(checkpoint, flip_test=True, device="cpu", scales=(0.5, 1.0))
    estimator.network = StoredOutputs(golden)
    maps = estimator.maps([bus])
    # Largest scale first; sizes from the official get_multi_scale_size with min_scale 0.5.
    assert estimator.network.calls == [(2, 3, 768, 512), (2, 3, 384, 256)]
    assert maps.size_wh == (512, 768) and maps.tags.shape == (1, 17, 768, 512, 4)
    assert maps.geometry.size_wh == (256, 384)
    assert len(estimator.poses_from_maps(maps.heatmaps[0], maps.tags[0], maps.geometry, maps.size_wh)) > 0


def test_redundant_pose_filter_drops_duplicates(checkpoint, golden, bus):
    estimator = HigherHRNetEstimator.from_checkpoint(checkpoint, flip_test=False, device="cpu",
                                                     filter_redundant_poses=True)
    estimator.network = StoredOutputs(golden)
    kept = estimator.predict(bus)
    final = golden["bus_noflip_final_preds"][..., :2].astype(np.float64)
    assert 0 < len(kept) < len(final)
    for i in range(1, len(kept)):
        mean_abs = np.abs(kept.keypoints[:i] - kept.keypoints[i]).mean(axis=(1, 2))
        assert mean_abs.min() >= 3.0


def test_topdown_checkpoint_is_refused():
    with pytest.raises(CheckpointError, match="topdown_pose"):
        HigherHRNetEstimator.from_checkpoint(recipe_checkpoint("pose_hrnet_w32_256x192"), device="cpu")


def test_missing_weights_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        HigherHRNetEstimator.from_checkpoint(tmp_path / "nope.pth", device="cpu")


def test_bad_image_is_rejected(checkpoint, golden):
    estimator = HigherHRNetEstimator.from_checkpoint(checkpoint, flip_test=False, device="cpu")
    with pytest.raises(ValueError, match="BGR uint8"):
        estimator.predict(np.zeros((64, 64), np.uint8))


@pytest.mark.parametrize(("option", "value"), [
    ("input_size", 500), ("scales", []), ("scales", [1.0, 1.0]), ("detection_threshold", 1.5),
    ("tag_threshold", 0.0), ("max_people", 0), ("min_pose_score", -0.1),
])
def test_step_options_are_checked(option, value):
    from streampose.step import build_step

    with pytest.raises(ConfigError, match=option):
        build_step({"type": "higherhrnet_pose", "weights": "w.pth", option: value})


@pytest.mark.parametrize("name", ["bottomup_higherhrnet_w32_512", "bottomup_higherhrnet_w32_640",
                                  "bottomup_higherhrnet_w48_640", "bottomup_higherhrnet_w32_640_crowdpose",
                                  "bottomup_higherhrnet_w48_640_crowdpose"])
def test_pipelines_use_the_bottomup_step(name, tmp_path):
    from streampose.config import apply_overrides, load_pipeline

    config = load_pipeline(name)
    pose = config.stages[0].steps[0]
    assert pose["type"] == "higherhrnet_pose" and pose["weights"].startswith("weights/pose_higher_hrnet_")
    assert name.split("_", 2)[2] in pose["weights"]
    assert [s["type"] for s in config.stages[-1].steps] == ["iou_tracker", "one_euro_filter", "draw"]
    other = tmp_path / "other.pth"
    other.write_bytes(b"not recognised: the step's loader reports it")
    overridden = apply_overrides(config, pose_model=str(other), device="cpu")
    assert overridden.stages[0].steps[0]["weights"] == str(other)
    assert overridden.stages[0].steps[0]["device"] == "cpu"
