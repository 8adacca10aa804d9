"""Every upstream checkpoint layout in ../shared/checkpoint_formats round-trips through our loader.

Synthetic checkpoints are written in each manifest's exact layout (keys, shapes,
dtypes, prefixes; the HigherHRNet 640 files with their ``1.`` prefix and fp16
non-BatchNorm tensors; one file in the legacy pre-zip serialization), loaded
strictly, recognised from keys and shapes, and run on a tiny input. Files that
fit no layout fail with a one-line CheckpointError naming the keys.
"""

from __future__ import annotations

import json
import zipfile
import zlib

import numpy as np
import pytest
import torch

from hrnet_recipe import one_torch_thread  # noqa: F401
from streampose.errors import CheckpointError, UserError
from streampose.models import load_pose_model
from streampose.models.hrnet.checkpoints import read_state_dict

# manifest → (our name, family, head, width, file variant)
MANIFESTS = {
    "official_pose_hrnet_w32_256x192": ("pose_hrnet_w32_256x192", "official_hrnet", "heatmap", 32, "legacy"),
    "official_pose_hrnet_w48_256x192": ("pose_hrnet_w48_256x192", "official_hrnet", "heatmap", 48, "plain"),
    "official_simdr_hrnet_w32_256x192": ("simdr_hrnet_w32_256x192", "official_simdr", "simdr", 32, "state_dict+module"),
    "official_simdr_hrnet_w48_256x192": ("simdr_hrnet_w48_256x192", "official_simdr", "simdr", 48, "plain"),
    "official_sa_simdr_hrnet_w48_256x192": ("simdr_hrnet_w48_256x192", "official_simdr", "simdr", 48, "model"),
    "sithu_posehrnet_w32_256x192": ("pose_hrnet_w32_256x192", "sithu", "heatmap", 32, "plain"),
    "sithu_posehrnet_w48_256x192": ("pose_hrnet_w48_256x192", "sithu", "heatmap", 48, "plain"),
    "sithu_simdr_w32_256x192": ("simdr_hrnet_w32_256x192", "sithu", "simdr", 32, "plain"),
    "sithu_simdr_w48_256x192": ("simdr_hrnet_w48_256x192", "sithu", "simdr", 48, "plain"),
    "official_pose_higher_hrnet_w32_512": ("pose_higher_hrnet_w32_512", "official_higher_hrnet", "higherhrnet", 32,
                                           "plain"),
    "official_pose_higher_hrnet_w32_640": ("pose_higher_hrnet_w32_640", "official_higher_hrnet", "higherhrnet", 32,
                                           "fp16"),
    "official_pose_higher_hrnet_w48_640": ("pose_higher_hrnet_w48_640", "official_higher_hrnet", "higherhrnet", 48,
                                           "fp16"),
}

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64}


pytestmark = pytest.mark.usefixtures("one_torch_thread")

def _manifest(shared_dir, name):
    return json.loads((shared_dir / "checkpoint_formats" / f"{name}.json").read_text())


_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64}


def synthetic_state_dict(manifest: dict) -> dict[str, torch.Tensor]:
    """Cheap deterministic values, distinct per key, in the manifest's exact keys, shapes, dtypes and order."""
    out = {}
    ramp = (np.arange(251, dtype=np.float32) * 1e-3).astype(np.float32)
    for key, entry in manifest["state_dict"].items():
        dtype = _NP_DTYPES[entry["dtype"]]
        numel = int(np.prod(entry["shape"], dtype=np.int64))
        if dtype is np.int64:
            value = np.zeros(numel, dtype=np.int64)
        else:
            offset = (zlib.crc32(key.encode()) % 997) * 1e-4 - (0.0 if key.endswith("running_var") else 0.15)
            value = (np.resize(ramp, numel) + np.float32(offset)).astype(dtype)
        out[key] = torch.from_numpy(value.reshape(entry["shape"]))
    return out


def write_variant(state_dict: dict, variant: str, path) -> dict[str, torch.Tensor]:
    """Write a state dict the way the upstream file of that variant is written; returns the tensors written."""
    if variant == "fp16":
        # nn.Sequential(tofp16, network, tofp32): every key prefixed "1.", BatchNorm kept fp32.
        bn = {k.rsplit(".", 1)[0] for k in state_dict if k.endswith("running_mean")}
        state_dict = {k: (v.half() if v.is_floating_point() and k.rsplit(".", 1)[0] not in bn else v)
                      for k, v in state_dict.items()}
        torch.save({f"1.{k}": v for k, v in state_dict.items()}, path)
        return state_dict
    written = state_dict
    if variant == "state_dict+module":
        state_dict = {"epoch": 140, "state_dict": {f"module.{k}": v for k, v in state_dict.items()}}
    if variant == "model":
        state_dict = {"model": state_dict}
    torch.save(state_dict, path, _use_new_zipfile_serialization=variant != "legacy")
    return written


