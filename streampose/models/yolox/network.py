"""YOLOX-style detectors (CSPDarknet + PAFPN + decoupled head), inference form.

Architecture facts from Megvii's YOLOX (Ge et al. 2021, "YOLOX: Exceeding YOLO
Series in 2021", github.com/Megvii-BaseDetection/YOLOX, Apache-2.0): a Focus
stem (space-to-depth then 3x3 conv), CSP stages with SPP at the bottom, a PAN
neck, and a decoupled head per stride (8, 16, 32) with separate
classification and regression/objectness branches; SiLU everywhere; the
"nano" variant (depth 0.33, width 0.25) uses depthwise-separable convolutions.

The bundled checkpoints come from ONNX exports in which batch norm was folded
into the convolutions, so every convolution here carries a bias and there is
no BatchNorm layer: this is the deployable form, not a training form.

``YoloxNet.forward`` returns the raw head output ``(B, N, 5 + C)`` exactly as
the ONNX export does: per anchor point ``(dx, dy, log_w, log_h)`` regression,
objectness probability, then C class probabilities; points ordered stride 8
rows first, then 16, then 32. Decoding (grid, exp, NMS) lives in
:mod:`streampose.models.yolox.decode`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class YoloxSpec:
    """One YOLOX variant: scaling factors and class count.

    depth, width: YOLOX's multipliers of the base (3 blocks per CSP stage,
    64 stem channels); depthwise: separable convolutions (nano);
    num_classes: 1 for a person-only model, 80 for COCO.
    """

    depth: float
    width: float
    depthwise: bool
    num_classes: int

    @property
    def channels(self) -> tuple[int, int, int, int, int]:
        """Channels of stem, dark2, dark3, dark4, dark5."""
        base = int(self.width * 64)
        return base, base * 2, base * 4, base * 8, base * 16

    @property
    def blocks(self) -> int:
        return max(round(self.depth * 3), 1)


STRIDES: tuple[int, ...] = (8, 16, 32)

VARIANTS: dict[str, YoloxSpec] = {
    # Kazuhito00's light person detector: nano layout, one class, 192x192 input.
    "nano_person": YoloxSpec(depth=0.33, width=0.25, depthwise=True, num_classes=1),
    # Megvii's YOLOX-Nano, COCO-80, 416x416 input.
    "nano": YoloxSpec(depth=0.33, width=0.25, depthwise=True, num_classes=80),
}


class ConvAct(nn.Module):
    """Convolution (batch norm folded in, so with bias) followed by SiLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=True)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class SeparableConvAct(nn.Module):
    """Depthwise kxk convolution then pointwise 1x1, each with SiLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.dconv = ConvAct(in_ch, in_ch, kernel, stride, groups=in_ch)
        self.pconv = ConvAct(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, depthwise: bool) -> nn.Module:
    if depthwise:
        return SeparableConvAct(in_ch, out_ch, kernel, stride)
    return ConvAct(in_ch, out_ch, kernel, stride)


class Focus(nn.Module):
    """Space-to-depth (2x2 pixel blocks to channels) then a 3x3 convolution."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = ConvAct(in_ch * 4, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channel order of YOLOX: top-left, bottom-left, top-right, bottom-right.
        x = torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), dim=1)
        return self.conv(x)


