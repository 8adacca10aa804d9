"""Network outputs equal the official implementations' on the golden inputs (recipe weights).

Tolerance class ``net`` (../shared/golden/INDEX.md): max|ours - ref| <= 1e-4 * max|ref|.
The recipe weights are written in the official key layout and loaded through
our checkpoint loader, so these tests cover the remap as well.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrnet_recipe import one_torch_thread, recipe_model  # noqa: F401

NET_TOLERANCE = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")

def assert_net(ours, ref, name: str) -> None:
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != {ref.shape}"
    worst = float(np.abs(ours.astype(np.float64) - ref).max())
    limit = NET_TOLERANCE * float(np.abs(ref).max())
    assert worst <= limit, f"{name}: max abs diff {worst:.3g} > {limit:.3g}"


@pytest.fixture(scope="module")
def topdown_golden(shared_dir):
    return np.load(shared_dir / "golden" / "hrnet_w32_256x192_topdown.npz")


@pytest.fixture(scope="module")
def simdr_golden(shared_dir):
    return np.load(shared_dir / "golden" / "simdr_w32_256x192.npz")


@pytest.fixture(scope="module")
def higher_golden(shared_dir):
    return np.load(shared_dir / "golden" / "higherhrnet_w32_512.npz")


def test_pose_hrnet_w32_heatmaps(shared_dir, topdown_golden):
    model, spec = recipe_model("pose_hrnet_w32_256x192")
    assert (spec.name, spec.family) == ("pose_hrnet_w32_256x192", "official_hrnet")
    x = torch.from_numpy(topdown_golden["input"])
    with torch.inference_mode():
        out = model(torch.cat([x, x.flip(3)]))
    assert_net(out[:1], topdown_golden["heatmaps"], "heatmaps")
    assert_net(out[1:], topdown_golden["heatmaps_flipinput_raw"], "heatmaps_flipinput_raw")


def test_simdr_w32_logits(shared_dir, simdr_golden):
    model, spec = recipe_model("simdr_hrnet_w32_256x192")
    assert (spec.name, spec.family, spec.head.bins_xy) == ("simdr_hrnet_w32_256x192", "official_simdr", (384, 512))
    x = torch.from_numpy(simdr_golden["input"])
    with torch.inference_mode():
        out_x, out_y = model(torch.cat([x, x.flip(3)]))
    assert_net(out_x[:1], simdr_golden["output_x"], "output_x")
    assert_net(out_y[:1], simdr_golden["output_y"], "output_y")
    assert_net(out_x[1:], simdr_golden["output_x_flipinput_raw"], "output_x_flipinput_raw")
    assert_net(out_y[1:], simdr_golden["output_y_flipinput_raw"], "output_y_flipinput_raw")


def _checksums(maps: np.ndarray) -> np.ndarray:
    """Per channel over the full map: sum, sum of squares, min, max, argmax (as the golden defines them)."""
    flat = maps[0].reshape(maps.shape[1], -1).astype(np.float64)
    return np.stack([flat.sum(1), (flat**2).sum(1), flat.min(1), flat.max(1), flat.argmax(1)], axis=1)


def test_higher_hrnet_w32_512_raw_outputs_on_bus(higher_golden):
    model, spec = recipe_model("pose_higher_hrnet_w32_512")
    assert (spec.name, spec.family, spec.input_size_wh) == ("pose_higher_hrnet_w32_512", "official_higher_hrnet",
                                                           (512, 512))
    g = higher_golden
    x = torch.from_numpy(g["bus_input"])
    with torch.inference_mode():
        raw0, raw1 = model(torch.cat([x, x.flip(3)]))
    raw0, raw1 = raw0.numpy(), raw1.numpy()
    assert_net(raw0[:1], g["bus_raw0_full"], "bus_raw0_full")
    assert_net(raw1[:1], g["bus_raw1_full"], "bus_raw1_full")
    # The flipped input (raw, before flipping back): subsamples, full-resolution windows, checksums.
    r, c = g["bus_raw_win_yx"]
    f0, f1 = raw0[1:], raw1[1:]
    assert_net(f0[..., ::4, ::4], g["bus_rawflipinput0_sub"], "bus_rawflipinput0_sub")
    assert_net(f1[..., ::4, ::4], g["bus_rawflipinput1_sub"], "bus_rawflipinput1_sub")
    assert_net(f0[..., r // 2:r // 2 + 16, c // 2:c // 2 + 16], g["bus_rawflipinput0_win"], "bus_rawflipinput0_win")
    assert_net(f1[..., r:r + 32, c:c + 32], g["bus_rawflipinput1_win"], "bus_rawflipinput1_win")
    for ours, name in ((f0, "bus_rawflipinput0_checksums"), (f1, "bus_rawflipinput1_checksums")):
        ref, got = g[name], _checksums(ours)
        for col in (0, 1):
            tol = 1e-4 * np.abs(ref[:, col]) + 1e-4 * np.abs(ref[:, col]).max()
            assert (np.abs(got[:, col] - ref[:, col]) <= tol).all(), f"{name} column {col}"
        assert_net(got[:, 2:4], ref[:, 2:4], f"{name} min/max")
        assert (got[:, 4] == ref[:, 4]).all(), f"{name} argmax"
