"""YOLOv5 detection network, built from the architecture dict a checkpoint carries.

Architecture facts (layer types, argument conventions, width/depth scaling,
decode formula) are from ultralytics/yolov5 (AGPL-3.0), ``models/yolo.py``
(``parse_model``, ``Detect``) and ``models/common.py``; the code is our own.
Both generations of released models are covered:

- v1-v5 era (e.g. the CrowdHuman YOLOv5m): ``Focus`` stem (space-to-depth
  then a conv), ``SPP`` with parallel 5/9/13 max-pools;
- v6.x / v7.0: a 6x6 stride-2 ``Conv`` stem and ``SPPF`` (three chained 5x5
  max-pools, same receptive field as SPP).

Module attribute names follow yolov5's so that its state-dict keys
(``model.<i>.cv1.conv.weight`` …) load unchanged.

``YoloV5Network.forward`` returns the decoded head output ``(B, N, 5 + C)``:
box centre x, y and width, height in input pixels, objectness, C class
probabilities (sigmoid), rows ordered level by level (stride 8, 16, 32),
within a level anchor-major, then grid y, then x, as yolov5's ``Detect``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError
from .checkpoint import Activation, YoloV5Checkpoint


def _autopad(kernel: int, padding: int | None, dilation: int = 1) -> int:
    if padding is not None:
        return padding
    kernel = dilation * (kernel - 1) + 1 if dilation > 1 else kernel
    return kernel // 2


def make_activation(activation: Activation) -> nn.Module:
    """The ``nn.Module`` for an :class:`Activation` record."""
    name = activation.name
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "hardswish":
        return nn.Hardswish(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(activation.negative_slope, inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "identity":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


class _Context:
    """Per-network construction settings every block needs."""

    def __init__(self, activation: Activation, bn_eps: float) -> None:
        self.activation = activation
        self.bn_eps = bn_eps


class Conv(nn.Module):
    """Conv2d (no bias) → BatchNorm2d → activation; after :meth:`fuse`, Conv2d with bias → activation."""

    def __init__(self, ctx: _Context, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None,
                 g: int = 1, d: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, _autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=ctx.bn_eps)
        self.act = make_activation(ctx.activation) if act is True else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn is None:
            return self.act(self.conv(x))
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BatchNorm into the convolution (inference only)."""
        if self.bn is None:
            return
        bn, conv = self.bn, self.conv
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.utils.skip_init(nn.Conv2d, conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                   conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                                   device=conv.weight.device, dtype=conv.weight.dtype)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
        self.conv = fused
        self.bn = None


class Focus(nn.Module):
    """Space-to-depth (2x2 pixel blocks → 4x channels) then a Conv (v1-v5 stem)."""

    def __init__(self, ctx: _Context, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None,
                 g: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = Conv(ctx, c1 * 4, c2, k, s, p, g, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))


