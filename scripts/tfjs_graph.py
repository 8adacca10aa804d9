"""Reading a TensorFlow.js graph model (``model.json`` + weight shards) and evaluating its ops in NumPy.

No TF.js runtime is available here, so this is the reference the MoveNet
conversion is checked against: :func:`read_graph` reads every weight exactly
as stored (float16 values widened to float32, int32 constants as they are;
every byte of the shards accounted for), and :func:`evaluate` runs the graph
node by node with NumPy implementations of the operators MoveNet uses,
following TensorFlow's definitions (NHWC; "SAME" padding puts the extra row /
column at the bottom / right; ``ResizeBilinear`` with ``half_pixel_centers``;
``_FusedConv2D`` = convolution + ``BiasAdd`` + activation). MultiPose's
in-graph decoding adds shape and index operators (``Shape``, ``StridedSlice``
with its five masks, ``TopKV2`` whose ties go to the lower index, ``MaxPool``
whose "SAME" padding never wins the max, ``Select``, reductions, comparisons).

Format facts from the TF.js converter's documentation (tensorflow/tfjs
``tfjs-converter``): ``weightsManifest[].paths`` are concatenated in order,
each weight takes ``prod(shape) * itemsize`` bytes of its stored dtype
(``quantization.dtype`` when present), and nodes carry TensorFlow's NodeDef
attributes in JSON form (strings base64-encoded).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_STORED_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "uint8": np.uint8,
                  "uint16": np.uint16, "bool": np.bool_}
_TF_DTYPES = {"DT_FLOAT": np.float32, "DT_INT32": np.int32, "DT_INT64": np.int64, "DT_BOOL": np.bool_}


#: element-wise operators, NumPy broadcasting as TensorFlow's.
_ELEMENTWISE = {
    "Abs": np.abs, "Exp": np.exp, "Reciprocal": lambda a: np.float32(1) / a,
    "Maximum": np.maximum, "Minimum": np.minimum, "Less": np.less, "Greater": np.greater,
    "GreaterEqual": np.greater_equal, "Equal": np.equal, "LogicalAnd": np.logical_and,
}


@dataclass
class Graph:
    """A TF.js graph model: nodes by name (file order kept), weights by name, signature names."""

    nodes: dict[str, dict]
    weights: dict[str, np.ndarray]
    stored_dtypes: dict[str, str]
    inputs: list[str]
    outputs: list[str]


def read_graph(model_json: str | Path) -> Graph:
    """Read ``model.json`` and its weight shards; ValueError when the shards' size does not add up."""
    model_json = Path(model_json)
    spec = json.loads(model_json.read_text())
    weights: dict[str, np.ndarray] = {}
    stored: dict[str, str] = {}
    for group in spec["weightsManifest"]:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for entry in group["weights"]:
            quant = entry.get("quantization")
            if quant is not None and quant["dtype"] != "float16":
                raise ValueError(f"{entry['name']}: {quant['dtype']} quantization is not supported here")
            dtype = quant["dtype"] if quant is not None else entry["dtype"]
            count = math.prod(entry["shape"])
            size = count * np.dtype(_STORED_DTYPES[dtype]).itemsize
            raw = np.frombuffer(data, dtype=_STORED_DTYPES[dtype], count=count, offset=offset)
            value = raw.astype(_STORED_DTYPES[entry["dtype"]]).reshape(entry["shape"])
            weights[entry["name"]] = value
            stored[entry["name"]] = dtype
            offset += size
        if offset != len(data):
            raise ValueError(f"{model_json.name}: manifest accounts for {offset} bytes, shards hold {len(data)}")
    nodes = {n["name"]: n for n in spec["modelTopology"]["node"]}
    signature = spec.get("signature", {})
    # Signature entries are keyed by their tensor name or by an alias whose ``name`` field is the tensor's.
    inputs = [entry.get("name", key).split(":")[0] for key, entry in signature.get("inputs", {}).items()]
    outputs = [entry.get("name", key).split(":")[0] for key, entry in signature.get("outputs", {}).items()]
    return Graph(nodes, weights, stored, inputs, outputs)


