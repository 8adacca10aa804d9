"""MoveNet as a top-down model for :class:`~streampose.topdown.estimator.TopDownEstimator`.

The estimator owns the flow (boxes → crops → batched forward → map back);
this adapter only says how MoveNet wants its crops and decodes its output:

- crops: square 192x192, 1.25x the box's longer side (the recipe the TFLite
  pipeline of ``../shared/SOURCES.md`` was scored with), RGB, normalised as
  the release does (``(u8 - 127) / 127.5``);
- output: MoveNet's (y, x, score) in [0, 1] of the crop becomes (x, y) in
  crop pixels;
- optional int8-faithful mode (``quantized=True``): the network runs as
  :class:`~streampose.models.movenet.int8.MoveNetInt8`, reproducing the
  TFLite runtime's keypoints exactly (float mode: 3.8 px mean away from them
  at 192x192, for about half the time per crop);
- optional flip test (not part of the original pipeline; off by default):
  the mirrored crop goes through the same forward pass, its keypoints are
  mirrored back with left/right swapped, and both predictions' coordinates
  and scores are averaged (COCO AP on ``../shared/coco`` with ground-truth
  boxes: 0.590 without, 0.629 with, for twice the pose time).

Example::

    estimator = TopDownEstimator(load_movenet_topdown("weights/movenet_lightning.pth"))
    poses = estimator.predict(image_bgr, xyxy)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...records import COCO_FLIP_INDEX
from ..protocols import CropKeypoints, CropSpec
from ..checkpoint import load_exactly, load_state_dict_file, shapes_match
from .network import VARIANTS, build_movenet

DEFAULT_POSE_WEIGHTS = "weights/movenet_lightning.pth"


def quantization_file(weights: str | Path) -> Path:
    """The int8 grids that go with a converted weights file: ``<stem>_quant.pth`` beside it."""
    weights = Path(weights)
    return weights.with_name(f"{weights.stem}_quant{weights.suffix}")


def movenet_crop(variant: str = "lightning") -> CropSpec:
    """The crops a MoveNet variant takes."""
    spec = VARIANTS[variant]
    size = spec.input_size
    return CropSpec(input_size_wh=(size, size), padding=1.25, mean=(spec.input_mean / 255,) * 3,
                    std=(spec.input_std / 255,) * 3, rgb=True)


class MoveNetTopDownModel:
    """A MoveNet network plus its in-graph decoding, as a :class:`~streampose.models.protocols.TopDownPoseModel`."""

    def __init__(self, network, variant: str = "lightning", *, flip_test: bool = False) -> None:
        import torch

        # Channels-last runs MobileNet's depthwise convolutions about 25% faster on CPU.
        self.network = network.eval().to(memory_format=torch.channels_last)
        self.crop = movenet_crop(variant)
        self.num_keypoints = network.spec.num_keypoints
        self.device = next(network.parameters()).device
        self.flip_test = flip_test
        if flip_test and self.num_keypoints != len(COCO_FLIP_INDEX):
            raise ValueError(f"flip_test needs the COCO-17 keypoints, the network has {self.num_keypoints}")

    def forward(self, batch):
        """batch: (N, 3, S, S) normalised RGB crops → the four head maps (of 2N crops with the flip test)."""
        import torch

        if self.flip_test:
            batch = torch.cat((batch, batch.flip(3)))
        with torch.inference_mode():
            return self.network(batch.contiguous(memory_format=torch.channels_last))

    def decode(self, maps) -> CropKeypoints:
        """Head maps → (x, y) in crop pixels and scores (flip-averaged with the flip test)."""
        import torch

        from .decode import decode_single_pose

        with torch.inference_mode():
            yxs = decode_single_pose(*maps, rounding=getattr(self.network, "decode_rounding", None),
                                     distance_bias=self.network.spec.distance_bias).cpu().numpy()
        w, h = self.crop.input_size_wh
        coords = np.stack((yxs[..., 1] * w, yxs[..., 0] * h), axis=-1).astype(np.float32)
        scores = yxs[..., 2].astype(np.float32)
        if self.flip_test:
            n = len(coords) // 2
            mirrored = coords[n:, list(COCO_FLIP_INDEX)]
            mirrored[..., 0] = w - mirrored[..., 0]
            coords = (coords[:n] + mirrored) * np.float32(0.5)
            scores = (scores[:n] + scores[n:, list(COCO_FLIP_INDEX)]) * np.float32(0.5)
        return CropKeypoints(coords, scores, (w, h))

    def infer(self, batch) -> CropKeypoints:
        """batch: (N, 3, S, S) normalised RGB crops → (x, y) in crop pixels and scores."""
        return self.decode(self.forward(batch))


def load_movenet_topdown(path: str | Path = DEFAULT_POSE_WEIGHTS, *, flip_test: bool = False,
                         quantized: bool = False, device="cpu") -> MoveNetTopDownModel:
    """MoveNet (Lightning or Thunder, told apart by the tensors' shapes) from a converted state dict
    (``scripts/convert_movenet.py``, ``scripts/convert_movenet_tfjs.py``).

    quantized: run the int8-faithful network (Lightning), with the grids of
    :func:`quantization_file` (written by the same script).
    Raises UserError / CheckpointError (one line) for a missing or unfit file.
    """
    import torch

    from ...errors import CheckpointError
    from .int8 import MoveNetInt8

    hint = "convert Google's release with scripts/convert_movenet.py or scripts/convert_movenet_tfjs.py"
    state = load_state_dict_file(path, "MoveNet weights", hint)
    if any(k.startswith("box_scale.") for k in state):  # the person box heads only MultiPose has
        raise CheckpointError(f"MoveNet weights {str(path)!r} are MoveNet MultiPose (bottom-up, whole frames), "
                              "not a top-down model; run them with the movenet_multipose step or --pose-model")
    variant = next((v for v in VARIANTS if shapes_match(build_movenet(v), state)), "lightning")
    network = build_movenet(variant)
    load_exactly(network, state, path, "MoveNet weights")
    if quantized and variant != "lightning":
        raise CheckpointError(f"quantized: the int8-faithful mode is for MoveNet Lightning; {str(path)!r} is "
                              f"{variant}; set quantized = false")
    if quantized:
        quant_path = quantization_file(path)
        quant = load_state_dict_file(quant_path, "MoveNet int8 grids", hint)
        try:
            network = MoveNetInt8(network, quant)
        except ValueError as e:
            raise CheckpointError(f"MoveNet int8 grids {str(quant_path)!r} do not fit {str(path)!r}: {e}") from e
    return MoveNetTopDownModel(network.to(torch.device(device)), variant, flip_test=flip_test)