class Bottleneck(nn.Module):
    """1x1 Conv → 3x3 Conv, with a residual add when shortcut and c1 == c2."""

    def __init__(self, ctx: _Context, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(ctx, c1, hidden, 1, 1)
        self.cv2 = Conv(ctx, hidden, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block with three convolutions: cv3(cat(m(cv1(x)), cv2(x)))."""

    def __init__(self, ctx: _Context, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1,
                 e: float = 0.5) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(ctx, c1, hidden, 1, 1)
        self.cv2 = Conv(ctx, c1, hidden, 1, 1)
        self.cv3 = Conv(ctx, 2 * hidden, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(ctx, hidden, hidden, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPP(nn.Module):
    """Spatial pyramid pooling: parallel max-pools (5, 9, 13) concatenated (v1-v5)."""

    def __init__(self, ctx: _Context, c1: int, c2: int, k: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(ctx, c1, hidden, 1, 1)
        self.cv2 = Conv(ctx, hidden * (len(k) + 1), c2, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


class SPPF(nn.Module):
    """Fast SPP: one max-pool applied three times in a chain (v6+)."""

    def __init__(self, ctx: _Context, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(ctx, c1, hidden, 1, 1)
        self.cv2 = Conv(ctx, hidden * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    """Concatenation of several earlier outputs along a dimension."""

    def __init__(self, dimension: int = 1) -> None:
        super().__init__()
        self.d = dimension

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.d)


class Detect(nn.Module):
    """Per-level 1x1 convolutions and the anchor-box decode.

    anchors: buffer (levels, anchors, 2) in grid units; strides: pixels per level.
    """

    def __init__(self, num_classes: int, num_anchors: int, channels: list[int], strides: tuple[float, ...]) -> None:
        super().__init__()
        self.nc = num_classes
        self.no = num_classes + 5
        self.nl = len(channels)
        self.na = num_anchors
        self.strides = tuple(float(s) for s in strides)
        self.register_buffer("anchors", torch.zeros(self.nl, self.na, 2))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in channels)
        self._grids: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _grid(self, level: int, ny: int, nx: int, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (level, ny, nx, ref.device, ref.dtype)
        if key not in self._grids:
            y = torch.arange(ny, device=ref.device, dtype=ref.dtype)
            x = torch.arange(nx, device=ref.device, dtype=ref.dtype)
            yv, xv = torch.meshgrid(y, x, indexing="ij")
            # Offset -0.5 folds yolov5's "2 * sigmoid - 0.5" centre parametrisation into the grid.
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
            anchor_px = (self.anchors[level] * self.strides[level]).to(ref.dtype).view(1, self.na, 1, 1, 2)
            self._grids[key] = (grid, anchor_px)
        return self._grids[key]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for level, (conv, feature) in enumerate(zip(self.m, features)):
            x = conv(feature)
            batch, _, ny, nx = x.shape
            x = x.view(batch, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            xy, wh, scores = x.split((2, 2, self.nc + 1), 4)
            grid, anchor_px = self._grid(level, ny, nx, x)
            xy = (xy * 2 + grid) * self.strides[level]
            wh = (wh * 2) ** 2 * anchor_px
            outputs.append(torch.cat((xy, wh, scores), 4).reshape(batch, -1, self.no))
        return torch.cat(outputs, 1)

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - nn.Module signature
        self._grids.clear()  # cached grids follow device/dtype changes
        return super()._apply(fn, recurse)


_CHANNEL_LAYERS = {"Conv": Conv, "Focus": Focus, "Bottleneck": Bottleneck, "C3": C3, "SPP": SPP, "SPPF": SPPF}
_LAYER_NAMES = {"nn.Upsample": "Upsample", "torch.nn.Upsample": "Upsample", "Upsample": "Upsample",
                "Concat": "Concat", "Detect": "Detect", **{name: name for name in _CHANNEL_LAYERS}}


def _make_divisible(x: float, divisor: int = 8) -> int:
    return int(math.ceil(x / divisor) * divisor)


class YoloV5Network(nn.Module):
    """The layer graph described by a yolov5 yaml dict.

    yaml: ``nc``, ``depth_multiple``, ``width_multiple``, ``anchors``,
    ``backbone``, ``head`` (each row ``[from, number, module, args]``);
    strides: pixels per detection level; activation / bn_eps: see
    :class:`~.checkpoint.YoloV5Checkpoint`. Raises :class:`CheckpointError`
    for a layer type or row it cannot build.
    """

    def __init__(self, yaml: dict, *, strides: tuple[float, ...], activation: Activation = Activation(),
                 bn_eps: float = 1e-3) -> None:
        super().__init__()
        ctx = _Context(activation, bn_eps)
        layers, self.save = _parse_layers(copy.deepcopy(yaml), ctx, strides)
        self.model = nn.Sequential(*layers)
        self.strides = layers[-1].strides

    @property
    def detect(self) -> Detect:
        return self.model[-1]

    @property
    def num_classes(self) -> int:
        return self.detect.nc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) float RGB in [0, 1], H and W multiples of the largest stride → (B, N, 5 + C)."""
        outputs: list[torch.Tensor | None] = []
        for layer in self.model:
            if layer.f != -1:
                x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x if layer.i in self.save else None)
        return x

    def fuse(self) -> "YoloV5Network":
        """Fold every BatchNorm into its convolution, in place; returns self."""
        for module in self.modules():
            if isinstance(module, Conv):
                module.fuse()
        return self

    def load_yolov5_state_dict(self, state_dict: dict, source: str) -> None:
        """Load yolov5-named weights (taking the tensors as they are); missing or unexpected keys are named.

        ``anchor_grid`` buffers of v1-v5-era files are derived data (anchors in
        pixels) and are skipped.
        """
        state_dict = {k: v for k, v in state_dict.items() if not k.endswith(".anchor_grid")}
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} keys ({', '.join(missing[:4])}{', …' if len(missing) > 4 else ''})")
            if unexpected:
                parts.append(f"unexpected {len(unexpected)} keys "
                             f"({', '.join(unexpected[:4])}{', …' if len(unexpected) > 4 else ''})")
            raise CheckpointError(f"{source}: weights do not fit the architecture in its yaml: {'; '.join(parts)}")
        mismatched = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                      if tuple(state_dict[k].shape) != tuple(v.shape)]
        if mismatched:
            raise CheckpointError(f"{source}: weight shapes do not fit the architecture: {', '.join(mismatched[:3])}")
        self.load_state_dict(state_dict, strict=True, assign=True)


