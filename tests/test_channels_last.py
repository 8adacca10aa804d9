"""Channels-last convolutions, the CPU default of every torch model step: same outputs as NCHW,
and on by default on the CPU only (speed: scripts/bench_channels_last.py, BENCHMARKS.md)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hrnet_recipe import one_person_frame, recipe_checkpoint
from streampose.gpu.acceleration import AcceleratedNetwork, default_channels_last, network_in_precision
from streampose.models import registry
from streampose.step import build_step


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _networks_and_inputs():
    """(name, NCHW network, small input) for one entry of every family with a convolutional network."""
    for name in ("light_person_detector_192", "yolov5n", "movenet_lightning", "pose_hrnet_w32_256x192",
                 "pose_higher_hrnet_w32_512"):
        model = registry.build_random(name)
        network = getattr(model, "network", None) or getattr(model, "net", None) or model
        x = torch.randn(2, 3, 64, 96) if name != "movenet_lightning" else torch.randn(2, 3, 192, 192)
        yield name, copy.deepcopy(network).to(memory_format=torch.contiguous_format).eval(), x


@pytest.mark.parametrize("name, network, x", list(_networks_and_inputs()), ids=lambda v: v if isinstance(v, str) else "")
def test_channels_last_gives_the_nchw_outputs(name, network, x):
    with torch.inference_mode():
        expected = network(x)
        got = network_in_precision(copy.deepcopy(network), "fp32", torch.device("cpu"), channels_last=True)(x)
    expected = expected if isinstance(expected, (tuple, list)) else [expected]
    got = got if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        assert float((g - e).abs().max()) <= 1e-4 * float(e.abs().max()), name  # the golden "net" tolerance


def test_channels_last_is_the_cpu_default_only():
    assert default_channels_last(torch.device("cpu")) is True
    assert default_channels_last("cpu") is True
    assert default_channels_last(torch.device("cuda", 0)) is False
    assert default_channels_last("cuda:1") is False


def test_topdown_step_runs_channels_last_on_the_cpu_by_default_with_the_same_keypoints(shared_dir):
    weights = str(recipe_checkpoint("pose_hrnet_w32_256x192"))
    keypoints = {}
    for setting in (None, False):
        step = build_step({"type": "topdown_pose", "weights": weights, "device": "cpu", "flip_test": False,
                           "precision": "fp32", **({} if setting is None else {"channels_last": setting})})
        step.start()
        network = step.estimator.model.network
        assert isinstance(network, AcceleratedNetwork) == (setting is None)
        if setting is None:
            assert network.channels_last
        frame = one_person_frame(shared_dir)
        step.process([frame])
        keypoints[setting] = frame.packet.poses.keypoints
        step.close()
    np.testing.assert_allclose(keypoints[None], keypoints[False], atol=1e-3)
