"""Checks shared by the TF.js conversion fidelity tests (MoveNet Thunder, MultiPose)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scripts.convert_movenet_tfjs import _FPN, conv_nodes, convert
from scripts.tfjs_graph import Graph

#: our backbone and FPN outputs → the graph nodes that compute them (the same in every MoveNet release)
BACKBONE_LAYERS = {
    "tap_stride4": _FPN + "model/block_2_add/add",
    "tap_stride8": _FPN + "model/block_5_add/add",
    "tap_stride16": _FPN + "model/block_9_add/add",
    "tap_stride32": _FPN + "model/out_relu/Relu6",
    "fpn": _FPN + "re_lu_2/Relu",
}


def assert_weights_read_exactly(graph: Graph, shard: Path, float16_count: int) -> None:
    """Re-encoding every weight in its stored dtype gives back the shard byte for byte."""
    encoded = b"".join(graph.weights[name].astype({"float16": np.float16, "int32": np.int32}[graph.stored_dtypes[name]])
                       .tobytes() for name in graph.weights)
    assert encoded == shard.read_bytes()
    assert sum(v == "float16" for v in graph.stored_dtypes.values()) == float16_count


def assert_bundled_state_dict_is_the_graphs(graph: Graph, bundled_path: str, model: str) -> None:
    """The committed float16 state dict equals a fresh conversion, and each of its kernels, put back in
    TensorFlow's layout (HWIO; depthwise (kh, kw, C, 1)), is the graph's kernel."""
    bundled = torch.load(bundled_path, weights_only=True)
    assert all(t.dtype == torch.float16 for t in bundled.values())
    converted = convert(graph, model)
    assert set(bundled) == set(converted)
    for key, tensor in converted.items():
        assert torch.equal(bundled[key].float(), tensor), key
    for ours, node_name, _ in conv_nodes(model):
        kernel = graph.weights[graph.nodes[node_name]["input"][1]]
        weight = bundled[f"{ours}.weight"].float().numpy()
        assert np.array_equal(weight.transpose(2, 3, 0, 1) if "depthwise" in ours else weight.transpose(2, 3, 1, 0),
                              kernel), ours