def _resolve_arg(value: Any, nc: int, anchors: Any) -> Any:
    # yolov5 eval()s string arguments; only these names ever occur in detection yamls.
    if isinstance(value, str):
        return {"nc": nc, "anchors": anchors, "None": None, "True": True, "False": False}.get(value, value)
    return value


def _parse_layers(yaml: dict, ctx: _Context, strides: tuple[float, ...]) -> tuple[list[nn.Module], set[int]]:
    try:
        nc = int(yaml["nc"])
        depth = float(yaml.get("depth_multiple", 1.0))
        width = float(yaml.get("width_multiple", 1.0))
        anchors = yaml["anchors"]
        rows = list(yaml["backbone"]) + list(yaml["head"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"yolov5 yaml is incomplete or malformed: {e}") from e
    num_anchors = len(anchors[0]) // 2 if isinstance(anchors, list) else int(anchors)
    num_outputs = num_anchors * (nc + 5)
    channels = [int(yaml.get("ch", 3))]
    layers: list[nn.Module] = []
    save: set[int] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise CheckpointError(f"yolov5 yaml layer {i} is not [from, number, module, args]: {row!r}")
        source, number, module_name, args = row
        kind = _LAYER_NAMES.get(module_name)
        if kind is None:
            raise CheckpointError(f"yolov5 layer {i} has type {module_name!r}, which streampose does not support "
                                  f"(supported: {', '.join(sorted(set(_LAYER_NAMES.values())))})")
        args = [_resolve_arg(a, nc, anchors) for a in args]
        number = max(round(number * depth), 1) if number > 1 else number
        previous = channels[source] if isinstance(source, int) else None
        if kind in _CHANNEL_LAYERS:
            c2 = args[0]
            if c2 != num_outputs:
                c2 = _make_divisible(c2 * width, 8)
            args = [previous, c2, *args[1:]]
            if kind == "C3":
                args.insert(2, number)
                number = 1
            if kind == "SPP" and len(args) > 2:
                args[2] = tuple(args[2])
            cls = _CHANNEL_LAYERS[kind]
            blocks = [cls(ctx, *args) for _ in range(number)]
        elif kind == "Concat":
            c2 = sum(channels[x] for x in source)
            blocks = [Concat(*args) for _ in range(number)]
        elif kind == "Upsample":
            c2 = previous
            size, scale, mode = (list(args) + [None, None, "nearest"])[:3]
            blocks = [nn.Upsample(size=size, scale_factor=scale, mode=mode) for _ in range(number)]
        else:  # Detect
            if i != len(rows) - 1:
                raise CheckpointError(f"yolov5 yaml: Detect must be the last layer, found at {i}")
            level_channels = [channels[x] for x in source]
            if len(level_channels) != len(strides):
                raise CheckpointError(f"yolov5 yaml: Detect has {len(level_channels)} inputs but "
                                      f"{len(strides)} strides are recorded")
            blocks = [Detect(nc, num_anchors, level_channels, strides)]
            c2 = None
        block = blocks[0] if len(blocks) == 1 else nn.Sequential(*blocks)
        block.i, block.f = i, source
        save.update(x % i for x in ([source] if isinstance(source, int) else source) if x != -1)
        layers.append(block)
        if i == 0:
            channels = []
        channels.append(c2)
    if not isinstance(layers[-1], Detect):
        raise CheckpointError("yolov5 yaml does not end with a Detect layer")
    return layers, save


def network_from_checkpoint(checkpoint: YoloV5Checkpoint) -> YoloV5Network:
    """Build the network a checkpoint describes and load its weights (float32, eval mode)."""
    with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
        net = YoloV5Network(checkpoint.yaml, strides=checkpoint.strides, activation=checkpoint.activation,
                            bn_eps=checkpoint.bn_eps)
    state = dict(checkpoint.state_dict)
    anchors_key = f"model.{len(net.model) - 1}.anchors"
    state[anchors_key] = checkpoint.anchors
    net.load_yolov5_state_dict(state, checkpoint.source)
    return net.eval()