def _attr(node: dict, name: str, default: Any = None) -> Any:
    value = node.get("attr", {}).get(name)
    if value is None:
        return default
    if "list" in value:
        items = value["list"]
        if "i" in items:
            return [int(v) for v in items["i"]]
        if "s" in items:
            return [base64.b64decode(v).decode() for v in items["s"]]
        if "f" in items:
            return [float(v) for v in items["f"]]
        return []
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    if "f" in value:
        return float(value["f"])
    return default


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_input(x: np.ndarray, kh: int, kw: int, strides: list[int], padding: str) -> np.ndarray:
    if padding == "VALID":
        return x
    if padding != "SAME":
        raise ValueError(f"padding {padding!r} is not supported")
    top, bottom = _same_pads(x.shape[1], kh, strides[1])
    left, right = _same_pads(x.shape[2], kw, strides[2])
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def conv2d(x: np.ndarray, kernel: np.ndarray, strides: list[int], padding: str) -> np.ndarray:
    """NHWC x, HWIO kernel → NHWC, TensorFlow's Conv2D (float32)."""
    kh, kw = kernel.shape[:2]
    x = _pad_input(x, kh, kw, strides, padding)
    sh, sw = strides[1], strides[2]
    out_h, out_w = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]), np.float32)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw, :]
            out += np.tensordot(patch, kernel[i, j], axes=([3], [0])).astype(np.float32)
    return out


def depthwise_conv2d(x: np.ndarray, kernel: np.ndarray, strides: list[int], padding: str) -> np.ndarray:
    """NHWC x, (kh, kw, C, 1) kernel → NHWC, TensorFlow's DepthwiseConv2dNative (float32)."""
    kh, kw, _, multiplier = kernel.shape
    if multiplier != 1:
        raise ValueError("depth multiplier other than 1 is not supported")
    x = _pad_input(x, kh, kw, strides, padding)
    sh, sw = strides[1], strides[2]
    out_h, out_w = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]), np.float32)
    for i in range(kh):
        for j in range(kw):
            out += x[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw, :] * kernel[i, j, :, 0]
    return out


