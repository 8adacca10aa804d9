"""Convert YOLOX-style ONNX detectors to plain PyTorch state dicts for streampose.

Reads the convolution weights from the ONNX graph (the ``onnx`` package, a
conversion-only dependency) and pairs them, in execution order, with the
convolutions of :class:`streampose.models.yolox.network.YoloxNet`; every pair is
checked for shape, groups, stride and padding before anything is written.

    python scripts/convert_yolox.py                      # both bundled detectors
    python scripts/convert_yolox.py --onnx X.onnx --variant nano --output weights/x.pth

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

from streampose.models.yolox.network import build_yolox  # noqa: E402

SHARED_WEIGHTS = REPO_ROOT.parent / "shared" / "weights"

# (source file in ../shared/weights, variant, output file in weights/)
BUNDLED = (
    ("light_person_detector_192.onnx", "nano_person", "light_person_detector_192.pth"),
    ("yolox_nano_416x416.onnx", "nano", "yolox_nano_416.pth"),
)


def conv_execution_order(model: torch.nn.Module, image_hw: tuple[int, int]) -> list[str]:
    """Names of the model's Conv2d modules in the order a forward pass runs them."""
    names = {module: name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)}
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(names[mod])) for m in names]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *image_hw))
    finally:
        for h in hooks:
            h.remove()
    return order


def onnx_convolutions(path: Path) -> list[dict]:
    """The graph's Conv nodes in graph order: weight, bias and attributes."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        weight = initializers[node.input[1]]
        bias = initializers[node.input[2]] if len(node.input) > 2 else np.zeros(weight.shape[0], weight.dtype)
        convs.append({"name": node.name, "weight": weight, "bias": bias, "group": attrs.get("group", 1),
                      "strides": tuple(attrs.get("strides", (1, 1))), "pads": tuple(attrs.get("pads", (0,) * 4))})
    return convs


def convert(onnx_path: Path, variant: str) -> dict[str, torch.Tensor]:
    """State dict of ``build_yolox(variant)`` filled from ``onnx_path``; ValueError on any mismatch."""
    model = build_yolox(variant).eval()
    modules = dict(model.named_modules())
    order = conv_execution_order(model, (64, 64))
    convs = onnx_convolutions(onnx_path)
    if len(order) != len(convs):
        raise ValueError(f"{onnx_path.name}: {len(convs)} convolutions in the graph, {len(order)} in {variant!r}")
    state: dict[str, torch.Tensor] = {}
    for name, conv in zip(order, convs):
        module = modules[name]
        expected = (tuple(module.weight.shape), module.groups, module.stride, module.padding * 2)
        found = (conv["weight"].shape, conv["group"], conv["strides"], conv["pads"])
        if expected != found:
            raise ValueError(f"{onnx_path.name}: {conv['name']} {found} does not fit {name} {expected}")
        state[f"{name}.weight"] = torch.from_numpy(conv["weight"].astype(np.float32).copy())
        state[f"{name}.bias"] = torch.from_numpy(conv["bias"].astype(np.float32).copy())
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise ValueError(f"{variant!r} parameters left without weights: {sorted(missing)}")
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, help="one ONNX file (default: both bundled detectors)")
    parser.add_argument("--variant", help="YOLOX variant of --onnx (nano_person, nano)")
    parser.add_argument("--output", type=Path, help="output .pth for --onnx")
    parser.add_argument("--source-dir", type=Path, default=SHARED_WEIGHTS, help="where the bundled ONNX files are")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "weights", help="where bundled outputs go")
    args = parser.parse_args(argv)
    if args.onnx is not None:
        if not (args.variant and args.output):
            parser.error("--onnx needs --variant and --output")
        jobs = [(args.onnx, args.variant, args.output)]
    else:
        jobs = [(args.source_dir / src, variant, args.output_dir / out) for src, variant, out in BUNDLED]
    for src, variant, out in jobs:
        state = convert(src, variant)
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, out)
        count = sum(t.numel() for t in state.values())
        print(f"{src.name} -> {out} ({variant}, {len(state)} tensors, {count / 1e6:.2f} M parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
