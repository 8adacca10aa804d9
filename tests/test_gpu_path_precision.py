"""Estimator on the device path vs the host path, precision/channels-last wrappers, uploads, step options.

Tolerances: fp32 device path (grid_sample crops + torch decoding) vs the host path (cv2 crops + numpy
decoding): heatmaps within 1e-2 x max, keypoints equal except at heatmap near-ties. fp16 / bf16 autocast vs
fp32: heatmaps within 2e-2 (fp16) / 6e-2 (bf16) x max|fp32|, keypoints within 0.5 px at the 256x192 crop
scale unless the joint is a near-tie of the fp32 heatmap at that value tolerance. The fp16 tests run only with
CUDA (CPU autocast is bf16).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpu_path_helpers import CUDA_REASON, coco_people, standin_network
from hrnet_recipe import one_torch_thread, recipe_checkpoint, recipe_model  # noqa: F401
from streampose.gpu.acceleration import AcceleratedNetwork, accelerate_network, configure_cudnn
from streampose.gpu.transfer import FrameUploader
from streampose.topdown.crops import HRNET_CROP, build_crop_batch, crop_transforms, xyxy_to_center_scale
from streampose.topdown.estimator import TopDownEstimator
from streampose.models.hrnet.heatmap_decode import decode_heatmaps
from streampose.models.hrnet.topdown import HeatmapTopDownModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VALUE_TOL = {"fp32": 1e-5, "fp16": 2e-2, "bf16": 6e-2}
CROP_PX_TOL = 0.5


def _estimator(network, **kwargs):
    return TopDownEstimator(HeatmapTopDownModel(network, HRNET_CROP, flip_test=True), **kwargs)


def assert_keypoints_close(maps_ref, maps_ours, value_tol, crop_px_tol=CROP_PX_TOL):
    """Keypoints (crop pixels = 4 x heatmap pixels) within crop_px_tol, or a near-tie of the reference maps."""
    coords_ref, _ = decode_heatmaps(maps_ref)
    coords_ours, _ = decode_heatmaps(maps_ours)
    moved = np.abs(coords_ours - coords_ref).max(axis=2) * 4
    for n, k in zip(*np.nonzero(moved > crop_px_tol)):
        x, y = np.floor(coords_ours[n, k] + 0.5).astype(int)
        gap = maps_ref[n, k].max() - maps_ref[n, k, y, x]
        near_tie = gap <= 2 * value_tol
        # A quarter-offset flip at the same cell is a near-tie of the two neighbours.
        same_cell = np.array_equal(np.floor(coords_ours[n, k] + 0.5), np.floor(coords_ref[n, k] + 0.5))
        assert near_tie or same_cell, (n, k, moved[n, k], gap)
    return moved


def test_device_path_matches_host_path_on_cpu(shared_dir):
    people = coco_people(shared_dir)
    images = [people[1][0], people[3][0]]
    boxes = [people[1][1], people[3][1]]
    network = standin_network()
    host = _estimator(network, crops_on_device=False, decode_on_device=False)
    device = _estimator(network, crops_on_device=True, decode_on_device=True)
    assert host.device_crops is None and not host.model.decode_on_device
    ref = host.predict_batch(images, boxes)
    device.model.decode_on_device = True
    ours = device.predict_batch(images, boxes)
    for r, o in zip(ref, ours):
        assert len(r) == len(o)
        moved = np.abs(o.keypoints - r.keypoints).max(axis=2)
        assert (moved == 0).mean() >= 0.9, moved  # the rest: heatmap near-ties (see test_gpu_path_crops)
        np.testing.assert_allclose(o.keypoint_scores, r.keypoint_scores, rtol=0, atol=0.05 * r.keypoint_scores.max())


def test_device_decoding_alone_is_exact(shared_dir):
    """Same crops (cv2), decoding in torch vs numpy: identical Poses."""
    image, xyxy = coco_people(shared_dir)[2]
    network = standin_network(1)
    a = _estimator(network, crops_on_device=False, decode_on_device=False).predict(image, xyxy)
    b = _estimator(network, crops_on_device=False, decode_on_device=True).predict(image, xyxy)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.keypoint_scores, b.keypoint_scores)


def test_device_path_with_no_people_and_chunks(shared_dir):
    image, xyxy = coco_people(shared_dir)[3]
    est = _estimator(standin_network(), crops_on_device=True, decode_on_device=True, max_batch=2)
    host = _estimator(standin_network(), crops_on_device=False, decode_on_device=False, max_batch=2)
    out = est.predict_batch([image, image], [np.zeros((0, 4)), xyxy])
    ref = host.predict_batch([image, image], [np.zeros((0, 4)), xyxy])
    assert len(out[0]) == 0 and len(out[1]) == len(xyxy)
    assert (np.abs(out[1].keypoints - ref[1].keypoints).max(axis=2) == 0).mean() >= 0.9


def test_auto_device_path_follows_the_model_device():
    est = _estimator(standin_network())  # CPU model: host path unless forced
    assert est.device_crops is None and est.model.decode_on_device is False


def test_wrappers_fp32_and_channels_last():
    network = standin_network()
    assert accelerate_network(network) is network
    x = torch.randn(3, 3, 256, 192)
    with torch.inference_mode():
        ref = network(x)
        wrapped = accelerate_network(standin_network(), channels_last=True)
        assert isinstance(wrapped, AcceleratedNetwork) and wrapped.spec.num_joints == 17
        out = wrapped(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=VALUE_TOL["fp32"] * ref.abs().max().item())


def test_fp16_on_cpu_is_refused_and_precision_checked():
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        accelerate_network(standin_network(), precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        accelerate_network(standin_network(), precision="int8")


def test_bf16_autocast_on_cpu_within_tolerance(shared_dir):
    image, xyxy = coco_people(shared_dir)[2]
    centers, scales = xyxy_to_center_scale(xyxy, HRNET_CROP)
    batch = build_crop_batch([image], np.zeros(len(xyxy), int), crop_transforms(centers, scales, (192, 256)),
                             HRNET_CROP)
    network = standin_network(2)
    with torch.inference_mode():
        ref = network(batch).numpy()
        out = accelerate_network(network, precision="bf16")(batch)
    assert out.dtype == torch.float32
    out = out.numpy()
    tol = VALUE_TOL["bf16"] * np.abs(ref).max()
    assert np.abs(out - ref).max() <= tol
    assert_keypoints_close(ref, out, tol)


def test_cudnn_setting_is_explicit():
    before = torch.backends.cudnn.benchmark
    import streampose.builtin_steps.topdown  # noqa: F401  (importing sets nothing)
    import streampose.gpu.acceleration  # noqa: F401

    assert torch.backends.cudnn.benchmark == before
    try:
        configure_cudnn(True)
        assert torch.backends.cudnn.benchmark is True
        configure_cudnn(False)
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before


def test_uploader_on_cpu_keeps_values():
    frame = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    up = FrameUploader("cpu")
    assert not up.pinned
    np.testing.assert_array_equal(up.upload(frame).numpy(), frame)


def test_topdown_pose_step_gpu_options(shared_dir):
    """The step with the device path forced on the CPU, bf16 and channels-last: poses for every box."""
    from streampose.records import Detections, Frame, FramePacket
    from streampose.step import build_step

    image, xyxy = coco_people(shared_dir)[0]
    step = build_step({"type": "topdown_pose", "weights": str(recipe_checkpoint("pose_hrnet_w32_256x192", True)),
                       "device": "cpu", "flip_test": False, "crops_on_device": True, "decode_on_device": True,
                       "precision": "bf16", "channels_last": True, "cudnn_benchmark": False})
    step.start()
    assert step.estimator.device_crops is not None and step.estimator.model.decode_on_device
    assert isinstance(step.estimator.model.network, AcceleratedNetwork)
    packet = FramePacket(source_id=0, source_name="coco", index=0, pts_s=None, shape=image.shape, capture_time=0.0)
    packet.detections = Detections(xyxy.astype(np.float32), np.ones(len(xyxy), np.float32),
                                   np.zeros(len(xyxy), np.int64))
    frames = step.process([Frame(packet, image)])
    assert frames[0].packet.poses.keypoints.shape == (len(xyxy), 17, 2)
    assert np.isfinite(frames[0].packet.poses.keypoints).all()
    step.close()


def test_topdown_pose_step_rejects_fp16_on_cpu():
    from streampose.errors import ConfigError
    from streampose.step import build_step

    step = build_step({"type": "topdown_pose", "weights": str(recipe_checkpoint("pose_hrnet_w32_256x192", True)),
                       "device": "cpu", "precision": "fp16"})
    with pytest.raises(ConfigError, match="fp16"):
        step.start()


# ---- CUDA only: the figures the GPU fast path promises, checked where a GPU is lent ----

@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_half_precision_recipe_hrnet(shared_dir, precision):
    image, xyxy = coco_people(shared_dir)[2]
    centers, scales = xyxy_to_center_scale(xyxy, HRNET_CROP)
    batch = build_crop_batch([image], np.zeros(len(xyxy), int), crop_transforms(centers, scales, (192, 256)),
                             HRNET_CROP)
    network, _ = recipe_model("pose_hrnet_w32_256x192")
    with torch.inference_mode():
        ref = network(batch).numpy()
        fast = accelerate_network(network.cuda(), precision=precision, channels_last=True)
        out = fast(batch.cuda()).cpu().numpy()
    network.cpu()
    if isinstance(fast, AcceleratedNetwork):
        fast.inner.to(memory_format=torch.contiguous_format)
    tol = VALUE_TOL[precision] * np.abs(ref).max()
    assert np.abs(out - ref).max() <= tol
    assert_keypoints_close(ref, out, tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
def test_cuda_estimator_auto_device_path(shared_dir):
    people = coco_people(shared_dir)
    images, boxes = [p[0] for p in people], [p[1] for p in people]
    host = _estimator(standin_network(), crops_on_device=False, decode_on_device=False)
    cuda = _estimator(standin_network().cuda())
    assert cuda.device_crops is not None and cuda.model.decode_on_device
    for r, o in zip(host.predict_batch(images, boxes), cuda.predict_batch(images, boxes)):
        assert (np.abs(o.keypoints - r.keypoints).max(axis=2) == 0).mean() >= 0.9


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
def test_cuda_pinned_uploads_never_overwrite_in_flight_frames():
    up = FrameUploader("cuda", num_buffers=2)
    assert up.pinned
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(6)]
    tensors = up.upload_many(frames)
    torch.cuda.synchronize()
    for frame, tensor in zip(frames, tensors):
        np.testing.assert_array_equal(tensor.cpu().numpy(), frame)
