"""Batch norms folded into convolutions (the CPU default of every torch model step): same outputs,
only the foldable pairs folded, the network changed in place with its attributes kept."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from hrnet_recipe import one_person_frame, recipe_checkpoint
from streampose.gpu.acceleration import default_fold_batchnorm, network_in_precision
from streampose.gpu.batchnorm_folding import fold_batchnorm
from streampose.models import registry
from streampose.step import build_step


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _with_random_statistics(network: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms with statistics and affine parameters far from the identity a fresh network has."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) * 2 + 0.2)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
    return network.eval()


def _outputs(network: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.inference_mode():
        out = network(x)
    return list(out) if isinstance(out, (tuple, list)) else [out]


# unfoldable: HigherHRNet's batch norm after its transposed convolution
@pytest.mark.parametrize("name, size_hw, unfoldable", [("yolov5n", (64, 96), 0), ("pose_hrnet_w32_256x192", (64, 96), 0),
                                                       ("simdr_hrnet_w32_256x192", (256, 192), 0),
                                                       ("pose_higher_hrnet_w32_512", (64, 96), 1)])
def test_folding_keeps_the_outputs_and_folds_every_batch_norm_after_a_convolution(name, size_hw, unfoldable):
    model = registry.build_random(name)
    network = _with_random_statistics(copy.deepcopy(getattr(model, "network", None) or model))
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in network.modules())
    x = torch.randn(2, 3, *size_hw)
    expected = _outputs(network, x)
    folded = copy.deepcopy(network)
    assert fold_batchnorm(folded) == norms - unfoldable > 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == unfoldable
    assert type(folded) is type(network) and getattr(folded, "spec", None) == getattr(network, "spec", None)
    got = _outputs(folded, x)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        assert float((g - e).abs().max()) <= 1e-4 * float(e.abs().max()), name  # the golden "net" tolerance


class _SharedOutput(nn.Module):
    """conv1 feeds its batch norm and the output too; bn2 is called twice: neither may be folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)
        self.conv3, self.bn3 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv1(x)
        z = self.bn3(self.conv3(self.bn1(y) + y))
        return self.bn2(self.conv2(z)) + self.bn2(z)


def test_only_a_batch_norm_that_alone_reads_one_convolution_is_folded():
    network = _with_random_statistics(_SharedOutput())
    x = torch.randn(1, 3, 8, 8)
    expected = _outputs(network, x)[0]
    assert fold_batchnorm(network) == 1
    assert isinstance(network.bn1, nn.BatchNorm2d) and isinstance(network.bn2, nn.BatchNorm2d)
    assert isinstance(network.bn3, nn.Identity)
    torch.testing.assert_close(_outputs(network, x)[0], expected, rtol=1e-5, atol=1e-5)


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        if x.sum() > 0:  # torch.fx cannot trace this
            x = -x
        return self.bn(self.conv(x))


def test_an_untraceable_network_is_left_as_it_is_and_training_mode_is_refused():
    network = _with_random_statistics(_DataDependent())
    before = copy.deepcopy(network.state_dict())
    assert fold_batchnorm(network) == 0
    assert isinstance(network.bn, nn.BatchNorm2d)
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    with pytest.raises(ValueError, match="training mode"):
        fold_batchnorm(_SharedOutput().train())


def test_folding_is_the_cpu_default_only():
    assert default_fold_batchnorm(torch.device("cpu")) is True
    assert default_fold_batchnorm("cuda:0") is False
    network = _with_random_statistics(_SharedOutput())
    kept = network_in_precision(copy.deepcopy(network), "fp32", torch.device("cpu"), fold_batchnorm=False)
    assert isinstance(getattr(kept, "inner", kept).bn3, nn.BatchNorm2d)
    folded = network_in_precision(copy.deepcopy(network), "fp32", torch.device("cpu"))
    assert isinstance(getattr(folded, "inner", folded).bn3, nn.Identity)


def test_topdown_step_folds_on_the_cpu_and_finds_the_same_keypoints(shared_dir):
    weights = str(recipe_checkpoint("pose_hrnet_w32_256x192"))
    frame = one_person_frame(shared_dir)
    image, boxes = frame.image, frame.packet.detections
    step = build_step({"type": "topdown_pose", "weights": weights, "device": "cpu", "flip_test": False,
                       "precision": "fp32"})
    step.start()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in step.estimator.model.network.modules())
    step.process([frame])
    step.close()
    from streampose.topdown.estimator import TopDownEstimator

    unfolded = TopDownEstimator.from_checkpoint(weights, flip_test=False, device="cpu")
    assert any(isinstance(m, nn.BatchNorm2d) for m in unfolded.model.network.modules())
    expected = unfolded.predict(image, boxes.xyxy, boxes.scores)
    np.testing.assert_allclose(frame.packet.poses.keypoints, expected.keypoints, atol=1e-3)
