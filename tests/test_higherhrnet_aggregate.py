"""HigherHRNet outputs → parser maps, against the official aggregation (stored raw outputs of bus.jpg)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streampose.models.higherhrnet.aggregate import MapAccumulator, stage_maps
from streampose.records import COCO_FLIP_INDEX

NET_TOLERANCE = 1e-4


def assert_net(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != {ref.shape}"
    worst = float(np.abs(ours.astype(np.float64) - ref).max())
    assert worst <= NET_TOLERANCE * float(np.abs(ref).max()), f"{name}: max abs diff {worst:.3g}"


def checksums(maps: np.ndarray) -> np.ndarray:
    flat = maps.reshape(maps.shape[0], -1).astype(np.float64)
    return np.stack([flat.sum(1), (flat**2).sum(1), flat.min(1), flat.max(1), flat.argmax(1)], axis=1)


@pytest.fixture(scope="module")
def golden(shared_dir):
    return np.load(shared_dir / "golden" / "higherhrnet_w32_512.npz")


@pytest.fixture(scope="module")
def bus_outputs(golden):
    return [torch.from_numpy(golden["bus_raw0_full"]), torch.from_numpy(golden["bus_raw1_full"])]


@pytest.fixture(scope="module")
def bus_noflip_maps(bus_outputs):
    accumulator = MapAccumulator((512, 704))
    accumulator.add(*stage_maps(bus_outputs))
    heatmaps, tags = accumulator.result()
    return heatmaps[0].numpy(), tags[0].numpy()


def test_noflip_maps_equal_the_official_ones(golden, bus_noflip_maps):
    heatmaps, tags = bus_noflip_maps
    assert heatmaps.shape == (17, 704, 512) and tags.shape == (17, 704, 512, 1)
    assert_net(heatmaps[:, ::16, ::16], golden["bus_noflip_final_heatmaps_sub"][0], "heatmaps_sub")
    assert_net(tags[:, ::16, ::16], golden["bus_noflip_tags_sub"][0], "tags_sub")
    y, x = golden["bus_noflip_agg_win_yx"]
    assert_net(heatmaps[:, y:y + 32, x:x + 32], golden["bus_noflip_final_heatmaps_win"][0], "heatmaps_win")
    assert_net(tags[:, y:y + 32, x:x + 32], golden["bus_noflip_tags_win"][0], "tags_win")
    for ours, name in ((heatmaps, "bus_noflip_final_heatmaps_checksums"), (tags[..., 0], "bus_noflip_tags_checksums")):
        ref, got = golden[name], checksums(ours)
        for col in (0, 1):
            tol = 1e-4 * np.abs(ref[:, col]) + 1e-4 * np.abs(ref[:, col]).max()
            assert (np.abs(got[:, col] - ref[:, col]) <= tol).all(), f"{name} column {col}"
        assert_net(got[:, 2:4], ref[:, 2:4], f"{name} min/max")
        assert (got[:, 4] == ref[:, 4]).all(), f"{name} argmax"


def _mirror(outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """What a left-right symmetric network returns for the flipped input."""
    out0, out1 = outputs
    index = list(COCO_FLIP_INDEX)
    out0 = torch.cat([out0[:, :17][:, index], out0[:, 17:][:, index]], 1).flip(3)
    return [out0, out1[:, index].flip(3)]


def test_flip_back_undoes_the_mirror(bus_outputs, bus_noflip_maps):
    # Equal up to float rounding: torch's vectorized bilinear upsampling is not bitwise mirror-symmetric.
    heatmaps, tags = stage_maps(bus_outputs)
    heatmaps_flip, tags_flip = stage_maps(_mirror(bus_outputs), flipped=True)
    torch.testing.assert_close(heatmaps_flip, heatmaps, rtol=0, atol=1e-5)
    torch.testing.assert_close(tags_flip, tags, rtol=0, atol=1e-5)
    accumulator = MapAccumulator((512, 704))
    accumulator.add(heatmaps, tags, heatmaps_flip, tags_flip)
    final_heatmaps, final_tags = accumulator.result()
    assert final_tags.shape == (1, 17, 704, 512, 2)
    assert np.abs(final_heatmaps[0].numpy() - bus_noflip_maps[0]).max() < 1e-5
    assert torch.equal(final_tags[..., 0:1], torch.from_numpy(bus_noflip_maps[1])[None])
    torch.testing.assert_close(final_tags[..., 1], final_tags[..., 0], rtol=0, atol=1e-5)


def test_flip_without_reordering_would_differ(bus_outputs):
    heatmaps, _ = stage_maps(bus_outputs)
    unordered, _ = stage_maps(_mirror(bus_outputs), flipped=True, flip_index=tuple(range(17)))
    assert (unordered - heatmaps).abs().max() > 0.1


def test_scales_average_heatmaps_and_stack_tags(bus_outputs):
    heatmaps, tags = stage_maps(bus_outputs)
    accumulator = MapAccumulator((512, 704))
    accumulator.add(heatmaps, tags)
    accumulator.add(heatmaps * 3, tags + 1)
    final_heatmaps, final_tags = accumulator.result()
    assert final_tags.shape[-1] == 2
    expected = torch.nn.functional.interpolate(heatmaps, size=(704, 512), mode="bilinear", align_corners=False) * 2
    assert torch.allclose(final_heatmaps, expected, rtol=1e-6, atol=1e-6)


def test_bad_outputs_are_rejected(bus_outputs):
    with pytest.raises(ValueError, match="two HigherHRNet outputs"):
        stage_maps(bus_outputs[:1])
    with pytest.raises(ValueError, match="channels"):
        stage_maps([bus_outputs[0][:, :20], bus_outputs[1]])
    with pytest.raises(ValueError, match="no scale"):
        MapAccumulator((8, 8)).result()
