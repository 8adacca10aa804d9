"""Recognising weights files, and the CLI shortcuts swapping steps to match them."""

from __future__ import annotations

import torch

from streampose.config import apply_overrides, load_pipeline
from streampose.weights_kind import weights_kind


def _save(path, keys):
    torch.save({k: torch.zeros(1) for k in keys}, path)
    return path


def test_bundled_and_shared_weights_are_recognised(shared_dir):
    assert weights_kind("weights/light_person_detector_192.pth") == "yolox"
    assert weights_kind("weights/movenet_lightning.pth") == "movenet"
    assert weights_kind(shared_dir / "weights" / "yolov5n.pt") == "yolov5"


def test_hrnet_layouts_and_unknown_files(tmp_path):
    assert weights_kind(_save(tmp_path / "a.pth", ["backbone.conv1.weight", "final_layer.weight"])) == "hrnet_topdown"
    assert weights_kind(_save(tmp_path / "b.pth", ["1.conv1.weight", "1.final_layers.1.weight"])) == "higherhrnet"
    assert weights_kind(_save(tmp_path / "c.pth", ["foo.weight"])) is None
    (tmp_path / "d.pth").write_bytes(b"not a checkpoint")
    assert weights_kind(tmp_path / "d.pth") is None
    assert weights_kind(tmp_path / "missing.pth") is None


def test_det_and_pose_model_swap_the_default_pipeline_steps(shared_dir, tmp_path):
    hrnet = _save(tmp_path / "pose_hrnet_w32_256x192.pth", ["conv1.weight", "final_layer.weight"])
    config = apply_overrides(load_pipeline("default"), det_model=str(shared_dir / "weights" / "yolov5n.pt"),
                             pose_model=str(hrnet), img_size=320, device="cpu")
    specs = {spec["type"]: spec for stage in config.stages for spec in stage.steps}
    assert specs["yolov5_detector"]["weights"].endswith("yolov5n.pt")
    assert specs["yolov5_detector"]["img_size"] == 320
    assert specs["yolov5_detector"]["device"] == "cpu"
    assert specs["topdown_pose"]["weights"] == str(hrnet)
    assert "yolox_detector" not in specs and "movenet_pose" not in specs


def test_weights_of_the_same_kind_keep_the_step_and_its_options():
    config = apply_overrides(load_pipeline("default"), det_model="weights/light_person_detector_192.pth")
    detector = next(s for stage in config.stages for s in stage.steps if s["type"] == "yolox_detector")
    assert detector["score_threshold"] == 0.3
