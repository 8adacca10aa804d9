"""CrowdPose HigherHRNet (w32-640, w48-640, 14 keypoints): layout, loading recipe weights, inference.

There is no manifest of the CrowdPose releases in ../shared; their layout is
derived from the official model definition (``lib/models/pose_higher_hrnet.py``)
and configs (``experiments/crowd_pose/higher_hrnet/w{32,48}_640_adam_lr1e-3.yaml``:
the COCO networks with ``NUM_JOINTS: 14``, fp16 training), see
``tests/hrnet_recipe.py``. Recipe weights (the goldens' recipe) are written
in that layout as the fp16 release is, and loaded through our loader.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hrnet_recipe import (crowdpose_head_shapes, crowdpose_layout, fp16_release, one_torch_thread,  # noqa: F401
                          recipe_crowdpose_checkpoint)
from scripts.make_recipe_weights import load_layout, recipe_state_dict
from streampose.keypoint_sets import CROWDPOSE_14
from streampose.models import HRNET_MODELS, build_model, load_pose_model
from streampose.models.hrnet.checkpoints import read_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("width", [32, 48])
def test_registered_crowdpose_models_have_the_official_layout(shared_dir, width):
    name = f"pose_higher_hrnet_w{width}_640_crowdpose"
    ours = [(k.split(".", 1)[1], tuple(v.shape)) for k, v in build_model(name).state_dict().items()]
    assert ours == crowdpose_layout(width)
    # Only the head's five 14-joint shapes differ from the COCO release of the same network.
    coco = dict(load_layout(shared_dir / "checkpoint_formats" / f"official_pose_higher_hrnet_w{width}_640.json"))
    differing = {k: s for k, s in ours if coco[k] != s}
    assert differing == crowdpose_head_shapes(width)
    assert differing["deconv_layers.0.0.0.weight"] == (width + 28, width, 4, 4)
    assert HRNET_MODELS[name].num_joints == 14 and HRNET_MODELS[name].input_size_wh == (640, 640)


@pytest.mark.parametrize("width", [32, 48])
def test_recipe_weights_in_the_crowdpose_release_layout_load(width):
    path = recipe_crowdpose_checkpoint(width)
    contents = read_state_dict(path)
    assert "1." in contents.wrappers and contents.has_fp16
    model, spec = load_pose_model(path)
    assert (spec.name, spec.family, spec.num_joints, spec.head.tag_dim) == (
        f"pose_higher_hrnet_w{width}_640_crowdpose", "official_higher_hrnet", 14, 14)
    # Every recipe value landed in its place, widened exactly from the file's float16.
    written = {k[2:]: v for k, v in fp16_release({k: torch.from_numpy(np.array(v)) for k, v in
                                                   recipe_state_dict(crowdpose_layout(width)).items()}).items()}
    ours = model.state_dict()
    assert len(ours) == len(written)
    for key, value in written.items():
        our_key = f"head.{key}" if key.startswith(("final_layers.", "deconv_layers.")) else f"backbone.{key}"
        assert np.array_equal(ours[our_key].numpy(), value.numpy().astype(ours[our_key].numpy().dtype)), key
    with torch.inference_mode():
        quarter, half = model(torch.randn(1, 3, 64, 64))
    assert quarter.shape == (1, 28, 16, 16) and half.shape == (1, 14, 32, 32)
    assert torch.isfinite(quarter).all() and torch.isfinite(half).all()


def test_crowdpose_estimator_returns_14_keypoints(shared_dir):
    from streampose.models.higherhrnet import HigherHRNetEstimator

    # Flip test on: the 14-channel maps are flipped back with the CrowdPose flip index.
    estimator = HigherHRNetEstimator.from_checkpoint(recipe_crowdpose_checkpoint(32), device="cpu", input_size=128)
    assert estimator.keypoint_set is CROWDPOSE_14
    assert estimator.params.joint_order == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13)
    image = cv2.imread(str(shared_dir / "media" / "bus.jpg"))
    poses = estimator.predict(image)
    assert len(poses) > 0 and poses.keypoints.shape[1:] == (14, 2)
    assert poses.keypoint_set is CROWDPOSE_14
    assert (poses.keypoint_scores > 0).any() and np.isfinite(poses.keypoints).all()
    assert poses.scores.shape == (len(poses),) and len(poses) <= 14 * estimator.params.max_num_people


@pytest.mark.slow
def test_run_stream_crowdpose_end_to_end(shared_dir, tmp_path):
    """run_stream.py with the CrowdPose pipeline: 14-keypoint JSON lines, CSV and a drawn video."""
    import subprocess
    import sys
    from pathlib import Path

    import av

    from streampose.io import read_csv, read_jsonl
    from streampose.io.results import csv_columns

    repo = Path(__file__).resolve().parents[1]
    video = shared_dir / "media" / "street-demo.mp4"
    out = {ext: tmp_path / f"out.{ext}" for ext in ("jsonl", "csv", "mp4")}
    frames = 3
    command = [sys.executable, str(repo / "run_stream.py"), "--source", str(video),
               "--pipeline", "bottomup_higherhrnet_w32_640_crowdpose",
               "--pose-model", str(recipe_crowdpose_checkpoint(32)), "--device", "cpu",
               "--max-frames", str(frames), *(a for p in out.values() for a in ("--output", str(p))),
               "--no-progress", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=repo)
    assert done.returncode == 0, done.stderr

    jsonl = list(read_jsonl(out["jsonl"]))
    assert [f.index for f in jsonl] == list(range(frames))
    assert all(f.poses is not None and f.poses.keypoints.shape[1:] == (14, 2) for f in jsonl)
    people = sum(len(f.poses) for f in jsonl)
    assert people > 0

    lines = out["csv"].read_text().splitlines()
    assert lines[0].split(",") == list(csv_columns(CROWDPOSE_14)) and len(lines) - 1 == people
    from_csv = {f.index: f.poses for f in read_csv(out["csv"])}
    for f in jsonl:
        if len(f.poses):
            np.testing.assert_allclose(from_csv[f.index].keypoints, f.poses.keypoints, atol=1e-3)

    with av.open(str(out["mp4"])) as container:
        drawn = [fr.to_ndarray(format="bgr24") for fr in container.decode(video=0)]
    with av.open(str(video)) as container:
        source = [fr.to_ndarray(format="bgr24") for _, fr in zip(range(frames), container.decode(video=0))]
    assert len(drawn) == frames and drawn[0].shape == source[0].shape
    # Skeleton lines and keypoints were drawn: far more than codec noise differs from the source.
    changed = np.abs(drawn[0].astype(np.int16) - source[0].astype(np.int16)).max(axis=2) > 60
    assert changed.mean() > 0.002


def test_registry_lists_the_crowdpose_models_with_their_keypoint_set():
    from streampose.keypoint_sets import KEYPOINT_SETS
    from streampose.models import registry

    for width in (32, 48):
        entry = registry.get(f"pose_higher_hrnet_w{width}_640_crowdpose")
        assert (entry.role, entry.family, entry.keypoints) == ("bottomup", "higherhrnet", CROWDPOSE_14.name)
        assert entry.step_spec()["type"] == "higherhrnet_pose"
    # Every pose model names a keypoint set that exists, with the joint count its network has.
    for entry in registry.entries("pose"):
        assert entry.keypoints in KEYPOINT_SETS, entry.name
        if entry.name in HRNET_MODELS:
            assert HRNET_MODELS[entry.name].num_joints == KEYPOINT_SETS[entry.keypoints].num_keypoints
