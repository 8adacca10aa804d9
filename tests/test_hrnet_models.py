"""HRNet family networks: every registered variant builds and runs; layouts match upstream; recipe port."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hrnet_recipe import one_torch_thread  # noqa: F401
from scripts.make_recipe_weights import load_layout, recipe_rule, recipe_sha256, recipe_state_dict
from streampose.models import HRNET_MODELS, build_model
from streampose.models.hrnet.network import HigherHRNetHeadSpec, HRNetSpec, PoseNetSpec, SimDRHeadSpec, build_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# (registered name, official manifest in ../shared/checkpoint_formats)
OFFICIAL_LAYOUTS = [
    ("pose_hrnet_w32_256x192", "official_pose_hrnet_w32_256x192"),
    ("pose_hrnet_w48_256x192", "official_pose_hrnet_w48_256x192"),
    ("simdr_hrnet_w32_256x192", "official_simdr_hrnet_w32_256x192"),
    ("simdr_hrnet_w48_256x192", "official_simdr_hrnet_w48_256x192"),
    ("pose_higher_hrnet_w32_512", "official_pose_higher_hrnet_w32_512"),
    ("pose_higher_hrnet_w32_640", "official_pose_higher_hrnet_w32_640"),
    ("pose_higher_hrnet_w48_640", "official_pose_higher_hrnet_w48_640"),
]


@pytest.mark.parametrize("name", sorted(HRNET_MODELS))
def test_every_registered_model_builds_and_runs(name):
    model = build_model(name)
    spec = model.spec
    head = spec.head
    # SimDR's linear layers fix the input size; the convolutional heads run on a tiny input.
    h, w = (spec.input_size_wh[1], spec.input_size_wh[0]) if isinstance(head, SimDRHeadSpec) else (64, 32)
    with torch.inference_mode():
        out = model(torch.randn(2, 3, h, w))
    k = spec.num_joints
    if head.kind == "heatmap":
        assert out.shape == (2, k, h // 4, w // 4)
    elif head.kind == "simdr":
        assert out[0].shape == (2, k, int(w * head.split_ratio)) and out[1].shape == (2, k, int(h * head.split_ratio))
    else:
        assert out[0].shape == (2, k + head.tag_dim, h // 4, w // 4) and out[1].shape == (2, k, h // 2, w // 2)
    outs = out if isinstance(out, (list, tuple)) else [out]
    assert all(torch.isfinite(o).all() for o in outs)


def test_unknown_model_name_lists_registered():
    with pytest.raises(KeyError, match="pose_hrnet_w32_256x192"):
        build_model("pose_hrnet_w18")


def test_widths_are_data():
    spec = PoseNetSpec("tiny", HRNetSpec(width=8), HigherHRNetHeadSpec(), (64, 64))
    model = build_network(spec)
    assert model.state_dict()["head.final_layers.0.weight"].shape == (34, 8, 1, 1)
    assert model.state_dict()["backbone.stage4.2.fuse_layers.0.3.0.weight"].shape == (8, 64, 1, 1)


@pytest.mark.parametrize("name,manifest", OFFICIAL_LAYOUTS)
def test_layout_matches_official_manifest(shared_dir, name, manifest):
    """Our keys minus our ``backbone.``/``head.`` prefix are the official keys, same order, same shapes."""
    ours = [(k.split(".", 1)[1], tuple(v.shape)) for k, v in build_model(name).state_dict().items()]
    assert ours == load_layout(shared_dir / "checkpoint_formats" / f"{manifest}.json")


@pytest.mark.parametrize("model", ["pose_hrnet_w32_256x192", "pose_hrnet_w48_256x192", "simdr_hrnet_w32_256x192",
                                   "pose_higher_hrnet_w32_512"])
def test_recipe_port_matches_golden_key_by_key(shared_dir, model):
    recipe = json.loads((shared_dir / "golden" / f"recipe_{model}.json").read_text())
    layout = [(e["key"], tuple(e["shape"])) for e in recipe["entries"]]
    state_dict = recipe_state_dict(layout)
    keys = set(state_dict)
    for entry in recipe["entries"]:
        value = state_dict[entry["key"]]
        assert recipe_rule(entry["key"], tuple(entry["shape"]), keys) == entry["rule"], entry["key"]
        assert value.shape == tuple(entry["shape"]) and str(value.dtype) == entry["dtype"], entry["key"]
        if "sum" in entry:
            assert float(value.astype(np.float64).sum()) == entry["sum"], entry["key"]
            assert float(np.abs(value.astype(np.float64)).sum()) == entry["sum_abs"], entry["key"]
            assert value.ravel()[:3].astype(np.float64).tolist() == entry["first3"], entry["key"]
    assert recipe_sha256(state_dict) == recipe["verification"]["sha256_of_recipe_state_dict"]