class Bottleneck(nn.Module):
    def __init__(self, channels: int, shortcut: bool, depthwise: bool) -> None:
        super().__init__()
        self.conv1 = ConvAct(channels, channels, 1)
        self.conv2 = _conv(channels, channels, 3, 1, depthwise)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    """Split into a bottleneck path and a 1x1 path, concatenate, fuse."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int, shortcut: bool, depthwise: bool) -> None:
        super().__init__()
        hidden = out_ch // 2
        self.conv1 = ConvAct(in_ch, hidden, 1)
        self.conv2 = ConvAct(in_ch, hidden, 1)
        self.blocks = nn.Sequential(*(Bottleneck(hidden, shortcut, depthwise) for _ in range(blocks)))
        self.conv3 = ConvAct(2 * hidden, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.conv1(x)
        side = self.conv2(x)
        return self.conv3(torch.cat((self.blocks(main), side), dim=1))


class SPP(nn.Module):
    """Spatial pyramid pooling: max pools of 5, 9, 13 concatenated with the input."""

    def __init__(self, in_ch: int, out_ch: int, kernels: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = in_ch // 2
        self.conv1 = ConvAct(in_ch, hidden, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernels)
        self.conv2 = ConvAct(hidden * (len(kernels) + 1), out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.pools], dim=1))


class CSPDarknet(nn.Module):
    """Backbone; returns the stride 8, 16 and 32 feature maps."""

    def __init__(self, spec: YoloxSpec) -> None:
        super().__init__()
        c0, c1, c2, c3, c4 = spec.channels
        n, dw = spec.blocks, spec.depthwise
        self.stem = Focus(3, c0)
        self.dark2 = nn.Sequential(_conv(c0, c1, 3, 2, dw), CSPLayer(c1, c1, n, True, dw))
        self.dark3 = nn.Sequential(_conv(c1, c2, 3, 2, dw), CSPLayer(c2, c2, 3 * n, True, dw))
        self.dark4 = nn.Sequential(_conv(c2, c3, 3, 2, dw), CSPLayer(c3, c3, 3 * n, True, dw))
        self.dark5 = nn.Sequential(_conv(c3, c4, 3, 2, dw), SPP(c4, c4), CSPLayer(c4, c4, n, False, dw))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        c5 = self.dark5(c4)
        return c3, c4, c5


class PAFPN(nn.Module):
    """Top-down then bottom-up path aggregation over the backbone's three maps."""

    def __init__(self, spec: YoloxSpec) -> None:
        super().__init__()
        _, _, c3, c4, c5 = spec.channels
        n, dw = spec.blocks, spec.depthwise
        self.lateral_conv0 = ConvAct(c5, c4, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, False, dw)
        self.reduce_conv1 = ConvAct(c4, c3, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, False, dw)
        self.bu_conv2 = _conv(c3, c3, 3, 2, dw)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False, dw)
        self.bu_conv1 = _conv(c4, c4, 3, 2, dw)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False, dw)

    def forward(self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        x2, x1, x0 = feats
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat((_upsample2(fpn_out0), x1), dim=1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat((_upsample2(fpn_out1), x2), dim=1))
        pan_out1 = self.C3_n3(torch.cat((self.bu_conv2(pan_out2), fpn_out1), dim=1))
        pan_out0 = self.C3_n4(torch.cat((self.bu_conv1(pan_out1), fpn_out0), dim=1))
        return [pan_out2, pan_out1, pan_out0]


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")


class HeadLevel(nn.Module):
    """Decoupled head of one stride: class branch and regression/objectness branch."""

    def __init__(self, in_ch: int, width: int, num_classes: int, depthwise: bool) -> None:
        super().__init__()
        self.stem = ConvAct(in_ch, width, 1)
        self.cls_convs = nn.Sequential(_conv(width, width, 3, 1, depthwise), _conv(width, width, 3, 1, depthwise))
        self.cls_pred = nn.Conv2d(width, num_classes, 1)
        self.reg_convs = nn.Sequential(_conv(width, width, 3, 1, depthwise), _conv(width, width, 3, 1, depthwise))
        self.reg_pred = nn.Conv2d(width, 4, 1)
        self.obj_pred = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        cls = self.cls_pred(self.cls_convs(x))
        reg_feat = self.reg_convs(x)
        reg = self.reg_pred(reg_feat)
        obj = self.obj_pred(reg_feat)
        return torch.cat((reg, obj.sigmoid(), cls.sigmoid()), dim=1)


class YoloxNet(nn.Module):
    """Backbone + neck + head; ``forward`` maps (B, 3, H, W) BGR 0-255 to (B, N, 5 + C).

    H and W must be multiples of 32.
    """

    def __init__(self, spec: YoloxSpec) -> None:
        super().__init__()
        self.spec = spec
        _, _, c3, c4, c5 = spec.channels
        self.backbone = CSPDarknet(spec)
        self.neck = PAFPN(spec)
        self.head = nn.ModuleList(HeadLevel(c, int(256 * spec.width), spec.num_classes, spec.depthwise)
                                  for c in (c3, c4, c5))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.neck(self.backbone(images))
        outputs = [level(f).flatten(2) for level, f in zip(self.head, feats)]
        return torch.cat(outputs, dim=2).permute(0, 2, 1)


def build_yolox(variant: str) -> YoloxNet:
    """A YOLOX net of a named variant (see ``VARIANTS``), randomly initialised."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown YOLOX variant {variant!r}; known: {sorted(VARIANTS)}")
    return YoloxNet(VARIANTS[variant])

