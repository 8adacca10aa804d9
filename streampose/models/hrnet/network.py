"""HRNet backbone and the three pose heads built on it (PoseHRNet, SimDR, HigherHRNet).

Architecture facts (layer layout, channel widths, block counts, the order in
which branches are fused) follow the papers and the official definitions:

- HRNet top-down, Sun et al. 2019, ``leoxiaobin/deep-high-resolution-net.pytorch``
  ``lib/models/pose_hrnet.py`` (config ``experiments/coco/hrnet/w{32,48}_256x192_*.yaml``);
- SimDR, Li et al. 2022, ``leeyegy/SimDR`` ``lib/models/pose_hrnet.py``
  (``COORD_REPRESENTATION: simdr``, ``SIMDR_SPLIT_RATIO: 2.0``);
- HigherHRNet, Cheng et al. 2020, ``HRNet/HigherHRNet-Human-Pose-Estimation``
  ``lib/models/pose_higher_hrnet.py`` (config ``experiments/coco/higher_hrnet/*.yaml``).

The code is written here. Widths and heads are data (:class:`HRNetSpec`, the
head specs and :class:`PoseNetSpec`), and one :class:`PoseNetwork` builds any
of them. Module attribute names inside the backbone and the heads are the
official ones, so an official state dict maps onto ours by prefixing
``backbone.`` / ``head.`` (see :mod:`streampose.models.hrnet.checkpoints`).

Outputs of :meth:`PoseNetwork.forward` for an input (N, 3, H, W):

- heatmap head: heatmaps (N, K, H/4, W/4);
- SimDR head: (x logits (N, K, W*r), y logits (N, K, H*r)) with r the split ratio;
- HigherHRNet head: [(N, K + T, H/4, W/4) heatmaps + tag maps, (N, K, H/2, W/2) heatmaps].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import torch
from torch import nn

from ...keypoint_sets import COCO_17, CROWDPOSE_14

_BN_MOMENTUM = 0.1  # official BN_MOMENTUM; irrelevant at inference, kept for training parity


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class HRNetSpec:
    """An HRNet backbone: stem, a Bottleneck stage, then stages of parallel branches.

    width: channels of the highest-resolution branch (32 or 48); branch i of
    stages 2-4 has ``width * 2**i`` channels. stage_modules: number of
    high-resolution modules of stages 2, 3, 4 (stage s has s branches).
    """

    width: int
    stem_channels: int = 64
    layer1_blocks: int = 4
    stage_modules: tuple[int, ...] = (1, 4, 3)
    blocks_per_branch: int = 4

    def branch_channels(self, num_branches: int) -> list[int]:
        return [self.width * 2**i for i in range(num_branches)]


@dataclass(frozen=True)
class HeatmapHeadSpec:
    """PoseHRNet: a 1x1 conv from the highest-resolution branch to K heatmaps at 1/4 input."""

    num_joints: int = COCO_17.num_keypoints
    kind: str = field(default="heatmap", init=False)


@dataclass(frozen=True)
class SimDRHeadSpec:
    """SimDR: the heatmap conv, flattened, then two linear layers to 1-D x and y logits.

    input_size_wh: the crop the network was trained on; the linear layers'
    sizes depend on it (in: (H/4)*(W/4), out: W*split_ratio and H*split_ratio).
    """

    num_joints: int = COCO_17.num_keypoints
    input_size_wh: tuple[int, int] = (192, 256)
    split_ratio: float = 2.0
    kind: str = field(default="simdr", init=False)

    @property
    def head_input(self) -> int:
        w, h = self.input_size_wh
        return (w // 4) * (h // 4)

    @property
    def bins_xy(self) -> tuple[int, int]:
        w, h = self.input_size_wh
        return int(w * self.split_ratio), int(h * self.split_ratio)


@dataclass(frozen=True)
class HigherHRNetHeadSpec:
    """HigherHRNet: 1/4 output of K heatmaps + T tags, then a stride-2 deconv stage.

    The 1/4 output is concatenated with the features into a 4x4 stride-2
    transposed conv (+ BN, ReLU) and ``num_basic_blocks`` BasicBlocks, and a
    1x1 conv gives K heatmaps at 1/2 resolution. tag_dim: K with tags per
    joint (the released models), 1 otherwise. deconv_channels: None means the
    backbone width (official: 32 for w32, 48 for w48).
    """

    num_joints: int = COCO_17.num_keypoints
    tag_dim: int = COCO_17.num_keypoints
    deconv_channels: int | None = None
    deconv_kernel: int = 4
    num_basic_blocks: int = 4
    kind: str = field(default="higherhrnet", init=False)


HeadSpec = Union[HeatmapHeadSpec, SimDRHeadSpec, HigherHRNetHeadSpec]


@dataclass(frozen=True)
class PoseNetSpec:
    """A complete pose network: a backbone, a head and the input it expects.

    input_size_wh: top-down models: the crop (w, h); bottom-up: (s, s) with s
    the size the shorter image side is resized to (512 or 640).
    """

    name: str
    backbone: HRNetSpec
    head: HeadSpec
    input_size_wh: tuple[int, int]
    #: the upstream checkpoint family the weights came from ("" for a freshly built network).
    family: str = ""

    @property
    def num_joints(self) -> int:
        return self.head.num_joints


#: Backbone widths, as data.
HRNET_WIDTHS: dict[int, HRNetSpec] = {32: HRNetSpec(width=32), 48: HRNetSpec(width=48)}


# --------------------------------------------------------------------------- blocks


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=_BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (expansion 1)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = _bn(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 → 3x3 → 1x1 (x4 expansion) with a residual connection."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, kernel_size=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = _bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def _residual_stack(block: type[nn.Module], in_ch: int, planes: int, num_blocks: int) -> nn.Sequential:
    out_ch = planes * block.expansion
    downsample = None
    if in_ch != out_ch:
        downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False), _bn(out_ch))
    layers = [block(in_ch, planes, 1, downsample)]
    layers += [block(out_ch, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by the exchange (fuse) of all branches.

    Fusing into branch i: higher-resolution inputs j < i go through i - j
    stride-2 3x3 convs, lower-resolution inputs j > i through a 1x1 conv and
    nearest upsampling by 2**(j - i); the sum goes through a ReLU. With
    ``multi_scale_output=False`` only branch 0 is produced (last module of
    the network).
    """

    def __init__(self, channels: list[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            _residual_stack(BasicBlock, c, c, num_blocks) for c in channels
        )
        self.fuse_layers = self._make_fuse_layers(channels, multi_scale_output) if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=False)

    @staticmethod
    def _make_fuse_layers(channels: list[int], multi_scale_output: bool) -> nn.ModuleList:
        n = len(channels)
        fuse_layers = []
        for i in range(n if multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(
                        nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False),
                        _bn(channels[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                    ))
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out_ch = channels[i] if last else channels[j]
                        layers = [_conv3x3(channels[j], out_ch, stride=2), _bn(out_ch)]
                        if not last:
                            layers.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*layers))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(nn.ModuleList(row))
        return nn.ModuleList(fuse_layers)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            fused.append(self.relu(y))
        return fused


