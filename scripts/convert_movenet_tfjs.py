"""Convert Google's MoveNet SinglePose Thunder or MultiPose Lightning, as TF.js graph models, to PyTorch state dicts.

Reads ``model.json`` and its weight shard with :mod:`scripts.tfjs_graph` (the
float16 weights widened to float32 exactly), converts the layouts from
TensorFlow's HWIO / depthwise (kh, kw, C, 1) to PyTorch's, and pairs each
convolution of the graph, found by its node name, with the module of
:class:`streampose.models.movenet.network.MoveNetNet` (``thunder`` variant:
MobileNetV2 width 1.75, 256x256 input). Every pair is checked (shape, stride,
padding, activation), the graph's depthwise convolutions without a bias get a
zero bias, and the constants our code re-implements (input normalisation,
distance bias, centre weighting, output scale) are checked against the graph
before anything is written.

MultiPose Lightning (``--model multipose``) pairs the same way with
:class:`streampose.models.movenet.network.MoveNetMultiPoseNet` (width 1.5, six
heads), and its decoding constants (centre NMS window and tolerance, people
kept, keypoint spread, keypoint score threshold, output stride) are checked
against :mod:`streampose.models.movenet.multipose_decode`.

    python scripts/convert_movenet_tfjs.py      # ../shared/weights/movenet_tfjs/movenet-thunder.json
                                                #   -> weights/movenet_thunder.pth
    python scripts/convert_movenet_tfjs.py --model multipose
                                                # ../shared/weights/movenet_tfjs/movenet-multipose.json
                                                #   -> weights/movenet_multipose_lightning.pth

The result loads with ``torch.load(path, weights_only=True)``; it holds float16
tensors (the release's own precision, so no value changes), widened to float32 on loading. Fidelity tests:
``tests/test_movenet_thunder.py`` and ``tests/test_movenet_multipose.py`` (weights
read exactly; the forward pass and the decoding match a NumPy evaluation of the
graph's operators to 1e-4).
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

from scripts.tfjs_graph import Graph, _attr, read_graph  # noqa: E402
from streampose.models.movenet import multipose_decode  # noqa: E402
from streampose.models.movenet.network import (MULTIPOSE_VARIANTS, VARIANTS, build_movenet,  # noqa: E402
                                               build_movenet_multipose)

_TFJS = REPO_ROOT.parent / "shared" / "weights" / "movenet_tfjs"
#: --model → (TF.js model.json, state dict written, network builder)
MODELS = {"thunder": (_TFJS / "movenet-thunder.json", REPO_ROOT / "weights" / "movenet_thunder.pth",
                      lambda: build_movenet("thunder")),
          "multipose": (_TFJS / "movenet-multipose.json", REPO_ROOT / "weights" / "movenet_multipose_lightning.pth",
                        lambda: build_movenet_multipose("lightning"))}
SOURCE, OUTPUT = MODELS["thunder"][:2]

_P = "StatefulPartitionedCall/"
_FPN = _P + "center_net_mobile_net_v2fpn_feature_extractor/model_1/"
# (our head, graph scope, separable conv index, relu index, output conv index)
_HEADS = (("center", "center_0", 3, 3, 4), ("keypoint_heatmap", "kpt_heatmap_0", 4, 4, 5),
          ("keypoint_regress", "kpt_regress_0", 5, 5, 6), ("keypoint_offset", "kpt_offset_0", 6, 6, 7))
_MULTIPOSE_HEADS = (("center", "center_0", 3, 3, 4), ("box_scale", "box_scale_0", 4, 4, 5),
                    ("box_offset", "box_offset_0", 5, 5, 6), ("keypoint_heatmap", "kpt_heatmap_0", 6, 6, 7),
                    ("keypoint_regress", "kpt_regress_0", 7, 7, 8), ("keypoint_offset", "kpt_offset_0", 8, 8, 9))


def conv_nodes(model: str = "thunder") -> list[tuple[str, str, str]]:
    """(our module, graph node, activation) for every convolution of a network (--model)."""
    pairs = [("backbone.stem.conv", _FPN + "model/Conv1_relu/Relu6", "relu6"),
             ("backbone.blocks.0.depthwise.conv", _FPN + "model/expanded_conv_depthwise/depthwise", "relu6"),
             ("backbone.blocks.0.project.conv", _FPN + "model/expanded_conv_project_BN/FusedBatchNormV3", "")]
    for i in range(1, 17):
        pairs += [(f"backbone.blocks.{i}.expand.conv", _FPN + f"model/block_{i}_expand_relu/Relu6", "relu6"),
                  (f"backbone.blocks.{i}.depthwise.conv", _FPN + f"model/block_{i}_depthwise/depthwise", "relu6"),
                  (f"backbone.blocks.{i}.project.conv", _FPN + f"model/block_{i}_project_BN/FusedBatchNormV3", "")]
    pairs.append(("backbone.last.conv", _FPN + "model/out_relu/Relu6", "relu6"))
    for level, suffix in ((3, ""), (2, "_1"), (1, "_2"), (0, "_3")):
        pairs.append((f"fpn.lateral.{level}.conv", _FPN + f"conv2d{suffix}/BiasAdd", ""))
    for level, suffix in ((2, ""), (1, "_1"), (0, "_2")):
        pairs += [(f"fpn.smooth.{level}.depthwise.conv",
                   _FPN + f"separable_conv2d{suffix}/separable_conv2d/depthwise", ""),
                  (f"fpn.smooth.{level}.pointwise.conv", _FPN + f"re_lu{suffix}/Relu", "relu")]
    for ours, scope, sep, relu, out in (_MULTIPOSE_HEADS if model == "multipose" else _HEADS):
        pairs += [(f"{ours}.hidden.depthwise.conv", _P + f"{scope}/separable_conv2d_{sep}/separable_conv2d/depthwise",
                   ""),
                  (f"{ours}.hidden.pointwise.conv", _P + f"{scope}/re_lu_{relu}/Relu", "relu"),
                  (f"{ours}.out.conv", _P + f"{scope}/conv2d_{out}/BiasAdd", "")]
    return pairs


def _activation(node: dict) -> str:
    fused = _attr(node, "fused_ops", [])
    return "relu6" if "Relu6" in fused else "relu" if "Relu" in fused else ""


def convert(graph: Graph, model: str = "thunder") -> dict[str, torch.Tensor]:
    """Our state dict from the graph's convolutions (model: a --model choice); ValueError naming the first mismatch."""
    network = MODELS[model][2]()
    own = network.state_dict()
    modules = dict(network.named_modules())
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for ours, node_name, act in conv_nodes(model):
        node = graph.nodes.get(node_name)
        if node is None:
            raise ValueError(f"{ours}: graph node {node_name!r} not found")
        kernel_name = node["input"][1]
        kernel = graph.weights[kernel_name]
        depthwise = node["op"] in ("FusedDepthwiseConv2dNative", "DepthwiseConv2dNative")
        weight = kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(3, 2, 0, 1)
        has_bias = "BiasAdd" in _attr(node, "fused_ops", [])
        bias = graph.weights[node["input"][2]] if has_bias else np.zeros(weight.shape[0], np.float32)
        conv = modules[ours]
        stride = _attr(node, "strides")[1]
        if tuple(own[f"{ours}.weight"].shape) != weight.shape:
            raise ValueError(f"{ours}: shape {tuple(own[f'{ours}.weight'].shape)} vs graph {weight.shape}")
        if conv.stride[0] != stride or _activation(node) != act:
            raise ValueError(f"{ours}: stride/activation {conv.stride[0]}/{act!r} vs graph {stride}/"
                             f"{_activation(node)!r}")
        if (conv.groups > 1) != depthwise:
            raise ValueError(f"{ours}: depthwise {conv.groups > 1} vs graph {depthwise}")
        state[f"{ours}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        state[f"{ours}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
        used.add(kernel_name)
        if has_bias:
            used.add(node["input"][2])
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"modules without a graph convolution: {missing[:5]}")
    # Every 4-D float tensor of the graph is a convolution kernel, except the (1, 1, 1, C) normalisation constants.
    unused = sorted(n for n, v in graph.weights.items()
                    if v.ndim == 4 and v.shape[:3] != (1, 1, 1) and n not in used)
    if unused:
        raise ValueError(f"graph convolution weights not converted: {unused[:5]}")
    if model == "multipose":
        check_input_normalisation(graph, MULTIPOSE_VARIANTS["lightning"])
        check_multipose_constants(graph)
    else:
        check_constants(graph, "thunder")
    return state


