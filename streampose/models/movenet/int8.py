"""MoveNet as the int8 TFLite graph computes it: our network with the graph's quantization emulated.

The release is an int8 graph: every activation tensor lives on an int8 grid
``real = (q - zero_point) * scale`` with its own (scale, zero point), and so
does every intermediate of its decoding. A float forward pass of the same
weights lands up to a few pixels away from the graph's keypoints, because the
decoding's argmaxes amplify the rounding differences. :class:`MoveNetInt8`
runs :class:`~streampose.models.movenet.network.MoveNetNet`'s convolutions in float
(the weights are the graph's int8 weights dequantized exactly) and rounds each
tensor to the graph's grid wherever the graph has a tensor:

- the input (``(u8 - 127) / 127.5``, exactly representable: q = u8 - 128);
- every convolution's output, after its fused ReLU / ReLU6 (the activation
  clamps in float are the graph's quantized clamps);
- every residual and FPN add (int8 ADD rescales both inputs to the output grid);
- each bilinear 2x upsampling, which the runtime computes on the raw int8
  values (exact, on a 1/16 grid) and rounds half up, keeping the input's grid;
- the sigmoids (grid 1/256, zero point -128);
- the decoding's intermediates, through the ``rounding`` hook of
  :func:`~streampose.models.movenet.decode.decode_single_pose`.

Every rounding rule here was matched, layer by layer, against the runtime
(ai-edge-litert, CPU kernels) on the tensors it keeps with
``experimental_preserve_all_tensors``: a single flipped value early in the
backbone grows into pixels of keypoint error, so exactness matters,
down to how the requantization multiplier's last float32 bit is computed.
The (scale, zero point) of every point come from the TFLite file
(``scripts/convert_movenet.py`` writes them to
``weights/movenet_lightning_quant.pth``, a ``{point name: float64 tensor
[scale, zero_point]}`` state dict; point names are our module paths).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .network import _TAPS, ConvAct, MoveNetNet

#: decoding rounding points of :func:`~streampose.models.movenet.decode.decode_single_pose` → the
#: graph's int8 tensor at that point (the converter reads their grids; stored as ``decode.<point>``).
DECODE_TENSORS = {
    "grid_y": "strided_slice_3", "grid_x": "strided_slice_4", "centre_weight": "truediv_2;add_1",
    "weighted_centre": "truediv_2;add_11", "centre_y": "tfl.quantize1", "centre_x": "tfl.quantize2",
    "rough_y": "add_2", "rough_x": "add_3", "delta_y": "sub_5", "delta_x": "sub_6",
    "delta_y_sq": "pow_2;pow/y", "delta_x_sq": "pow_3;pow/y", "distance_sq": "add_4",
    "distance": "tfl.quantize3", "distance_biased": "add_5", "divided_heatmaps": "tfl.quantize4",
    "cell_y": "tfl.quantize5", "cell_x": "tfl.quantize6", "keypoint_y": "add_6", "keypoint_x": "add_7",
    "y": "mul_2", "x": "mul_2", "scores": "Sigmoid1",
}
HEADS = ("center", "keypoint_heatmap", "keypoint_offset", "keypoint_regress")
INT8_MIN, INT8_MAX = -128, 127


def round_half_away(t: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer, ties away from zero (TFLite's fixed-point rounding)."""
    return torch.trunc(t + torch.copysign(torch.full_like(t, 0.5), t))


def fake_quantize(t: torch.Tensor, scale: float, zero_point: float) -> torch.Tensor:
    """``t`` rounded to the int8 grid ``(q - zero_point) * scale``, q in [-128, 127], back in real units."""
    q = round_half_away(t * (1.0 / scale)).clamp_(INT8_MIN - zero_point, INT8_MAX - zero_point)
    return q.mul_(scale)


def quantization_points(net: MoveNetNet) -> list[str]:
    """Names of every rounding point :class:`MoveNetInt8` needs, for a network's structure."""
    points = ["input"]
    for name, module in net.named_modules():
        if isinstance(module, ConvAct):
            points += [f"{name}.conv", f"{name}.conv.weight_scale", f"{name}.conv.bias_int"]
    points += [f"backbone.blocks.{i}.add" for i, b in enumerate(net.backbone.blocks) if b.residual]
    points += [f"fpn.add.{level}" for level in (2, 1, 0)]
    points += ["center.sigmoid", "keypoint_heatmap.sigmoid"]
    points += [f"decode.{name}" for name in DECODE_TENSORS]
    return points


