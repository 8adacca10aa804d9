"""Convert Google's MoveNet SinglePose Lightning int8 TFLite file to a PyTorch state dict.

Reads the flatbuffer with the ``tflite`` package (a conversion-only
dependency), dequantizes every convolution's int8 weights and int32 biases
with their per-channel scales and zero points, converts the layouts from
TensorFlow's (O, kh, kw, I) / depthwise (1, kh, kw, C) to PyTorch's, and pairs
the graph's convolutions, in graph order, with the modules of
:class:`streampose.models.movenet.network.MoveNetNet`. Every pair is checked (tensor
name, shape, stride, activation), and the constants our decoder re-implements
(input normalisation, distance bias, output scale) are checked against the
graph, before anything is written.

    python scripts/convert_movenet.py            # ../shared/weights/... -> weights/movenet_lightning.pth
                                                 #   and weights/movenet_lightning_quant.pth

The second file holds the (scale, zero point) of every int8 tensor the graph
rounds to, by our module path, for the int8-faithful mode
(:mod:`streampose.models.movenet.int8`).

The result loads with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from streampose.models.movenet.network import _TAPS, build_movenet  # noqa: E402

SOURCE = REPO_ROOT.parent / "shared" / "weights" / "movenet_singlepose_lightning_int8.tflite"
OUTPUT = REPO_ROOT / "weights" / "movenet_lightning.pth"
QUANT_OUTPUT = REPO_ROOT / "weights" / "movenet_lightning_quant.pth"

MOBILENET_V2_BLOCKS = 17  # inverted-residual blocks of the MobileNetV2 backbone (not keypoints)
_HEADS = (("center", "center_0/"), ("keypoint_heatmap", "kpt_heatmap_0/"),
          ("keypoint_offset", "kpt_offset_0/"), ("keypoint_regress", "kpt_regress_0/"))


def graph_order() -> list[tuple[str, str, str]]:
    """(our module, fragment of the graph's weight tensor name, activation) per convolution, in graph order."""
    order = [("backbone.stem.conv", "/Conv1/", "RELU6")]
    for i in range(MOBILENET_V2_BLOCKS):
        tag = "expanded_conv" if i == 0 else f"block_{i}"
        if i:
            order.append((f"backbone.blocks.{i}.expand.conv", f"/{tag}_expand/", "RELU6"))
        order.append((f"backbone.blocks.{i}.depthwise.conv", f"/{tag}_depthwise", "RELU6"))
        order.append((f"backbone.blocks.{i}.project.conv", f"/{tag}_project/", "NONE"))
        if i in _TAPS:
            level = _TAPS.index(i)
            order.append((f"fpn.lateral.{level}.conv", f"/conv2d_{3 - level}/", "NONE"))
    order += [("backbone.last.conv", "/Conv_1/", "RELU6"), ("fpn.lateral.3.conv", "/conv2d/", "NONE")]
    for level, suffix in ((2, ""), (1, "_1"), (0, "_2")):
        order += [(f"fpn.smooth.{level}.depthwise.conv", f"/separable_conv2d{suffix}/", "NONE"),
                  (f"fpn.smooth.{level}.pointwise.conv", f"/separable_conv2d{suffix}/", "RELU")]
    for ours, scope in _HEADS:
        order += [(f"{ours}.hidden.depthwise.conv", scope, "NONE"), (f"{ours}.hidden.pointwise.conv", scope, "RELU"),
                  (f"{ours}.out.conv", scope, "NONE")]
    return order


class TFLiteGraph:
    """The tensors and operators of a single-subgraph TFLite model."""

    def __init__(self, path: Path) -> None:
        import tflite

        self.tflite = tflite
        self.buffer = path.read_bytes()
        self.model = tflite.Model.GetRootAsModel(self.buffer, 0)
        if self.model.SubgraphsLength() != 1:
            raise ValueError(f"{path.name}: expected one subgraph, found {self.model.SubgraphsLength()}")
        self.graph = self.model.Subgraphs(0)
        self._op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self._act_names = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}

    def operators(self):
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            yield self._op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())], op

    def tensor_name(self, index: int) -> str:
        return self.graph.Tensors(index).Name().decode()

    def raw(self, index: int) -> np.ndarray:
        """A constant tensor's stored values (int8/int32/float32), in its stored shape."""
        t = self.graph.Tensors(index)
        dtypes = {self.tflite.TensorType.INT8: np.int8, self.tflite.TensorType.INT32: np.int32,
                  self.tflite.TensorType.FLOAT32: np.float32, self.tflite.TensorType.UINT8: np.uint8}
        data = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int):  # the flatbuffer returns 0 for an empty buffer
            raise ValueError(f"tensor {self.tensor_name(index)!r} is not a constant")
        shape = t.ShapeAsNumpy().tolist() if t.ShapeLength() else []
        return np.frombuffer(data.tobytes(), dtypes[t.Type()]).reshape(shape)

    def dequantized(self, index: int) -> np.ndarray:
        """A constant tensor as float64: ``(q - zero_point) * scale``, per channel where quantized so."""
        values = self.raw(index).astype(np.float64)
        q = self.graph.Tensors(index).Quantization()
        if q is None or q.ScaleLength() == 0:
            return values
        scale, zero = q.ScaleAsNumpy().astype(np.float64), q.ZeroPointAsNumpy().astype(np.float64)
        if scale.size == 1:
            return (values - zero[0]) * scale[0]
        shape = [1] * values.ndim
        shape[q.QuantizedDimension()] = -1
        return (values - zero.reshape(shape)) * scale.reshape(shape)

    def conv_options(self, name: str, op) -> tuple[int, str]:
        """(stride, fused activation) of a CONV_2D / DEPTHWISE_CONV_2D operator."""
        cls = self.tflite.Conv2DOptions if name == "CONV_2D" else self.tflite.DepthwiseConv2DOptions
        options = cls()
        table = op.BuiltinOptions()
        options.Init(table.Bytes, table.Pos)
        if options.StrideH() != options.StrideW():
            raise ValueError("unequal strides are not supported")
        return options.StrideH(), self._act_names[options.FusedActivationFunction()]

    def grid(self, index: int) -> tuple[float, int]:
        """(scale, zero point) of a per-tensor int8 tensor."""
        t = self.graph.Tensors(index)
        q = t.Quantization()
        if t.Type() != self.tflite.TensorType.INT8 or q is None or q.ScaleLength() != 1:
            raise ValueError(f"tensor {self.tensor_name(index)!r} is not a per-tensor int8 tensor")
        return float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0])

    def index_named(self, name: str) -> int:
        """The one tensor called ``name`` (or ``name;...``, as TFLite joins fused names)."""
        matches = [i for i in range(self.graph.TensorsLength())
                   if self.tensor_name(i) == name or self.tensor_name(i).startswith(name + ";")]
        if len(matches) != 1:
            raise ValueError(f"expected one tensor named {name!r}, found {len(matches)}")
        return matches[0]

    def constant_named(self, fragment: str) -> np.ndarray:
        matches = [i for i in range(self.graph.TensorsLength()) if self.tensor_name(i) == fragment]
        if len(matches) != 1:
            raise ValueError(f"expected one tensor named {fragment!r}, found {len(matches)}")
        return self.dequantized(matches[0])


