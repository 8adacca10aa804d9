"""The model registry, timm-style: every entry builds (random / recipe weights of the official layout
where the real ones are absent) and runs a tiny forward pass; real weights where they are here;
wrong-role and missing-weights errors for every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrnet_recipe import recipe_checkpoint
from streampose.config import apply_overrides, load_pipeline
from streampose.errors import ConfigError, UserError
from streampose.keypoint_sets import keypoint_set
from streampose.models import registry
from streampose.models.protocols import BottomUpPoseModel, CropKeypoints, Detector, TopDownPoseModel
from streampose.records import Detections, Poses

ALL = list(registry.MODELS)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _tiny_forward(model, entry):
    """One small input through the model, checked against its role's contract."""
    if entry.role == "detector":
        assert isinstance(model, Detector)
        image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
        (dets,) = model.detect([image])
        assert isinstance(dets, Detections)
        assert dets.xyxy.shape[1:] == (4,) and dets.scores.shape == (len(dets),)
    elif entry.role == "topdown":
        assert isinstance(model, TopDownPoseModel)
        w, h = model.crop.input_size_wh
        assert (w, h) == entry.input_size_wh
        out = model.infer(torch.randn(2, 3, h, w))
        assert isinstance(out, CropKeypoints)
        assert out.coords.shape == (2, model.num_keypoints, 2) and out.scores.shape == (2, model.num_keypoints)
        assert model.num_keypoints == 17 and entry.keypoints == "coco17"
        assert np.isfinite(out.coords).all()
    elif entry.family != "higherhrnet":  # whole frames in, people in frame pixels out
        assert isinstance(model, BottomUpPoseModel)
        image = np.random.default_rng(0).integers(0, 255, (72, 100, 3), dtype=np.uint8)
        (poses,) = model.predict_batch([image])
        assert isinstance(poses, Poses) and poses.num_keypoints == keypoint_set(entry.keypoints).num_keypoints
        assert np.isfinite(poses.keypoints).all()
    else:
        assert isinstance(model, BottomUpPoseModel)
        k = keypoint_set(entry.keypoints).num_keypoints  # 17 (COCO) or 14 (CrowdPose)
        # The network alone: a whole frame through the official resize is seconds on a CPU, and
        # predict_batch is tested on real weights in test_higherhrnet_estimator.py.
        heatmaps = model.network(torch.randn(1, 3, 64, 64))
        assert heatmaps[0].shape[:2] == (1, 2 * k)  # k heatmaps + k tag maps at 1/4
        assert heatmaps[1].shape[:2] == (1, k)  # k heatmaps at 1/2


@pytest.mark.parametrize("name", ALL)
def test_every_entry_builds_with_random_weights_and_runs(name):
    entry = registry.get(name)
    with torch.inference_mode():
        _tiny_forward(registry.build_random(name), entry)


@pytest.mark.parametrize("name", [n for n in ALL if registry.get(n).present])
def test_entries_with_weights_here_build_from_them_and_run(name):
    entry = registry.get(name)
    with torch.inference_mode():
        _tiny_forward(registry.build(name), entry)


def test_every_entry_is_described_and_has_a_family():
    for entry in registry.MODELS.values():
        assert entry.family in registry.FAMILIES
        assert entry.role == entry.family_info.role
        assert entry.licence and entry.source and entry.weights.startswith("weights/")
        assert entry.bundled == entry.present or not entry.bundled  # a bundled file is always here
    assert {e.family for e in registry.MODELS.values()} == set(registry.FAMILIES)


def test_yolov5_recipe_is_the_layout_of_the_real_yolov5n(shared_dir):
    from streampose.models.yolov5.checkpoint import load_yolov5_checkpoint
    from streampose.models.yolov5.recipes import RECIPES

    checkpoint = load_yolov5_checkpoint(shared_dir / "weights" / "yolov5n.pt", source="yolov5n.pt")
    yaml, _ = RECIPES["yolov5n"]
    for key in ("nc", "depth_multiple", "width_multiple", "anchors", "backbone", "head"):
        assert checkpoint.yaml[key] == yaml[key], key
    real = registry.build("yolov5n", weights=shared_dir / "weights" / "yolov5n.pt", fuse=False)
    random = registry.build_random("yolov5n")
    assert {k: v.shape for k, v in real.network.state_dict().items()} == \
        {k: v.shape for k, v in random.network.state_dict().items()}


def _file_of(family: str, shared_dir) -> str:
    """A real (or recipe) checkpoint of each family."""
    return {"yolov5": str(shared_dir / "weights" / "yolov5n.pt"),
            "yolox": "weights/light_person_detector_192.pth",
            "hrnet": str(recipe_checkpoint("pose_hrnet_w32_256x192")),
            "higherhrnet": str(recipe_checkpoint("pose_higher_hrnet_w32_512")),
            "movenet": "weights/movenet_lightning.pth",
            "movenet_multipose": "weights/movenet_multipose_lightning.pth"}[family]


@pytest.mark.parametrize("family", list(registry.FAMILIES))
def test_a_checkpoint_given_to_the_wrong_flag_names_its_family_and_flag(family, shared_dir):
    info = registry.FAMILIES[family]
    right = registry.ROLE_FLAGS[info.role]
    wrong = {"--det-model": "pose_model", "--pose-model": "det_model"}[right]
    expected = f"is a {registry.ROLE_WORDS[info.role]} checkpoint ({info.title}); pass it with {right}"
    with pytest.raises(ConfigError) as e:
        apply_overrides(load_pipeline("default"), **{wrong: _file_of(family, shared_dir)})
    assert expected in str(e.value)


@pytest.mark.parametrize("family", list(registry.FAMILIES))
def test_missing_weights_name_the_family_and_how_to_get_them(family, tmp_path):
    info = registry.FAMILIES[family]
    entry = next(e for e in registry.MODELS.values() if e.family == family)
    with pytest.raises(UserError) as e:
        registry.build(entry.name, weights=tmp_path / "missing.pth")
    assert f"{info.title} weights" in str(e.value) and info.weights_help in str(e.value)
    # Through the CLI shortcut, a missing file named like the registry's says the same family.
    flag = "det_model" if info.role == "detector" else "pose_model"
    if not entry.present:
        with pytest.raises(UserError) as e:
            apply_overrides(load_pipeline("default"), **{flag: entry.weights})
        assert f"{info.title} weights" in str(e.value) and entry.source in str(e.value)
        with pytest.raises(UserError, match=f"{info.title} weights of {entry.name!r} not found"):
            apply_overrides(load_pipeline("default"), **{flag: entry.name})


def test_a_registry_name_of_the_wrong_role_names_the_flag():
    with pytest.raises(ConfigError, match=r"--pose-model: 'yolox_nano_416' is a person detector model \(YOLOX\); "
                                          r"pass it with --det-model"):
        apply_overrides(load_pipeline("default"), pose_model="yolox_nano_416")