def _transition(in_channels: list[int], out_channels: list[int]) -> nn.ModuleList:
    """Adapt branch channels between stages and open a new, half-resolution branch."""
    layers: list[nn.Module | None] = []
    for i, out_ch in enumerate(out_channels):
        if i < len(in_channels):
            if out_ch != in_channels[i]:
                layers.append(nn.Sequential(_conv3x3(in_channels[i], out_ch), _bn(out_ch), nn.ReLU(inplace=True)))
            else:
                layers.append(None)
        else:
            steps = []
            for j in range(i + 1 - len(in_channels)):
                last = j == i - len(in_channels)
                src = in_channels[-1]
                dst = out_ch if last else src
                steps.append(nn.Sequential(_conv3x3(src, dst, stride=2), _bn(dst), nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNetBackbone(nn.Module):
    """HRNet from a :class:`HRNetSpec`; returns the highest-resolution features (N, width, H/4, W/4)."""

    def __init__(self, spec: HRNetSpec):
        super().__init__()
        self.spec = spec
        stem = spec.stem_channels
        self.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(stem)
        self.conv2 = nn.Conv2d(stem, stem, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = _bn(stem)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _residual_stack(Bottleneck, stem, 64, spec.layer1_blocks)

        previous = [64 * Bottleneck.expansion]
        last_stage = len(spec.stage_modules) + 1
        for stage, num_modules in enumerate(spec.stage_modules, start=2):
            channels = spec.branch_channels(stage)
            setattr(self, f"transition{stage - 1}", _transition(previous, channels))
            modules = [
                HighResolutionModule(
                    channels, spec.blocks_per_branch,
                    multi_scale_output=not (stage == last_stage and m == num_modules - 1),
                )
                for m in range(num_modules)
            ]
            setattr(self, f"stage{stage}", nn.Sequential(*modules))
            previous = channels
        self._num_stages = len(spec.stage_modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        ys = [x]
        for stage in range(2, self._num_stages + 2):
            transition = getattr(self, f"transition{stage - 1}")
            # A new branch grows from the lowest-resolution output of the previous stage.
            xs = []
            for i, t in enumerate(transition):
                source = ys[i] if i < len(ys) else ys[-1]
                xs.append(source if t is None else t(source))
            ys = getattr(self, f"stage{stage}")(xs)
        return ys[0]


# --------------------------------------------------------------------------- heads


class HeatmapHead(nn.Module):
    def __init__(self, spec: HeatmapHeadSpec, in_channels: int):
        super().__init__()
        self.final_layer = nn.Conv2d(in_channels, spec.num_joints, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.final_layer(features)


class SimDRHead(nn.Module):
    def __init__(self, spec: SimDRHeadSpec, in_channels: int):
        super().__init__()
        bins_x, bins_y = spec.bins_xy
        self.final_layer = nn.Conv2d(in_channels, spec.num_joints, kernel_size=1)
        self.mlp_head_x = nn.Linear(spec.head_input, bins_x)
        self.mlp_head_y = nn.Linear(spec.head_input, bins_y)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = torch.flatten(self.final_layer(features), 2)
        return self.mlp_head_x(maps), self.mlp_head_y(maps)


class HigherHRNetHead(nn.Module):
    def __init__(self, spec: HigherHRNetHeadSpec, in_channels: int):
        super().__init__()
        if spec.deconv_kernel != 4:
            raise ValueError(f"deconv_kernel: only 4 (the released models) is supported, got {spec.deconv_kernel}")
        first_out = spec.num_joints + spec.tag_dim
        deconv_ch = spec.deconv_channels or in_channels
        self.final_layers = nn.ModuleList([
            nn.Conv2d(in_channels, first_out, kernel_size=1),
            nn.Conv2d(deconv_ch, spec.num_joints, kernel_size=1),
        ])
        stage = [nn.Sequential(
            nn.ConvTranspose2d(in_channels + first_out, deconv_ch, kernel_size=4, stride=2, padding=1,
                               output_padding=0, bias=False),
            _bn(deconv_ch),
            nn.ReLU(inplace=True),
        )]
        stage += [nn.Sequential(BasicBlock(deconv_ch, deconv_ch)) for _ in range(spec.num_basic_blocks)]
        self.deconv_layers = nn.ModuleList([nn.Sequential(*stage)])

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        quarter = self.final_layers[0](features)
        x = self.deconv_layers[0](torch.cat((features, quarter), 1))
        return [quarter, self.final_layers[1](x)]


_HEADS = {"heatmap": HeatmapHead, "simdr": SimDRHead, "higherhrnet": HigherHRNetHead}


class PoseNetwork(nn.Module):
    """Backbone + head; state-dict keys are ``backbone.<official>`` and ``head.<official>``."""

    def __init__(self, spec: PoseNetSpec):
        super().__init__()
        self.spec = spec
        self.backbone = HRNetBackbone(spec.backbone)
        self.head = _HEADS[spec.head.kind](spec.head, spec.backbone.width)

    def forward(self, x: torch.Tensor):
        return self.head(self.backbone(x))


def build_network(spec: PoseNetSpec, *, device=None) -> PoseNetwork:
    """A network in eval mode with freshly initialised weights.

    ``device="meta"`` builds it without allocating or initialising weights
    (for loading a checkpoint right after: ``model.to_empty(device=...)``).
    """
    if device is None:
        return PoseNetwork(spec).eval()
    with torch.device(device):
        return PoseNetwork(spec).eval()


# --------------------------------------------------------------------------- registry


def _topdown(name: str, width: int, head: HeadSpec) -> PoseNetSpec:
    return PoseNetSpec(name, HRNET_WIDTHS[width], head, (192, 256))


def _bottomup(name: str, width: int, size: int, num_joints: int = COCO_17.num_keypoints) -> PoseNetSpec:
    head = HigherHRNetHeadSpec(num_joints=num_joints, tag_dim=num_joints)
    return PoseNetSpec(name, HRNET_WIDTHS[width], head, (size, size))


#: Suffix of the CrowdPose releases' names (the official files share the COCO names, in ``pose_crowdpose/``).
CROWDPOSE_SUFFIX = "_crowdpose"


#: Every registered network, by name (the official release names).
HRNET_MODELS: dict[str, PoseNetSpec] = {
    spec.name: spec
    for spec in (
        _topdown("pose_hrnet_w32_256x192", 32, HeatmapHeadSpec()),
        _topdown("pose_hrnet_w48_256x192", 48, HeatmapHeadSpec()),
        _topdown("simdr_hrnet_w32_256x192", 32, SimDRHeadSpec()),
        _topdown("simdr_hrnet_w48_256x192", 48, SimDRHeadSpec()),
        _bottomup("pose_higher_hrnet_w32_512", 32, 512),
        _bottomup("pose_higher_hrnet_w32_640", 32, 640),
        _bottomup("pose_higher_hrnet_w48_640", 48, 640),
        # CrowdPose (experiments/crowd_pose/higher_hrnet/w{32,48}_640_adam_lr1e-3.yaml): the same
        # networks with MODEL.NUM_JOINTS 14, so 28 channels at 1/4 (14 heatmaps + 14 tags), 14 at 1/2,
        # and a deconv input of width + 28 channels (CAT_OUTPUT).
        _bottomup("pose_higher_hrnet_w32_640" + CROWDPOSE_SUFFIX, 32, 640, CROWDPOSE_14.num_keypoints),
        _bottomup("pose_higher_hrnet_w48_640" + CROWDPOSE_SUFFIX, 48, 640, CROWDPOSE_14.num_keypoints),
    )
}


def build_model(name: str) -> PoseNetwork:
    """Build a registered network (random weights, eval mode); KeyError lists the names."""
    try:
        spec = HRNET_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(HRNET_MODELS)}") from None
    return build_network(spec)