def check_decoding_constants(graph: TFLiteGraph) -> None:
    """The constants that movenet.py / movenet_decode.py hard-code, as the graph has them."""
    from streampose.models.movenet.decode import DISTANCE_BIAS

    checks = {"truediv_1;truediv_1/y": (1 / 127.5, 1e-6), "sub_1/y": (1.0, 1e-6),
              "add_1/y": (DISTANCE_BIAS, 1e-6), "Reshape_13": (1 / 48, 1e-6)}
    for name, (expected, tol) in checks.items():
        value = graph.constant_named(name)
        if not np.allclose(value, expected, atol=tol):
            raise ValueError(f"graph constant {name!r} is {value.ravel()[:4]}, our decoder assumes {expected}")
    weight = graph.constant_named("truediv_2;add_1")[..., 0]
    ys, xs = np.mgrid[0:weight.shape[0], 0:weight.shape[1]]
    ours = 1 / (np.hypot(ys - weight.shape[0] // 2, xs - weight.shape[1] // 2) + DISTANCE_BIAS)
    if np.abs(ours - weight).max() > 0.0025:  # one int8 step of the stored constant
        raise ValueError("the graph's centre weighting differs from 1 / (distance to centre + 1.8)")


def convert(source: Path) -> dict[str, torch.Tensor]:
    """State dict of ``build_movenet("lightning")`` from the TFLite file; ValueError on any mismatch."""
    graph = TFLiteGraph(source)
    check_decoding_constants(graph)
    model = build_movenet("lightning")
    modules = dict(model.named_modules())
    parent_acts = {name: type(m.act).__name__ for name, m in model.named_modules() if hasattr(m, "act")}
    convs = [(name, op) for name, op in graph.operators() if name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    order = graph_order()
    if len(convs) != len(order):
        raise ValueError(f"{source.name}: {len(convs)} convolutions in the graph, {len(order)} in MoveNetNet")
    act_of = {"RELU6": "ReLU6", "RELU": "ReLU", "NONE": "Identity"}
    state: dict[str, torch.Tensor] = {}
    for (op_name, op), (ours, fragment, activation) in zip(convs, order):
        tensor_name = graph.tensor_name(op.Inputs(1))
        stride, fused = graph.conv_options(op_name, op)
        module = modules[ours]
        weight = graph.dequantized(op.Inputs(1))
        bias = graph.dequantized(op.Inputs(2))
        if op_name == "DEPTHWISE_CONV_2D":
            weight = weight.transpose(3, 0, 1, 2)  # (1, kh, kw, C) -> (C, 1, kh, kw)
            depthwise_ok = module.groups == module.in_channels == module.out_channels
        else:
            weight = weight.transpose(0, 3, 1, 2)  # (O, kh, kw, I) -> (O, I, kh, kw)
            depthwise_ok = module.groups == 1
        problems = []
        if fragment not in tensor_name:
            problems.append(f"weight tensor {tensor_name!r} lacks {fragment!r}")
        if tuple(weight.shape) != tuple(module.weight.shape) or not depthwise_ok:
            problems.append(f"shape {weight.shape} ({op_name}) vs {tuple(module.weight.shape)}")
        if stride != module.stride[0]:
            problems.append(f"stride {stride} vs {module.stride[0]}")
        if fused != activation or act_of[fused] != parent_acts[ours.rsplit(".", 1)[0]]:
            problems.append(f"activation {fused} vs {parent_acts[ours.rsplit('.', 1)[0]]}")
        if problems:
            raise ValueError(f"{source.name}: {ours}: " + "; ".join(problems))
        state[f"{ours}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        state[f"{ours}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise ValueError(f"MoveNetNet parameters left without weights: {sorted(missing)}")
    return state


def quantization(source: Path) -> dict[str, torch.Tensor]:
    """``{rounding point: float64 tensor([scale, zero_point])}`` for :class:`MoveNetInt8`; ValueError on any mismatch."""
    from streampose.models.movenet.int8 import DECODE_TENSORS, quantization_points

    graph = TFLiteGraph(source)
    ops = list(graph.operators())
    producer = {op.Outputs(0): (name, op) for name, op in ops}
    grids: dict[str, tuple[float, int]] = {}
    conv_of: dict[int, str] = {}  # output tensor -> our conv
    convs = [op for name, op in ops if name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    for op, (ours, _, _) in zip(convs, graph_order()):
        grids[ours] = graph.grid(op.Outputs(0))
        q = graph.graph.Tensors(op.Inputs(1)).Quantization()
        if np.any(q.ZeroPointAsNumpy() != 0):
            raise ValueError(f"{ours}: int8 weights with a non-zero zero point")
        grids[f"{ours}.weight_scale"] = q.ScaleAsNumpy().astype(np.float64)
        grids[f"{ours}.bias_int"] = graph.raw(op.Inputs(2)).astype(np.float64)
        conv_of[op.Outputs(0)] = ours
    first = next(op for op in convs)
    grids["input"] = graph.grid(first.Inputs(0))
    for name, op in ops:
        if name == "RESIZE_BILINEAR" and graph.grid(op.Inputs(0)) != graph.grid(op.Outputs(0)):
            raise ValueError("a RESIZE_BILINEAR changes the grid; MoveNetInt8 assumes it keeps it")
        if name != "ADD" or op.Inputs(1) not in conv_of:
            continue
        a, b = op.Inputs(0), conv_of[op.Inputs(1)]
        if producer.get(a, ("",))[0] == "RESIZE_BILINEAR":  # FPN merge: upsampled + lateral
            grids[b.replace("lateral", "add").removesuffix(".conv")] = graph.grid(op.Outputs(0))
        elif b.endswith(".project.conv"):  # residual: block input + projection
            grids[b.replace("project.conv", "add")] = graph.grid(op.Outputs(0))
    logistic = [op for name, op in ops if name == "LOGISTIC"]
    heads = {graph.tensor_name(op.Inputs(0)).split("/")[0]: op for op in logistic}
    grids["center.sigmoid"] = graph.grid(heads["center_0"].Outputs(0))
    grids["keypoint_heatmap.sigmoid"] = graph.grid(heads["kpt_heatmap_0"].Outputs(0))
    for ours, name in DECODE_TENSORS.items():
        grids[f"decode.{ours}"] = graph.grid(graph.index_named(name))
    expected = quantization_points(build_movenet("lightning"))
    missing, extra = set(expected) - set(grids), set(grids) - set(expected)
    if missing or extra:
        raise ValueError(f"quantization points: missing {sorted(missing)}, unexpected {sorted(extra)}")
    return {name: torch.as_tensor(np.asarray(grids[name], dtype=np.float64)) for name in expected}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the int8 TFLite file")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the .pth to write")
    parser.add_argument("--quant-output", type=Path, default=QUANT_OUTPUT,
                        help="the .pth of the graph's int8 grids to write")
    args = parser.parse_args(argv)
    state = convert(args.source)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.output)
    count = sum(t.numel() for t in state.values())
    print(f"{args.source.name} -> {args.output} ({len(state)} tensors, {count / 1e6:.2f} M parameters)")
    quant = quantization(args.source)
    args.quant_output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(quant, args.quant_output)
    print(f"{args.source.name} -> {args.quant_output} ({len(quant)} int8 grids)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