def check_input_normalisation(graph: Graph, spec) -> None:
    """The graph's ``(rgb - mean) * scale - offset`` against our ``(rgb - input_mean) / input_std`` (ValueError)."""
    w = graph.weights
    mean, scale, offset = w[_P + "Reshape"].ravel(), w[_P + "truediv"].ravel(), w[_P + "sub_1/y"].ravel()
    if not (np.all(mean == 0) and np.all(offset == 1) and np.allclose(1 / scale, spec.input_std, rtol=1e-6)
            and np.isclose(spec.input_mean, spec.input_std * float(offset[0]), rtol=1e-6)):
        raise ValueError(f"input normalisation: graph mean {mean}, scale {scale}, offset {offset}")


def check_multipose_constants(graph: Graph) -> None:
    """The decoding constants of :mod:`streampose.models.movenet.multipose_decode` against the graph's (ValueError)."""
    w, n = graph.weights, graph.nodes
    d = multipose_decode
    found = {
        "MAX_PEOPLE": (int(w[_P + "TopKV2/k"]), d.MAX_PEOPLE),
        "CENTRE_NMS_WINDOW": (_attr(n[_P + "MaxPool"], "ksize")[1:3], [d.CENTRE_NMS_WINDOW] * 2),
        "CENTRE_NMS_TOLERANCE": (float(w[_P + "Less/y"]), d.CENTRE_NMS_TOLERANCE),
        "KEYPOINT_SPREAD": (float(w[_P + "mul_6/y"]), d.KEYPOINT_SPREAD),
        "KEYPOINT_SCORE_THRESHOLD": (float(w[_P + "Greater_1/y"]), d.KEYPOINT_SCORE_THRESHOLD),
        "OUTPUT_STRIDE": ([int(w[_P + "mul/y"]), int(w[_P + "mul_1/y"]), float(w[_P + "truediv_8/x"]),
                           float(w[_P + "truediv_9/x"]), float(w[_P + "mul_5/y"])], [d.OUTPUT_STRIDE] * 5),
        "BOX_HALF": ([float(w["ConstantFolding/" + _P + f"truediv_{i}_recip"]) for i in range(2, 6)], [0.5] * 4),
    }
    for name, (graph_value, ours) in found.items():
        if graph_value != ours:
            raise ValueError(f"{name}: graph {graph_value} vs ours {ours}")
    keypoint_index = np.tile(np.arange(17, dtype=np.int32), d.MAX_PEOPLE)
    if not (np.array_equal(w[_P + "Reshape_17"], keypoint_index) and np.array_equal(w[_P + "Reshape_19"],
                                                                                   keypoint_index)):
        raise ValueError("keypoint gather indices are not 0..16 per person")


