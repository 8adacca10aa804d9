"""HRNet heatmap and SimDR adapters: the family's :class:`~streampose.models.protocols.TopDownPoseModel`.

The estimator (:class:`~streampose.topdown.estimator.TopDownEstimator`) owns
the generic flow (boxes → crops → batched forward → decode → map back to the
frame). An adapter says which crops the network wants
(:class:`~streampose.models.protocols.CropSpec`: input size, padding,
normalisation, channel order) and turns a normalised batch into keypoints in
its own output space (:class:`~streampose.models.protocols.CropKeypoints`),
using the pure decoders of this package: ``forward`` runs the network (with
the flip test), ``decode`` is post-processing only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ...errors import CheckpointError, ConfigError
from ...keypoint_sets import KEYPOINT_SETS, keypoint_set_for
from ..protocols import CropKeypoints, CropSpec
from .flip import average_heatmaps, flip_back_heatmaps, flip_back_simdr
from .heatmap_decode import decode_heatmaps
from .simdr_decode import decode_simdr, simdr_probabilities


def _flip_index(num_keypoints: int) -> Sequence[int]:
    keypoint_set = keypoint_set_for(num_keypoints)
    if not keypoint_set.flip_pairs:
        raise ValueError(f"flip_test: the model's {num_keypoints} keypoints are not a known keypoint set "
                         f"(no flip pairs: {', '.join(sorted(KEYPOINT_SETS))}); set flip_test = false")
    return keypoint_set.flip_index


class HeatmapTopDownModel:
    """PoseHRNet: heatmaps at 1/4 of the crop, optional flip test, argmax + quarter offset or DARK.

    decode_on_device: argmax + quarter offset in torch where the network ran
    (:mod:`.device_decode`), only keypoints copied back; set by the estimator.
    """

    decode_on_device = False

    def __init__(self, network, crop: CropSpec, *, flip_test: bool = True, use_dark: bool = False):
        self.network = network
        self.crop = crop
        self.num_keypoints = network.spec.num_joints
        self.flip_test = flip_test
        self.use_dark = use_dark
        self.flip_index = _flip_index(self.num_keypoints) if flip_test else None
        self.device = next(network.parameters()).device

    def heatmaps(self, batch):
        """Network heatmaps (N, K, h/4, w/4), flip-averaged when ``flip_test``."""
        import torch

        with torch.inference_mode():
            heatmaps = self.network(batch)
            if self.flip_test:
                flipped = flip_back_heatmaps(self.network(batch.flip(3)), self.flip_index)
                heatmaps = average_heatmaps(heatmaps, flipped)
        return heatmaps

    def forward(self, batch):
        return self.heatmaps(batch)

    def infer(self, batch) -> CropKeypoints:
        return self.decode(self.forward(batch))

    def decode(self, heatmaps) -> CropKeypoints:
        """Heatmaps (N, K, h, w) tensor → keypoints in heatmap pixels."""
        if self.decode_on_device and not self.use_dark:  # DARK decodes on the host
            from .device_decode import decode_heatmaps_on_device

            coords, scores = decode_heatmaps_on_device(heatmaps)
        else:
            coords, scores = decode_heatmaps(heatmaps.float().cpu().numpy(), use_dark=self.use_dark)
        return CropKeypoints(coords, scores, (heatmaps.shape[3], heatmaps.shape[2]))


class SimDRTopDownModel:
    """SimDR: 1-D x/y distributions, optional flip test (probabilities averaged), argmax / split ratio.

    decode_on_device: argmax in torch where the network ran; set by the estimator.
    """

    decode_on_device = False

    def __init__(self, network, crop: CropSpec, *, flip_test: bool = True):
        self.network = network
        self.crop = crop
        self.num_keypoints = network.spec.num_joints
        self.split_ratio = network.spec.head.split_ratio
        self.flip_test = flip_test
        self.flip_index = _flip_index(self.num_keypoints) if flip_test else None
        self.device = next(network.parameters()).device

    def probabilities(self, batch):
        """(prob_x (N, K, Bx), prob_y (N, K, By)), flip-averaged when ``flip_test``."""
        import torch

        with torch.inference_mode():
            logits_x, logits_y = self.network(batch)
            prob_x, prob_y = simdr_probabilities(logits_x), simdr_probabilities(logits_y)
            if self.flip_test:
                flip_x, flip_y = flip_back_simdr(*self.network(batch.flip(3)), self.flip_index)
                prob_x = (prob_x + simdr_probabilities(flip_x)) * 0.5
                prob_y = (prob_y + simdr_probabilities(flip_y)) * 0.5
        return prob_x, prob_y

    def forward(self, batch):
        return self.probabilities(batch)

    def infer(self, batch) -> CropKeypoints:
        return self.decode(self.forward(batch))

    def decode(self, probabilities) -> CropKeypoints:
        """(prob_x, prob_y) tensors → keypoints in input pixels."""
        prob_x, prob_y = probabilities
        if self.decode_on_device:
            from .device_decode import decode_simdr_on_device

            coords, scores = decode_simdr_on_device(prob_x, prob_y, self.split_ratio)
        else:
            coords, scores = decode_simdr(prob_x.float().cpu(), prob_y.float().cpu(), self.split_ratio)
        return CropKeypoints(coords, scores, self.crop.input_size_wh)


def load_topdown_model(path: str | Path, *, flip_test: bool = True, use_dark: bool = False,
                       device="cpu") -> HeatmapTopDownModel | SimDRTopDownModel:
    """A top-down model from an HRNet or SimDR checkpoint (any supported upstream layout).

    Raises CheckpointError for a bottom-up (HigherHRNet) or unknown file,
    ConfigError for ``use_dark`` with a SimDR model.
    """
    from .checkpoints import load_pose_model

    network, spec = load_pose_model(path, device=device)
    crop = CropSpec(input_size_wh=spec.input_size_wh)
    if spec.head.kind == "heatmap":
        return HeatmapTopDownModel(network, crop, flip_test=flip_test, use_dark=use_dark)
    if spec.head.kind == "simdr":
        if use_dark:
            raise ConfigError(f"use_dark: applies to heatmap models, {path} is {spec.name}; set use_dark = false")
        return SimDRTopDownModel(network, crop, flip_test=flip_test)
    raise CheckpointError(f"{path}: is a bottom-up {spec.name} checkpoint, not a top-down one; "
                          "use it with the higherhrnet_pose step")