@pytest.mark.parametrize("manifest_name", sorted(MANIFESTS))
def test_manifest_round_trips(shared_dir, tmp_path, manifest_name):
    name, family, head, width, variant = MANIFESTS[manifest_name]
    manifest = _manifest(shared_dir, manifest_name)
    path = tmp_path / "checkpoint.pth"
    written = write_variant(synthetic_state_dict(manifest), variant, path)
    if variant == "legacy":
        assert not zipfile.is_zipfile(path)
    if variant == "fp16":
        contents = read_state_dict(path)
        assert "1." in contents.wrappers and contents.has_fp16

    model, spec = load_pose_model(path)
    assert (spec.name, spec.family, spec.head.kind, spec.backbone.width, spec.num_joints) == (
        name, family, head, width, 17)

    # Every file tensor landed in the right place (fp16 values widened exactly).
    ours = model.state_dict()
    head_keys = ("final_layer.", "final_layers.", "deconv_layers.", "mlp_head_x.", "mlp_head_y.")
    assert len(ours) == len(written)
    for key, value in written.items():
        our_key = key if key.startswith("backbone.") else (
            f"head.{key}" if key.startswith(head_keys) else f"backbone.{key}")
        assert ours[our_key].dtype in (torch.float32, torch.int64), key
        assert np.array_equal(ours[our_key].numpy(), value.numpy().astype(ours[our_key].numpy().dtype)), key

    with torch.inference_mode():
        features = model.backbone(torch.randn(1, 3, 64, 32))
        assert features.shape == (1, width, 16, 8)
        if head == "simdr":
            # The SimDR linear layers need the 64x48 maps of a 256x192 crop; feed features of that size.
            out_x, out_y = model.head(torch.randn(1, width, 64, 48))
            assert out_x.shape == (1, 17, 384) and out_y.shape == (1, 17, 512)
        else:
            out = model.head(features)
            outs = out if isinstance(out, list) else [out]
            assert all(torch.isfinite(o).all() for o in outs)
            assert outs[0].shape[1] == (34 if head == "higherhrnet" else 17)


def _one_line_error(path, match) -> str:
    with pytest.raises(CheckpointError, match=match) as info:
        load_pose_model(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    return message


def test_missing_and_unexpected_keys_are_named(shared_dir, tmp_path):
    state_dict = synthetic_state_dict(_manifest(shared_dir, "official_pose_hrnet_w32_256x192"))
    del state_dict["stage4.2.fuse_layers.0.3.1.running_var"]
    state_dict["extra_head.weight"] = torch.zeros(3)
    torch.save(state_dict, tmp_path / "bad.pth")
    message = _one_line_error(tmp_path / "bad.pth", "pose_hrnet_w32_256x192")
    assert "stage4.2.fuse_layers.0.3.1.running_var" in message and "extra_head.weight" in message


def test_shape_mismatch_is_named(shared_dir, tmp_path):
    state_dict = synthetic_state_dict(_manifest(shared_dir, "official_pose_hrnet_w32_256x192"))
    state_dict["stage2.0.branches.1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state_dict, tmp_path / "bad.pth")
    message = _one_line_error(tmp_path / "bad.pth", "shape mismatch")
    assert "stage2.0.branches.1.0.conv1.weight" in message


def test_unrelated_state_dict_lists_closest_layout(shared_dir, tmp_path):
    yolo = _manifest(shared_dir, "yolov5m_nc2_crowdhuman")
    torch.save({k: torch.zeros(v["shape"], dtype=_DTYPES[v["dtype"]]) for k, v in yolo["state_dict"].items()},
               tmp_path / "yolo_sd.pth")
    message = _one_line_error(tmp_path / "yolo_sd.pth", "fits no HRNet")
    assert "missing keys" in message and "unexpected keys" in message and "model." in message


def test_pickled_model_is_refused_safely(shared_dir):
    _one_line_error(shared_dir / "weights" / "yolov5n.pt", "cannot be loaded safely")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all" * 10)
    _one_line_error(tmp_path / "junk.pth", "not a readable torch checkpoint|cannot be loaded safely")


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(UserError, match="weights/README.md"):
        load_pose_model(tmp_path / "nope.pth")