def check_constants(graph: Graph, variant: str) -> None:
    """The constants :mod:`streampose.models.movenet` re-implements, against the graph's (ValueError)."""
    spec = VARIANTS[variant]
    w = graph.weights
    check_input_normalisation(graph, spec)
    if float(w[_P + "add_5/y"]) != spec.distance_bias:
        raise ValueError(f"distance bias: graph {float(w[_P + 'add_5/y'])} vs {spec.distance_bias}")
    grid = spec.input_size // 4
    centre = w["ConstantFolding/" + _P + "truediv_2_recip"][..., 0]
    yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float32)
    ours = (1.0 / (np.sqrt((yy - grid // 2) ** 2 + (xx - grid // 2) ** 2) + np.float32(1.8))).astype(np.float16)
    # Our decoder rounds its weighting to float16 like the stored constant: all but a handful of the
    # grid's entries come out identical, the rest one float16 step apart.
    steps = np.abs(centre.astype(np.float32) - ours.astype(np.float32)) / np.spacing(ours).astype(np.float32)
    if steps.max() > 1 or (steps > 0).sum() > grid * grid // 100:
        raise ValueError(f"centre weighting differs from float16(1 / (distance to the grid centre + 1.8)): "
                         f"{int((steps > 0).sum())} entries, up to {steps.max():.1f} float16 steps")
    if not np.all(w[_P + "Reshape_13"] == np.float32(1 / grid)):
        raise ValueError(f"output scale: graph {w[_P + 'Reshape_13'].ravel()} vs 1/{grid}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="thunder",
                        help="which release (default: %(default)s; sets the default --source and --output)")
    parser.add_argument("--source", type=Path, help="the TF.js model.json (default: the --model's, "
                        "../shared/weights/movenet_tfjs/movenet-<model>.json)")
    parser.add_argument("--output", type=Path, help="state dict to write (default: the --model's file in weights/)")
    args = parser.parse_args(argv)
    source, output, _ = MODELS[args.model]
    args.source, args.output = args.source or source, args.output or output
    graph = read_graph(args.source)
    state = convert(graph, args.model)
    # The release stores its weights as float16, so float16 keeps every value exactly at half the size;
    # loading widens them to the network's float32.
    stored = {k: v.half() for k, v in state.items()}
    if any(not torch.equal(stored[k].float(), v) for k, v in state.items()):
        raise ValueError("a weight is not exactly representable in float16")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(stored, args.output)
    count = sum(t.numel() for t in state.values())
    print(f"wrote {args.output} ({len(state)} tensors, {count / 1e6:.2f} M parameters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
