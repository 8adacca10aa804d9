"""MoveNet SinglePose (Lightning, Thunder) and MultiPose (Lightning) in PyTorch: MobileNetV2 + FPN +
CenterNet-style heads.

The network is reconstructed from Google's TFLite release
(``movenet_singlepose_lightning`` v4, Apache-2.0; model card:
https://storage.googleapis.com/movenet/MoveNet.SinglePose%20Model%20Card.pdf):
the operators and tensors of that graph give

- input: RGB; the graph normalises it to ``(x - 127) / 127.5`` (nominally
  ``x / 127.5 - 1``, but its uint8 → int8 input quantization shifts it by
  one grey level; we follow the graph: ``INPUT_MEAN``, ``INPUT_STD``);
- backbone: Keras MobileNetV2 (width 1.0, ReLU6, TF "SAME" padding, which
  pads stride-2 convolutions on the bottom/right only), tapped after
  block_2 (stride 4), block_5 (8), block_9 (16) and the final 1280-channel
  1x1 convolution (32);
- neck: an FPN: 1x1 lateral convolutions, bilinear 2x upsampling
  (half-pixel centres), add, then a separable 3x3 convolution with ReLU;
- four heads on the stride-4 map, each a separable 3x3 convolution to 96
  channels with ReLU and a 1x1 output convolution: person centre (1,
  sigmoid), keypoint heatmaps (17, sigmoid), keypoint offsets (17 x (dy, dx))
  and keypoint regression from the centre (17 x (dy, dx)).

Batch norm is folded into the convolutions in the release, so every
convolution here has a bias. ``MoveNetNet.forward`` takes the normalised
input and returns the four head maps; the graph's own decoding is
:mod:`streampose.models.movenet.decode`, and :class:`MoveNetSinglePose`
chains normalisation, network and decoding to give what the TFLite model
gives: uint8-range RGB in, ``(B, 17, 3)`` rows of (y, x, score) out, y and x
in [0, 1] of the input.

MultiPose Lightning (tfhub.dev/google/tfjs-model/movenet/multipose/lightning/1
as TF.js stores it, converted by ``scripts/convert_movenet_tfjs.py --model
multipose``) is the same backbone and FPN at width 1.5 with two more heads,
person box size (2: height, width) and box-centre offset (2: dy, dx), both in
heatmap cells; the graph takes any input whose sides are multiples of 32.
:class:`MoveNetMultiPoseNet` returns its six maps; the graph's own decoding of
them (up to 6 people) is the NumPy function
:func:`streampose.models.movenet.multipose_decode.decode_multi_pose`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...keypoint_sets import COCO_17


#: input normalisation of the Lightning release: ``(rgb - INPUT_MEAN) / INPUT_STD``, rgb in 0-255.
INPUT_MEAN = 127.0
INPUT_STD = 127.5


@dataclass(frozen=True)
class MoveNetSpec:
    """A MoveNet single-pose variant.

    input_size: square input in pixels; width: MobileNetV2 width multiplier
    (1.0 Lightning, 1.75 Thunder); input_mean / input_std: the graph's input
    normalisation ``(rgb - mean) / std`` (rgb 0-255); distance_bias and
    float16_centre_weight: the decoding constants as the graph stores them.
    """

    input_size: int = 192
    num_keypoints: int = COCO_17.num_keypoints
    head_channels: int = 96
    width: float = 1.0
    input_mean: float = INPUT_MEAN
    input_std: float = INPUT_STD
    distance_bias: float = 1.8
    float16_centre_weight: bool = False


# The Thunder graph (float16 constants) normalises as rgb * float16(1 / 127.5) - 1, i.e. (rgb - 1 / s) / (1 / s).
_THUNDER_INPUT_SCALE = 1.0 / float(np.float16(1 / 127.5))


VARIANTS: dict[str, MoveNetSpec] = {
    "lightning": MoveNetSpec(input_size=192),
    # tfhub.dev/google/movenet/singlepose/thunder/4 as TF.js stores it (constants checked by the converter).
    "thunder": MoveNetSpec(input_size=256, width=1.75, input_mean=_THUNDER_INPUT_SCALE,
                           input_std=_THUNDER_INPUT_SCALE, distance_bias=float(np.float16(1.8)),
                           float16_centre_weight=True),
}

# MobileNetV2 inverted-residual settings (expansion t, channels c, repeats n, first stride s),
# Sandler et al. 2018, Table 2.
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1))
# Blocks whose outputs feed the FPN (strides 4, 8, 16).
_TAPS = (2, 5, 9)


class TFSameConv(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (extra row/column at the bottom/right)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        # At stride 1 with an odd kernel "SAME" is symmetric, so the convolution pads by itself.
        self._pad_in_forward = stride > 1 or kernel % 2 == 0
        padding = 0 if self._pad_in_forward else (kernel - 1) // 2
        super().__init__(in_ch, out_ch, kernel, stride, padding=padding, groups=groups, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad_in_forward:
            k, s = self.kernel_size[0], self.stride[0]
            pads = []
            for size in (x.shape[-1], x.shape[-2]):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class ConvAct(nn.Module):
    """TF-padded convolution followed by an optional activation ("relu6", "relu" or "")."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str = "") -> None:
        super().__init__()
        self.conv = TFSameConv(in_ch, out_ch, kernel, stride, groups)
        self.act = {"relu6": nn.ReLU6(inplace=True), "relu": nn.ReLU(inplace=True), "": nn.Identity()}[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 project."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.expand = ConvAct(in_ch, hidden, 1, act="relu6") if expansion != 1 else nn.Identity()
        self.depthwise = ConvAct(hidden, hidden, 3, stride, groups=hidden, act="relu6")
        self.project = ConvAct(hidden, out_ch, 1)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


def make_divisible(value: float, divisor: int = 8) -> int:
    """Keras MobileNetV2's channel rounding (nearest multiple of 8, never below 90% of ``value``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class MobileNetV2Features(nn.Module):
    """Returns feature maps at strides 4, 8, 16 and 32 (width 1.0: 24, 32, 64 and 1280 channels).

    width: the multiplier of every block's channels (Keras ``alpha``); the
    last 1x1 convolution keeps 1280 channels in both releases.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        stem = make_divisible(32 * width)
        self.stem = ConvAct(3, stem, 3, 2, act="relu6")
        blocks, in_ch = [], stem
        for t, c, n, s in _MOBILENET_V2:
            out_ch = make_divisible(c * width)
            for i in range(n):
                blocks.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.last = ConvAct(in_ch, 1280, 1, act="relu6")
        self.tap_channels = tuple(blocks[i].project.conv.out_channels for i in _TAPS) + (1280,)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in _TAPS:
                taps.append(x)
        taps.append(self.last(x))
        return taps


class SeparableConv(nn.Module):
    """Depthwise 3x3 (linear) then pointwise 1x1 with ReLU, as Keras SeparableConv2D."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.depthwise = ConvAct(in_ch, in_ch, 3, groups=in_ch)
        self.pointwise = ConvAct(in_ch, out_ch, 1, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class FPN(nn.Module):
    """Top-down merge of the four backbone maps into one stride-4, 24-channel map."""

    def __init__(self, tap_channels: tuple[int, int, int, int] = (24, 32, 64, 1280)) -> None:
        super().__init__()
        self.lateral = nn.ModuleList([ConvAct(c, out) for c, out in zip(tap_channels, (24, 32, 64, 64))])
        self.smooth = nn.ModuleList([SeparableConv(24, 24), SeparableConv(32, 24), SeparableConv(64, 32)])

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[3](feats[3])
        for level in (2, 1, 0):
            lateral = self.lateral[level](feats[level])
            x = F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            x = self.smooth[level](x + lateral)
        return x


class Head(nn.Module):
    def __init__(self, in_ch: int, hidden: int, out_ch: int) -> None:
        super().__init__()
        self.hidden = SeparableConv(in_ch, hidden)
        self.out = ConvAct(hidden, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


class MoveNetNet(nn.Module):
    """(B, 3, S, S) normalised RGB (``(rgb - INPUT_MEAN) / INPUT_STD``) → centre (B, 1, S/4, S/4) and keypoint heatmaps (B, K, ., .),
    both after sigmoid, offsets and regression (B, 2K, ., .) in heatmap cells, (dy, dx) per keypoint.
    """

    def __init__(self, spec: MoveNetSpec = VARIANTS["lightning"]) -> None:
        super().__init__()
        self.spec = spec
        k, hidden = spec.num_keypoints, spec.head_channels
        if spec.float16_centre_weight:
            self.decode_rounding = _float16_centre_weight
        self.backbone = MobileNetV2Features(spec.width)
        self.fpn = FPN(self.backbone.tap_channels)
        self.center = Head(24, hidden, 1)
        self.keypoint_heatmap = Head(24, hidden, k)
        self.keypoint_offset = Head(24, hidden, 2 * k)
        self.keypoint_regress = Head(24, hidden, 2 * k)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.fpn(self.backbone(images))
        return (self.center(x).sigmoid(), self.keypoint_heatmap(x).sigmoid(),
                self.keypoint_offset(x), self.keypoint_regress(x))


#: MoveNet MultiPose variants. Lightning: the TF.js graph's width (stem 48 channels = 32 x 1.5) and input
#: normalisation (the same float16 constants as Thunder's); input_size is Google's recommended longer side.
MULTIPOSE_VARIANTS: dict[str, MoveNetSpec] = {
    "lightning": MoveNetSpec(input_size=256, width=1.5, input_mean=_THUNDER_INPUT_SCALE,
                             input_std=_THUNDER_INPUT_SCALE),
}

#: the stride of MoveNet's output maps, and the multiple of 32 every MultiPose input side must be.
OUTPUT_STRIDE = 4
INPUT_MULTIPLE = 32


class MoveNetMultiPoseNet(MoveNetNet):
    """(B, 3, H, W) normalised RGB, H and W multiples of 32 → six maps on the stride-4 grid:
    centre (B, 1, ., .) and keypoint heatmaps (B, K, ., .) after sigmoid; keypoint offsets and
    regression (B, 2K, ., .), (dy, dx) per keypoint; box size (B, 2, ., .) (height, width) and
    box-centre offset (B, 2, ., .) (dy, dx); all vectors in heatmap cells.
    """

    def __init__(self, spec: MoveNetSpec = MULTIPOSE_VARIANTS["lightning"]) -> None:
        super().__init__(spec)
        self.box_scale = Head(24, spec.head_channels, 2)
        self.box_offset = Head(24, spec.head_channels, 2)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.fpn(self.backbone(images))
        return (self.center(x).sigmoid(), self.keypoint_heatmap(x).sigmoid(), self.keypoint_offset(x),
                self.keypoint_regress(x), self.box_scale(x), self.box_offset(x))


def build_movenet_multipose(variant: str = "lightning") -> MoveNetMultiPoseNet:
    """A MoveNet MultiPose network of a named variant (see ``MULTIPOSE_VARIANTS``), randomly initialised."""
    if variant not in MULTIPOSE_VARIANTS:
        raise ValueError(f"unknown MoveNet MultiPose variant {variant!r}; known: {sorted(MULTIPOSE_VARIANTS)}")
    return MoveNetMultiPoseNet(MULTIPOSE_VARIANTS[variant])


def _float16_centre_weight(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """The Thunder graph stores the centre weighting as a float16 constant; everything else is float32."""
    return tensor.half().float() if name == "centre_weight" else tensor


class MoveNetSinglePose(nn.Module):
    """Network plus in-graph decoding: (B, 3, S, S) RGB 0-255 → (B, K, 3) (y, x, score), y/x in [0, 1]."""

    def __init__(self, net: MoveNetNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from .decode import decode_single_pose

        spec = self.net.spec
        return decode_single_pose(*self.net((images - spec.input_mean) / spec.input_std),
                                  rounding=getattr(self.net, "decode_rounding", None), distance_bias=spec.distance_bias)


def build_movenet(variant: str = "lightning") -> MoveNetNet:
    """A MoveNet network of a named variant (see ``VARIANTS``), randomly initialised."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MoveNet variant {variant!r}; known: {sorted(VARIANTS)}")
    return MoveNetNet(VARIANTS[variant])
