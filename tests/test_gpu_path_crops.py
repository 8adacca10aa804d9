"""Device crops (affine grid_sample) reproduce cv2.warpAffine + normalisation (CPU-tested; CUDA where present).

Tolerance, measured on the 14 ground-truth people of ../shared/coco: grey levels differ by at most 1
(OpenCV quantises sample positions to 1/32 px and weights to 15 bits, we sample exactly) on at most 0.1 %
of the crop values; the normalised input then differs by at most 1/255/std = 0.0175. Through the recipe
HRNet-w32 the keypoints are equal except at heatmap near-ties (tested: every changed joint is one).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpu_path_helpers import CUDA_REASON, coco_people
from hrnet_recipe import one_torch_thread, recipe_model  # noqa: F401
from streampose.topdown.crops import HRNET_CROP, build_crop_batch, crop_transforms, warp_crops, xyxy_to_center_scale
from streampose.topdown.gpu_crops import crop_batch_on_device, normalized_inverse_affines, warp_crops_on_device

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MAX_GREY_DIFF = 1.0
MAX_FRACTION_DIFFERENT = 1e-3
MAX_INPUT_DIFF = 1.0 / 255 / min(HRNET_CROP.std) + 1e-6


def _transforms(xyxy):
    centers, scales = xyxy_to_center_scale(xyxy, HRNET_CROP)
    return crop_transforms(centers, scales, HRNET_CROP.input_size_wh)


@pytest.mark.parametrize("index", range(4))
def test_grey_levels_match_warp_affine(shared_dir, index):
    image, xyxy = coco_people(shared_dir)[index]
    transforms = _transforms(xyxy)
    ref = warp_crops(image, transforms, HRNET_CROP.input_size_wh).transpose(0, 3, 1, 2).astype(np.float32)
    ours = warp_crops_on_device(torch.from_numpy(image), transforms, HRNET_CROP.input_size_wh).numpy()
    diff = np.abs(ours - ref)
    assert ours.shape == ref.shape
    assert diff.max() <= MAX_GREY_DIFF, diff.max()
    assert (diff > 0).mean() <= MAX_FRACTION_DIFFERENT, (diff > 0).mean()


def test_integer_translation_samples_pixel_centres():
    """A pure integer shift samples pixel centres: every value is the shifted frame's (border 0), to float32 grid noise."""
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    matrix = np.array([[[1.0, 0.0, -5.0], [0.0, 1.0, 3.0]]])  # crop(x, y) = frame(x + 5, y - 3)
    ours = warp_crops_on_device(torch.from_numpy(frame), matrix, (20, 16), round_to_uint8=False).numpy()[0]
    expected = np.zeros((3, 16, 20), np.float32)
    expected[:, 3:, :] = frame[0:13, 5:25].transpose(2, 0, 1)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-3)


def test_normalized_inverse_is_identity_for_same_size():
    theta = normalized_inverse_affines(np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), (64, 48), (48, 64))
    np.testing.assert_allclose(theta[0], [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_batch_of_several_frames_keeps_row_order(shared_dir):
    people = coco_people(shared_dir)
    images = [people[0][0], people[2][0], people[3][0]]
    xyxy = np.concatenate([people[0][1], people[2][1][:3], people[3][1][:3]])
    indices = np.array([0, 1, 1, 1, 2, 2, 2])
    order = np.array([4, 0, 2, 6, 1, 5, 3])  # interleaved frames
    xyxy, indices = xyxy[order], indices[order]
    xyxy[0] += [-300.0, -300.0, -300.0, -300.0]  # partly outside the frame: zero border
    transforms = _transforms(xyxy)
    ref = build_crop_batch(images, indices, transforms, HRNET_CROP)
    frames = {i: torch.from_numpy(im) for i, im in enumerate(images)}
    ours = crop_batch_on_device(frames, indices, transforms, HRNET_CROP)
    assert ours.shape == ref.shape and ours.dtype == torch.float32
    diff = (ours - ref).abs()
    assert diff.max().item() <= MAX_INPUT_DIFF
    assert (diff > 0).float().mean().item() <= MAX_FRACTION_DIFFERENT


def test_keypoints_through_recipe_hrnet(shared_dir):
    """Recipe HRNet-w32 on 5 COCO people: keypoints from device crops equal those from cv2 crops, or a near-tie."""
    from streampose.models.hrnet.heatmap_decode import decode_heatmaps

    image, xyxy = coco_people(shared_dir)[2]
    transforms = _transforms(xyxy)
    ref = build_crop_batch([image], np.zeros(len(xyxy), int), transforms, HRNET_CROP)
    ours = crop_batch_on_device({0: torch.from_numpy(image)}, np.zeros(len(xyxy), int), transforms, HRNET_CROP)
    network, _ = recipe_model("pose_hrnet_w32_256x192")
    with torch.inference_mode():
        maps = network(torch.cat([ref, ours])).numpy()
    maps_ref, maps_ours = maps[: len(xyxy)], maps[len(xyxy):]
    value_tol = 1e-2 * np.abs(maps_ref).max()
    assert np.abs(maps_ours - maps_ref).max() <= value_tol
    coords_ref, _ = decode_heatmaps(maps_ref)
    coords_ours, _ = decode_heatmaps(maps_ours)
    moved = np.abs(coords_ours - coords_ref).max(axis=2) * 4  # crop pixels
    for n, k in zip(*np.nonzero(moved > 0)):
        flat = maps_ref[n, k].reshape(-1)
        x, y = np.floor(coords_ours[n, k] + 0.5).astype(int)  # our argmax cell, in the reference map
        assert flat.max() - maps_ref[n, k, y, x] <= 2 * value_tol, (n, k, moved[n, k])
    assert (moved == 0).mean() >= 0.9, moved


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
def test_cuda_crops_match_cpu_crops(shared_dir):
    image, xyxy = coco_people(shared_dir)[3]
    transforms = _transforms(xyxy)
    indices = np.zeros(len(xyxy), int)
    ref = build_crop_batch([image], indices, transforms, HRNET_CROP)
    ours = crop_batch_on_device({0: torch.from_numpy(image).cuda()}, indices, transforms, HRNET_CROP)
    assert ours.is_cuda
    diff = (ours.cpu() - ref).abs()
    assert diff.max().item() <= MAX_INPUT_DIFF
    assert (diff > 0).float().mean().item() <= MAX_FRACTION_DIFFERENT
