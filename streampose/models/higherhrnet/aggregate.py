"""HigherHRNet network outputs → the heatmaps and tags the parser reads.

The official test-time aggregation (HRNet/HigherHRNet-Human-Pose-Estimation,
``lib/core/inference.py``: ``get_multi_stage_outputs``, ``aggregate_results``;
``tools/valid.py``), for the COCO HigherHRNet models (w32-512, w32-640,
w48-640 all have ``LOSS.WITH_HEATMAPS_LOSS = (True, True)``, ``WITH_AE_LOSS =
(True, False)`` and the same test flags):

- the network returns ``[out0 (N, 2J, H/4, W/4), out1 (N, J, H/2, W/2)]``;
  out0 is upsampled bilinearly (``align_corners=False``) to out1's size;
- heatmaps = mean of out0[:, :J] and out1[:, :J]; tags = out0[:, J:2J];
- flip test: the same on the horizontally flipped input, every output flipped
  back along W and its channels reordered by the flip index (tags too); the
  two heatmaps are averaged, the flipped tags become a second tag channel;
- PROJECT2IMAGE: heatmaps and tags resized bilinearly to the input size of
  the scale-1 input (``base_size``);
- several scales: heatmaps summed over scales then divided by their number,
  tags of every scale (and flip) stacked along the last axis.

Torch in, torch out, on whatever device the network ran; the float32
operation order is the official one (bitwise equal on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...keypoint_sets import COCO_17


def _resize(maps, size_hw: tuple[int, int]):
    import torch.nn.functional as F

    return F.interpolate(maps, size=size_hw, mode="bilinear", align_corners=False)


def stage_maps(outputs, *, num_joints: int = COCO_17.num_keypoints, flipped: bool = False,
               flip_index: tuple[int, ...] = COCO_17.flip_index):
    """One forward pass → (heatmaps (N, J, h, w), tags (N, J, h, w)) at out1's resolution.

    outputs: the network's ``[out0, out1]``; flipped: the input was flipped
    horizontally, so flip the maps back and reorder joints by ``flip_index``.
    """
    import torch

    if len(outputs) != 2:
        raise ValueError(f"expected the two HigherHRNet outputs, got {len(outputs)}")
    out0, out1 = outputs
    if out0.shape[1] != 2 * num_joints or out1.shape[1] != num_joints:
        raise ValueError(f"expected {2 * num_joints} and {num_joints} channels, got {out0.shape[1]}, {out1.shape[1]}")
    out0 = _resize(out0, (out1.shape[2], out1.shape[3]))
    if flipped:
        out0 = torch.flip(out0, [3])
        out1 = torch.flip(out1, [3])
        index = list(flip_index)
        heatmaps = 0 + out0[:, :num_joints][:, index]
        heatmaps = heatmaps + out1[:, :num_joints][:, index]
        tags = out0[:, num_joints:][:, index]
    else:
        heatmaps = 0 + out0[:, :num_joints]
        heatmaps = heatmaps + out1[:, :num_joints]
        tags = out0[:, num_joints:]
    return heatmaps / 2, tags


@dataclass
class MapAccumulator:
    """Sums the maps of each test scale (official ``aggregate_results`` with PROJECT2IMAGE).

    size_wh: the base input size (scale 1) maps are projected to. Feed each
    scale with :meth:`add` (largest scale first, as the official loop), then
    :meth:`result`.
    """

    size_wh: tuple[int, int]
    _heatmaps: object = None
    _tags: list = field(default_factory=list)
    _num_scales: int = 0

    def add(self, heatmaps, tags, heatmaps_flip=None, tags_flip=None) -> None:
        """Add one scale: its stage maps, and those of the flipped input when flip-testing."""
        size_hw = (self.size_wh[1], self.size_wh[0])
        per_pass = [(heatmaps, tags)] + ([(heatmaps_flip, tags_flip)] if heatmaps_flip is not None else [])
        projected = [(_resize(h, size_hw), _resize(t, size_hw)) for h, t in per_pass]
        for _, t in projected:
            self._tags.append(t.unsqueeze(4))
        average = projected[0][0] if len(projected) == 1 else (projected[0][0] + projected[1][0]) / 2.0
        self._heatmaps = average if self._heatmaps is None else self._heatmaps + average
        self._num_scales += 1

    def result(self):
        """(heatmaps (N, J, H, W), tags (N, J, H, W, D)) at ``size_wh``."""
        import torch

        if self._num_scales == 0:
            raise ValueError("no scale was added")
        return self._heatmaps / float(self._num_scales), torch.cat(self._tags, dim=4)
