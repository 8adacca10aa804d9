"""The one checkpoint recogniser, and the CLI shortcuts swapping steps to match the files it recognises."""

from __future__ import annotations

import pytest
import torch

from hrnet_recipe import recipe_checkpoint
from streampose.config import apply_overrides, load_pipeline
from streampose.errors import ConfigError, UserError
from streampose.models.recognise import recognise


def _save(path, keys):
    torch.save({k: torch.zeros(1) for k in keys}, path)
    return path


def test_bundled_and_shared_weights_are_recognised_with_their_registry_entries(shared_dir):
    light = recognise("weights/light_person_detector_192.pth")
    assert (light.family, light.role, light.entry.name) == ("yolox", "detector", "light_person_detector_192")
    assert recognise("weights/yolox_nano_416.pth").entry.name == "yolox_nano_416"
    movenet = recognise("weights/movenet_lightning.pth")
    assert (movenet.family, movenet.role, movenet.entry.name) == ("movenet", "topdown", "movenet_lightning")
    assert recognise("weights/movenet_thunder.pth").entry.name == "movenet_thunder"  # told apart by shapes
    yolov5 = recognise(shared_dir / "weights" / "yolov5n.pt")
    assert (yolov5.family, yolov5.role) == ("yolov5", "detector")
    assert yolov5.describe() == "a person detector checkpoint (YOLOv5)"


@pytest.mark.parametrize("model, family, role", [
    ("pose_hrnet_w32_256x192", "hrnet", "topdown"),
    ("pose_hrnet_w48_256x192", "hrnet", "topdown"),
    ("simdr_hrnet_w32_256x192", "hrnet", "topdown"),
    ("pose_higher_hrnet_w32_512", "higherhrnet", "bottomup"),
])
def test_hrnet_family_layouts_map_to_their_entries(model, family, role):
    found = recognise(recipe_checkpoint(model))
    assert (found.family, found.role, found.entry.name) == (family, role, model)


def test_unknown_unreadable_and_missing_files_are_not_recognised(tmp_path):
    assert recognise(_save(tmp_path / "c.pth", ["foo.weight"])) is None
    assert recognise(_save(tmp_path / "a.pth", ["backbone.conv1.weight", "final_layer.weight"])) is None  # no layout
    (tmp_path / "d.pth").write_bytes(b"not a checkpoint")
    assert recognise(tmp_path / "d.pth") is None
    assert recognise(tmp_path / "missing.pth") is None


def test_det_and_pose_model_swap_the_default_pipeline_steps(shared_dir):
    hrnet = str(recipe_checkpoint("pose_hrnet_w32_256x192"))
    config = apply_overrides(load_pipeline("default"), det_model=str(shared_dir / "weights" / "yolov5n.pt"),
                             pose_model=hrnet, img_size=320, device="cpu")
    specs = {spec["type"]: spec for stage in config.stages for spec in stage.steps}
    assert specs["yolov5_detector"]["weights"].endswith("yolov5n.pt")
    assert specs["yolov5_detector"]["img_size"] == 320
    assert specs["yolov5_detector"]["device"] == "cpu"
    assert specs["topdown_pose"]["weights"] == hrnet
    assert "yolox_detector" not in specs and "movenet_pose" not in specs


def test_weights_of_the_same_kind_keep_the_step_and_its_options():
    config = apply_overrides(load_pipeline("default"), det_model="weights/light_person_detector_192.pth")
    detector = next(s for stage in config.stages for s in stage.steps if s["type"] == "yolox_detector")
    assert detector["score_threshold"] == 0.3


def test_registry_names_are_accepted_by_det_model_and_pose_model():
    config = apply_overrides(load_pipeline("default"), det_model="yolox_nano_416", pose_model="movenet_lightning")
    specs = {spec["type"]: spec for stage in config.stages for spec in stage.steps}
    assert specs["yolox_detector"]["weights"] == "weights/yolox_nano_416.pth"
    assert specs["yolox_detector"]["img_size"] == 416


def test_a_file_of_the_wrong_role_says_which_flag_takes_it(shared_dir):
    with pytest.raises(ConfigError, match=r"--pose-model: .*yolov5n.pt is a person detector checkpoint \(YOLOv5\); "
                                          r"pass it with --det-model"):
        apply_overrides(load_pipeline("default"), pose_model=str(shared_dir / "weights" / "yolov5n.pt"))
    with pytest.raises(ConfigError, match=r"is a top-down pose checkpoint \(HRNet / SimDR\); pass it with --pose-model"):
        apply_overrides(load_pipeline("default"), det_model=str(recipe_checkpoint("pose_hrnet_w32_256x192")))


def test_a_missing_file_names_the_family_its_name_says_not_the_pipelines():
    with pytest.raises(UserError, match=r"HRNet / SimDR weights 'weights/pose_hrnet_w32_256x192.pth' not found") as e:
        apply_overrides(load_pipeline("default"), pose_model="weights/pose_hrnet_w32_256x192.pth")
    assert "MoveNet" not in str(e.value)