class MoveNetInt8(nn.Module):
    """:class:`MoveNetNet` with the int8 graph's arithmetic: same input and outputs as the network.

    net: a MoveNetNet with the converted weights; quant: ``{point: tensor([scale, zero_point])}``
    for every name of :func:`quantization_points` (ValueError naming the missing ones).
    ``decode_rounding`` is the matching hook for ``decode_single_pose``.

    Activations travel as ``q - zero_point`` (integers held in float32), so each
    convolution sums exact integer products (int8 weights recovered from the
    dequantized ones with the per-channel scales) plus the int32 bias as the
    runtime does, and requantizes as the runtime's CPU kernels do: the
    accumulator as float32 times the float32 multiplier ``s_in * s_w / s_out``,
    rounded half to even.
    """

    def __init__(self, net: MoveNetNet, quant: dict[str, torch.Tensor]) -> None:
        super().__init__()
        missing = [p for p in quantization_points(net) if p not in quant]
        if missing:
            raise ValueError(f"quantization parameters missing for {len(missing)} points: {', '.join(missing[:5])}")
        self.net = net
        self.spec = net.spec
        self.points = {name: (float(t[0]), float(t[1])) for name, t in quant.items()
                       if not name.endswith((".weight_scale", ".bias_int"))}
        self._convs: dict[str, tuple] = {}
        self._prepare(quant)

    def _prepare(self, quant: dict[str, torch.Tensor]) -> None:
        """Integer weights, per-channel multipliers and bias terms of every convolution."""
        scale_in = {}  # conv path -> scale of its input, following the graph's data flow
        net = self.net
        prev = "input"

        def conv(path: str, src: str) -> str:
            scale_in[path] = self.points[src][0]
            return path

        prev = conv("backbone.stem.conv", prev)
        taps = []
        for i, block in enumerate(net.backbone.blocks):
            p = f"backbone.blocks.{i}"
            x = prev
            y = x if isinstance(block.expand, nn.Identity) else conv(f"{p}.expand.conv", x)
            y = conv(f"{p}.depthwise.conv", y)
            y = conv(f"{p}.project.conv", y)
            prev = f"{p}.add" if block.residual else y
            if i in _TAPS:
                taps.append(prev)
        taps.append(conv("backbone.last.conv", prev))
        for level in range(4):
            conv(f"fpn.lateral.{level}.conv", taps[level])
        x = "fpn.lateral.3.conv"
        for level in (2, 1, 0):
            x = conv(f"fpn.smooth.{level}.depthwise.conv", f"fpn.add.{level}")
            x = conv(f"fpn.smooth.{level}.pointwise.conv", x)
        for name in HEADS:
            h = conv(f"{name}.hidden.depthwise.conv", x)
            h = conv(f"{name}.hidden.pointwise.conv", h)
            conv(f"{name}.out.conv", h)
        modules = dict(net.named_modules())
        for path, s_in in scale_in.items():
            module = modules[path]
            s_w = quant[f"{path}.weight_scale"].to(torch.float64)
            s_out, _ = self.points[path]
            w = module.weight.detach().to(torch.float64) / s_w.view(-1, 1, 1, 1)
            w_int = torch.round(w)
            if (w - w_int).abs().max() > 1e-3:
                raise ValueError(f"{path}: the weights are not int8 multiples of their stored scales")
            # computed in float32 arithmetic, as the runtime's kernels do (its last bit decides ties)
            s_in32 = torch.tensor(s_in, dtype=torch.float32)
            multiplier = ((s_in32 * s_w.to(torch.float32)) / torch.tensor(s_out, dtype=torch.float32)).view(1, -1, 1, 1)
            bias = quant[f"{path}.bias_int"].to(torch.float64)
            if (bias * s_in * s_w - module.bias.detach().to(torch.float64)).abs().max() > 1e-4:
                raise ValueError(f"{path}: the stored int32 bias does not match the weights' bias")
            # float32 holds integers exactly below 2**24; a larger bias is added in float64 so the
            # sum is rounded once to float32, as the runtime's (float) cast of its int32 accumulator
            offset = bias.view(1, -1, 1, 1) if bias.abs().max() >= 2 ** 24 else bias.to(torch.float32).view(1, -1, 1, 1)
            self.register_buffer(_buffer_name(path, "w"), w_int.to(torch.float32), persistent=False)
            self.register_buffer(_buffer_name(path, "m"), multiplier, persistent=False)
            self.register_buffer(_buffer_name(path, "b"), offset, persistent=False)
            parent = modules[path.rsplit(".", 1)[0]]
            zero = self.points[path][1]
            # fused activations clamp on the output grid: ReLU at real 0, ReLU6 also at real 6
            lo = 0.0 if isinstance(parent.act, (nn.ReLU, nn.ReLU6)) else INT8_MIN - zero
            hi = min(INT8_MAX - zero, round(6.0 / s_out)) if isinstance(parent.act, nn.ReLU6) else INT8_MAX - zero
            self._convs[path] = (module, max(lo, INT8_MIN - zero), hi)

    def _conv(self, path: str, x: torch.Tensor) -> torch.Tensor:
        """Centred int8 in → centred int8 out: exact integer convolution, requantization, activation clamp."""
        module, lo, hi = self._convs[path]
        if module._pad_in_forward:
            k, s = module.kernel_size[0], module.stride[0]
            pads = []
            for size in (x.shape[-1], x.shape[-2]):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)  # zero = the input's zero point, as the runtime pads
        acc = F.conv2d(x, getattr(self, _buffer_name(path, "w")), None, module.stride, module.padding, 1,
                       module.groups)
        bias = getattr(self, _buffer_name(path, "b"))
        acc = (acc.double() + bias).float() if bias.dtype == torch.float64 else acc.add_(bias)
        # the runtime's requantization: float32 product, rounded half to even
        v = torch.round(acc.mul_(getattr(self, _buffer_name(path, "m"))))
        return v.clamp_(lo, hi)

    def _requantize(self, name: str, terms: list[tuple[torch.Tensor, str]]) -> torch.Tensor:
        """Centred int8 sum of centred int8 tensors on their own grids, on the grid of ``name``."""
        s_out, zero = self.points[name]
        total = None
        for v, src in terms:
            t = v * (self.points[src][0] / s_out)
            total = t if total is None else total.add_(t)
        return torch.round(total).clamp_(INT8_MIN - zero, INT8_MAX - zero)

    def _resize(self, v: torch.Tensor, size, point: str) -> torch.Tensor:
        # The runtime interpolates the raw int8 values (weights in 1/16 at 2x) and rounds half
        # up; the output keeps the input's grid.
        _, zero = self.points[point]
        q = torch.floor(F.interpolate(v + zero, size=size, mode="bilinear", align_corners=False) + 0.5)
        return q - zero

    def decode_rounding(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """The graph's rounding of a decoding intermediate (``decode_single_pose``'s hook)."""
        scale, zero = self.points[f"decode.{name}"]
        return fake_quantize(t, scale, zero)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised RGB ``(rgb - 127) / 127.5`` (B, 3, S, S) → the four head maps, on the graph's grids."""
        net = self.net
        s_in, z_in = self.points["input"]
        x = torch.round(images * (1.0 / s_in)).clamp_(INT8_MIN - z_in, INT8_MAX - z_in)
        x = self._conv("backbone.stem.conv", x)
        prev = "backbone.stem.conv"
        taps = []
        for i, block in enumerate(net.backbone.blocks):
            path = f"backbone.blocks.{i}"
            y = x if isinstance(block.expand, nn.Identity) else self._conv(f"{path}.expand.conv", x)
            y = self._conv(f"{path}.depthwise.conv", y)
            y = self._conv(f"{path}.project.conv", y)
            if block.residual:
                x = self._requantize(f"{path}.add", [(x, prev), (y, f"{path}.project.conv")])
                prev = f"{path}.add"
            else:
                x, prev = y, f"{path}.project.conv"
            if i in _TAPS:
                taps.append(x)
        taps.append(self._conv("backbone.last.conv", x))

        x, point = self._conv("fpn.lateral.3.conv", taps[3]), "fpn.lateral.3.conv"
        for level in (2, 1, 0):
            lateral = self._conv(f"fpn.lateral.{level}.conv", taps[level])
            x = self._resize(x, lateral.shape[-2:], point)
            x = self._requantize(f"fpn.add.{level}", [(x, point), (lateral, f"fpn.lateral.{level}.conv")])
            x = self._conv(f"fpn.smooth.{level}.depthwise.conv", x)
            x = self._conv(f"fpn.smooth.{level}.pointwise.conv", x)
            point = f"fpn.smooth.{level}.pointwise.conv"

        maps = []
        for name in HEADS:
            h = self._conv(f"{name}.hidden.depthwise.conv", x)
            h = self._conv(f"{name}.hidden.pointwise.conv", h)
            h = self._conv(f"{name}.out.conv", h)
            h = h * self.points[f"{name}.out.conv"][0]
            if name in ("center", "keypoint_heatmap"):
                scale, zero = self.points[f"{name}.sigmoid"]
                h = fake_quantize(h.sigmoid(), scale, zero)
            maps.append(h)
        return tuple(maps)



def _buffer_name(path: str, kind: str) -> str:
    return f"{kind}_" + path.replace(".", "_")
