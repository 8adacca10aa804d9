"""Device-side (torch) decoders equal the numpy decoders exactly: golden, rendered and adversarial maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpu_path_helpers import CUDA_REASON
from streampose.models.hrnet.device_decode import decode_heatmaps_on_device, decode_simdr_on_device
from streampose.models.hrnet.heatmap_decode import decode_heatmaps
from streampose.models.hrnet.simdr_decode import decode_simdr

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _adversarial_heatmaps(rng) -> np.ndarray:
    """Ties (first maximum must win), all-negative maps (zeroed coords), maxima on every border, plateaus."""
    maps = rng.normal(size=(6, 17, 64, 48)).astype(np.float32)
    maps[0] = np.round(maps[0])  # many exact ties, equal neighbours (sign 0)
    maps[1] = -np.abs(maps[1]) - 0.1  # maximum <= 0
    maps[2, :, 0, :] += 10  # top row
    maps[2, 3:, :, -1] += 20  # right column
    maps[3, :, 1, 1] = 50  # just inside the quarter-offset margin (1 < x is false)
    maps[3, 8:, 2, 2] = 60
    maps[4] = 0.0  # flat zero map: max 0 → coords 0
    maps[5, :, 30:33, 20:23] = 7.0  # plateau
    return maps


def _golden_maps(shared_dir) -> dict[str, np.ndarray]:
    hrnet = np.load(shared_dir / "golden" / "hrnet_w32_256x192_topdown.npz")
    rendered = np.load(shared_dir / "golden" / "higherhrnet_parser_rendered.npz")
    maps = {name: hrnet[name] for name in ("heatmaps", "heatmaps_flip_avg", "heatmaps_flipback_shifted")}
    maps.update({name: rendered[name] for name in rendered.files if name.endswith("_det")})
    return maps


@pytest.mark.parametrize("device", DEVICES)
def test_heatmap_decoder_equals_numpy(shared_dir, device):
    cases = _golden_maps(shared_dir)
    cases["adversarial"] = _adversarial_heatmaps(np.random.default_rng(0))
    assert any(name.endswith("_det") for name in cases), "rendered heatmaps missing from the golden set"
    for name, maps in cases.items():
        for post_process in (True, False):
            ref_coords, ref_scores = decode_heatmaps(maps, post_process=post_process)
            coords, scores = decode_heatmaps_on_device(torch.from_numpy(maps).to(device), post_process=post_process)
            assert coords.dtype == np.float32 and scores.dtype == np.float32
            np.testing.assert_array_equal(coords, ref_coords, err_msg=f"{name} post_process={post_process}")
            np.testing.assert_array_equal(scores, ref_scores, err_msg=name)


def test_golden_final_preds_through_device_decoder(shared_dir):
    """The official get_final_preds (no flip) coordinates from the device decoder + transform_preds."""
    from streampose.topdown.crops import transform_preds

    g = np.load(shared_dir / "golden" / "hrnet_w32_256x192_topdown.npz")
    coords, scores = decode_heatmaps_on_device(torch.from_numpy(g["heatmaps"]))
    preds = transform_preds(coords, g["center"][None], g["scale"][None], (48, 64))
    assert np.abs(preds - g["preds_noflip"]).max() <= 1e-3
    np.testing.assert_allclose(scores, g["maxvals_noflip"][..., 0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_simdr_decoder_equals_numpy(shared_dir, device):
    g = np.load(shared_dir / "golden" / "simdr_w32_256x192.npz")
    rng = np.random.default_rng(3)
    tied_x = np.round(rng.normal(size=(4, 17, 384))).astype(np.float32)
    tied_y = np.round(rng.normal(size=(4, 17, 512))).astype(np.float32)
    cases = {"noflip": (g["prob_x_noflip"], g["prob_y_noflip"]), "flip": (g["prob_x_flip"], g["prob_y_flip"]),
             "ties": (tied_x, tied_y)}
    for name, (px, py) in cases.items():
        for split_ratio in (2.0, 3.0):
            ref = decode_simdr(px, py, split_ratio)
            ours = decode_simdr_on_device(torch.from_numpy(px).to(device), torch.from_numpy(py).to(device),
                                          split_ratio)
            np.testing.assert_array_equal(ours[0], ref[0], err_msg=name)
            np.testing.assert_array_equal(ours[1], ref[1], err_msg=name)
    coords, _ = decode_simdr_on_device(torch.from_numpy(g["prob_x_noflip"]), torch.from_numpy(g["prob_y_noflip"]), 2.0)
    np.testing.assert_array_equal(coords, g["coords_input_space_noflip"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
def test_half_heatmaps_decode_like_their_float_copy():
    """fp16 network output: decoding upcasts first, so the result is the numpy decoder's on the same values."""
    maps = torch.randn(4, 17, 64, 48, device="cuda").half()
    coords, scores = decode_heatmaps_on_device(maps)
    ref_coords, ref_scores = decode_heatmaps(maps.float().cpu().numpy())
    np.testing.assert_array_equal(coords, ref_coords)
    np.testing.assert_array_equal(scores, ref_scores)