def resize_bilinear(x: np.ndarray, size: tuple[int, int], align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """TensorFlow's ResizeBilinear (NHWC)."""
    in_h, in_w = x.shape[1:3]
    out_h, out_w = size

    def sources(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if align_corners and out_size > 1:
            scale = (in_size - 1) / (out_size - 1)
        else:
            scale = in_size / out_size
        idx = np.arange(out_size, dtype=np.float64)
        src = (idx + 0.5) * scale - 0.5 if half_pixel_centers else idx * scale
        low = np.floor(src)
        frac = (src - low).astype(np.float32)
        low_i = np.clip(low.astype(np.int64), 0, in_size - 1)
        high_i = np.clip(low.astype(np.int64) + 1, 0, in_size - 1)
        if half_pixel_centers:
            low_i = np.clip(np.maximum(low, 0).astype(np.int64), 0, in_size - 1)
        return low_i, high_i, frac

    y0, y1, fy = sources(out_h, in_h)
    x0, x1, fx = sources(out_w, in_w)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return (top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]).astype(np.float32)


def strided_slice(x: np.ndarray, begin, end, strides, *, begin_mask: int = 0, end_mask: int = 0,
                  ellipsis_mask: int = 0, new_axis_mask: int = 0, shrink_axis_mask: int = 0) -> np.ndarray:
    """TensorFlow's StridedSlice: bit i of a mask applies to entry i of the slice spec."""
    index: list = []
    for i, (b, e, st) in enumerate(zip(begin, end, strides)):
        bit = 1 << i
        if ellipsis_mask & bit:
            index.append(Ellipsis)
        elif new_axis_mask & bit:
            index.append(None)
        elif shrink_axis_mask & bit:
            index.append(int(b))
        else:
            index.append(slice(None if begin_mask & bit else int(b), None if end_mask & bit else int(e), int(st)))
    return np.asarray(x[tuple(index)])


def max_pool(x: np.ndarray, ksize: list[int], strides: list[int], padding: str) -> np.ndarray:
    """TensorFlow's MaxPool (NHWC); "SAME" pads with -inf, so padding never wins."""
    kh, kw = ksize[1], ksize[2]
    if padding == "SAME":
        top, bottom = _same_pads(x.shape[1], kh, strides[1])
        left, right = _same_pads(x.shape[2], kw, strides[2])
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    sh, sw = strides[1], strides[2]
    out_h, out_w = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.full((x.shape[0], out_h, out_w, x.shape[3]), -np.inf, x.dtype)
    for i in range(kh):
        for j in range(kw):
            np.maximum(out, x[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw, :], out=out)
    return out


def _activate(x: np.ndarray, ops: list[str]) -> np.ndarray:
    for op in ops:
        if op == "Relu":
            x = np.maximum(x, 0)
        elif op == "Relu6":
            x = np.clip(x, 0, 6)
        elif op != "BiasAdd":
            raise ValueError(f"fused op {op!r} is not supported")
    return x


def evaluate(graph: Graph, feeds: dict[str, np.ndarray], fetch: list[str] | None = None) -> dict[str, np.ndarray]:
    """Run the graph on ``feeds`` ({input name: array}); returns the value of every evaluated node output.

    fetch: node names to compute (default: the signature's outputs). Output
    ``k`` of a multi-output node is stored under ``name:k`` (``name`` = output 0).
    """
    values: dict[str, np.ndarray] = {}
    for name, array in feeds.items():
        values[name] = array

    def value(ref: str) -> np.ndarray:
        name = ref.lstrip("^")
        if name in values:
            return values[name]
        base = name.split(":")[0]
        _run(base)
        return values[name]

    def _run(name: str) -> None:
        # Iterative depth-first order: the graph is deeper than Python's recursion limit allows comfortably.
        stack = [name]
        while stack:
            current = stack[-1]
            if current in values:
                stack.pop()
                continue
            node = graph.nodes[current]
            pending = [i.split(":")[0].lstrip("^") for i in node.get("input", [])
                       if i.lstrip("^") not in values and i.split(":")[0].lstrip("^") not in values]
            if pending:
                stack.extend(pending)
                continue
            _compute(node)
            stack.pop()

    def _compute(node: dict) -> None:
        op, name = node["op"], node["name"]
        args = [value(i) for i in node.get("input", []) if not i.startswith("^")]
        if op == "Const":
            out = graph.weights[name]
        elif op == "Placeholder":
            raise KeyError(f"input {name!r} not fed")
        elif op == "Identity":
            out = args[0]
        elif op == "Cast":
            out = args[0].astype(_TF_DTYPES[_attr(node, "DstT")])
        elif op == "Unpack":
            axis = _attr(node, "axis", 0)
            parts = [np.take(args[0], k, axis=axis) for k in range(args[0].shape[axis])]
            for k, part in enumerate(parts):
                values[f"{name}:{k}"] = part
            out = parts[0]
        elif op == "Split":
            parts = np.split(args[1], _attr(node, "num_split"), axis=int(args[0]))
            for k, part in enumerate(parts):
                values[f"{name}:{k}"] = part
            out = parts[0]
        elif op == "TopKV2":
            # Sorted descending; equal values keep their order (TensorFlow: the lower index first).
            indices = np.argsort(-args[0], axis=-1, kind="stable")[..., :int(args[1])].astype(np.int32)
            values[f"{name}:1"] = indices
            out = np.take_along_axis(args[0], indices, axis=-1)
        elif op == "Shape":
            out = np.array(args[0].shape, _TF_DTYPES[_attr(node, "out_type", "DT_INT32")])
        elif op == "Size":
            out = np.array(args[0].size, _TF_DTYPES[_attr(node, "out_type", "DT_INT32")])
        elif op == "StridedSlice":
            out = strided_slice(args[0], args[1], args[2], args[3], **{
                k: _attr(node, k, 0) for k in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                                                 "shrink_axis_mask")})
        elif op == "Range":
            out = np.arange(args[0], args[1], args[2]).astype(np.result_type(args[0], args[1], args[2]))
        elif op == "Fill":
            out = np.full([int(v) for v in args[0]], args[1])
        elif op == "Tile":
            out = np.tile(args[0], [int(v) for v in args[1]])
        elif op == "Select":
            out = np.where(args[0], args[1], args[2])
        elif op in ("Sum", "Max"):
            reduce = np.sum if op == "Sum" else np.max
            out = reduce(args[0], axis=tuple(int(v) for v in np.atleast_1d(args[1])),
                         keepdims=_attr(node, "keep_dims", False)).astype(args[0].dtype)
        elif op == "AddN":
            out = args[0]
            for term in args[1:]:
                out = out + term
        elif op in _ELEMENTWISE:
            out = np.asarray(_ELEMENTWISE[op](*args))
        elif op == "MaxPool":
            out = max_pool(args[0], _attr(node, "ksize"), _attr(node, "strides"), _attr(node, "padding"))
        elif op == "Pack":
            out = np.stack(args, axis=_attr(node, "axis", 0))
        elif op == "ExpandDims":
            out = np.expand_dims(args[0], int(args[1]))
        elif op == "Squeeze":
            dims = _attr(node, "squeeze_dims", [])
            out = np.squeeze(args[0], axis=tuple(dims)) if dims else np.squeeze(args[0])
        elif op == "Reshape":
            out = args[0].reshape([int(v) for v in args[1].reshape(-1)])
        elif op == "ConcatV2":
            out = np.concatenate(args[:-1], axis=int(args[-1]))
        elif op in ("AddV2", "Add"):
            out = args[0] + args[1]
        elif op == "Sub":
            out = args[0] - args[1]
        elif op == "Mul":
            out = args[0] * args[1]
        elif op == "RealDiv":
            out = args[0] / args[1]
        elif op == "FloorDiv":
            out = np.floor_divide(args[0], args[1])
        elif op == "SquaredDifference":
            out = (args[0] - args[1]) * (args[0] - args[1])
        elif op == "Sqrt":
            out = np.sqrt(args[0])
        elif op == "Sigmoid":
            out = (1.0 / (1.0 + np.exp(-args[0].astype(np.float64)))).astype(np.float32)
        elif op == "ArgMax":
            out = np.argmax(args[0], axis=int(args[1])).astype(_TF_DTYPES[_attr(node, "output_type", "DT_INT64")])
        elif op == "GatherNd":
            params, indices = args
            out = params[tuple(np.moveaxis(indices.astype(np.int64), -1, 0))]
        elif op == "ResizeBilinear":
            out = resize_bilinear(args[0], tuple(int(v) for v in args[1]), _attr(node, "align_corners", False),
                                  _attr(node, "half_pixel_centers", False))
        elif op in ("_FusedConv2D", "Conv2D"):
            out = conv2d(args[0], args[1], _attr(node, "strides"), _attr(node, "padding"))
            fused = _attr(node, "fused_ops", [])
            if "BiasAdd" in fused:
                out = out + args[2]
            out = _activate(out, fused)
        elif op in ("FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
            out = depthwise_conv2d(args[0], args[1], _attr(node, "strides"), _attr(node, "padding"))
            fused = _attr(node, "fused_ops", [])
            if "BiasAdd" in fused:
                out = out + args[2]
            out = _activate(out, fused)
        else:
            raise ValueError(f"operator {op!r} ({name}) is not supported")
        values[name] = out

    for name in fetch or graph.outputs:
        value(name)
    return values
