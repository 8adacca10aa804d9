"""Our MoveNet against Google's int8 TFLite file run by the TFLite runtime, and the converter.

Crops follow the recipe of the TFLite pipeline in ../shared/SOURCES.md: a
square 1.25x each ground-truth box of ../shared/coco, resized to 192x192.

The int8 graph rounds every activation and its decoding (grid, distances,
the divided heatmaps) to int8, so its keypoints move by about 2.5 px
(median) when the input changes by one grey level. The float network cannot
agree with it more closely than the runtime agrees with itself (a relative
bound); the int8-faithful mode (:class:`MoveNetInt8`) reproduces it
exactly, which the issue's bound (< 2 px mean at 192x192) checks.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from streampose.models.movenet.network import VARIANTS, MoveNetSinglePose, build_movenet
from streampose.models.movenet.decode import decode_single_pose
from streampose.models.movenet.int8 import DECODE_TENSORS, MoveNetInt8

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
TFLITE = "movenet_singlepose_lightning_int8.tflite"
SIZE = 192


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def crops(shared_dir) -> np.ndarray:
    """(14, 192, 192, 3) uint8 RGB crops, square 1.25x each ground-truth box."""
    gt = json.loads((shared_dir / "coco" / "test_coco.json").read_text())
    files = {im["id"]: im["file_name"] for im in gt["images"]}
    out = []
    for ann in gt["annotations"]:
        image = cv2.imread(str(shared_dir / "coco" / files[ann["image_id"]]))
        x, y, w, h = ann["bbox"]
        side = 1.25 * max(w, h)
        scale = SIZE / side
        warp = np.array([[scale, 0, SIZE / 2 - (x + w / 2) * scale], [0, scale, SIZE / 2 - (y + h / 2) * scale]])
        crop = cv2.warpAffine(image, warp, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        out.append(crop[..., ::-1])
    return np.ascontiguousarray(np.stack(out))


@pytest.fixture(scope="module")
def interpreter(shared_dir):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    with warnings.catch_warnings():  # keeping intermediate tensors is what the per-layer test needs
        warnings.simplefilter("ignore", UserWarning)
        it = litert.Interpreter(model_path=str(shared_dir / "weights" / TFLITE),
                                experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


@pytest.fixture(scope="module")
def net():
    model = build_movenet("lightning").eval()
    model.load_state_dict(torch.load(REPO / "weights" / "movenet_lightning.pth", weights_only=True))
    return model


def _tflite_keypoints(interpreter, crop: np.ndarray) -> np.ndarray:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], crop[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0, 0].copy()


def _dequantized(interpreter, index: int) -> np.ndarray:
    detail = next(d for d in interpreter.get_tensor_details() if d["index"] == index)
    values = interpreter.get_tensor(index).astype(np.float64)
    q = detail["quantization_parameters"]
    return (values - q["zero_points"][0]) * q["scales"][0] if len(q["scales"]) else values


def _pixel_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-keypoint distances at 192x192 crop scale between (..., 17, 3) (y, x, score) arrays."""
    return np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1]).ravel() * SIZE


def _ours(net, crops: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return MoveNetSinglePose(net)(torch.from_numpy(crops).permute(0, 3, 1, 2).float()).numpy()


def test_every_convolution_matches_the_graph(shared_dir, interpreter, net, crops):
    """Fed the runtime's own input of each layer, each of our 74 convolutions (with its activation)
    reproduces the runtime's int8 output up to its final rounding (half a quantization step)."""
    convert = _load_script("convert_movenet")
    graph = convert.TFLiteGraph(shared_dir / "weights" / TFLITE)
    _tflite_keypoints(interpreter, crops[2])
    modules = dict(net.named_modules())
    convs = [op for name, op in graph.operators() if name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    order = convert.graph_order()
    assert len(convs) == len(order) == 74
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    for op, (ours, _, _) in zip(convs, order):
        x = torch.from_numpy(_dequantized(interpreter, op.Inputs(0))).permute(0, 3, 1, 2).float()
        expected = _dequantized(interpreter, op.Outputs(0))
        step = details[op.Outputs(0)]["quantization_parameters"]["scales"][0]
        with torch.no_grad():
            got = modules[ours.rsplit(".", 1)[0]](x).permute(0, 2, 3, 1).numpy()
        assert np.abs(got - expected).max() <= 0.5001 * step, ours


# Our decoder's rounding points → the graph's int8 tensors at the same points.
_GRAPH_ROUNDING = DECODE_TENSORS
# The head maps as the graph's decoding reads them: centre, heatmaps (sigmoid), offsets, regression.
_HEAD_MAPS = ("Sigmoid_1", "Sigmoid", "kpt_offset_0/conv2d_7/BiasAdd", "kpt_regress_0/conv2d_6/BiasAdd")


def _tensor(interpreter, name: str, ndim: int | None = None) -> dict:
    matches = [d for d in interpreter.get_tensor_details() if (d["name"] == name or d["name"].startswith(name + ";"))
               and (ndim is None or len(d["shape"]) == ndim)]
    assert len(matches) == 1, (name, [d["name"] for d in matches])
    return matches[0]


def test_decoding_matches_the_graph_on_its_own_maps(interpreter, crops):
    """Fed the runtime's head maps, and rounding where the graph rounds, our decoder gives the
    runtime's keypoints (exactly, but for the graph's 1/48 constant being int8 too); in plain
    float it agrees to the graph's output step (0.79 px) for most keypoints."""
    grids = {}
    for ours, name in _GRAPH_ROUNDING.items():
        q = _tensor(interpreter, name)["quantization_parameters"]
        grids[ours] = (float(q["scales"][0]), float(q["zero_points"][0]))

    def graph_rounding(name: str, t: torch.Tensor) -> torch.Tensor:
        scale, zero = grids[name]
        return (torch.clamp(torch.round(t / scale) + zero, -128, 127) - zero) * scale

    exact, plain = [], []
    for crop in crops:
        expected = _tflite_keypoints(interpreter, crop)
        maps = [torch.from_numpy(_dequantized(interpreter, _tensor(interpreter, n, ndim=4)["index"])).permute(0, 3, 1, 2)
                .float() for n in _HEAD_MAPS]
        exact.append(_pixel_errors(decode_single_pose(*maps, rounding=graph_rounding)[0].numpy(), expected))
        plain.append(_pixel_errors(decode_single_pose(*maps)[0].numpy(), expected))
    exact, plain = np.concatenate(exact), np.concatenate(plain)
    assert exact.max() <= 0.8  # at most one output step
    assert exact.mean() <= 0.2
    assert np.median(plain) <= 1.0


def test_keypoints_match_tflite_end_to_end(interpreter, net, crops):
    """Our float MoveNet is at least as close to the int8 runtime as the runtime is to itself
    when its input changes by one grey level (see the module docstring)."""
    expected = np.stack([_tflite_keypoints(interpreter, c) for c in crops])
    ours = _ours(net, crops)
    rng = np.random.default_rng(0)
    noisy = np.clip(crops.astype(np.int16) + rng.integers(-1, 2, crops.shape), 0, 255).astype(np.uint8)
    runtime_noisy = np.stack([_tflite_keypoints(interpreter, c) for c in noisy])
    errors, self_errors = _pixel_errors(ours, expected), _pixel_errors(runtime_noisy, expected)
    # measured: ours 3.8 px mean / 2.1 median; the runtime against itself 4.1 / 2.5
    assert errors.mean() <= self_errors.mean()
    assert np.median(errors) <= np.median(self_errors)
    score_gap = np.abs(ours[..., 2] - expected[..., 2]).mean()
    assert score_gap <= np.abs(runtime_noisy[..., 2] - expected[..., 2]).mean()
    assert abs((ours[..., 2] - expected[..., 2]).mean()) <= 0.03  # no bias in the scores


def test_int8_mode_matches_tflite_end_to_end(interpreter, net, crops):
    """The issue's bound: keypoints within 2 px mean of the runtime's at 192x192 (measured: 0.00 px,
    all 17 keypoints of the 14 people identical), scores equal to the runtime's output step."""
    expected = np.stack([_tflite_keypoints(interpreter, c) for c in crops])
    quant = torch.load(REPO / "weights" / "movenet_lightning_quant.pth", weights_only=True)
    model = MoveNetInt8(net, quant).eval()
    with torch.no_grad():
        x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() - 127.0) / 127.5
        ours = decode_single_pose(*model(x), rounding=model.decode_rounding).numpy()
    errors = _pixel_errors(ours, expected)
    assert errors.mean() < 2.0
    assert errors.mean() < 0.5 and np.median(errors) < 0.01
    assert np.abs(ours[..., 2] - expected[..., 2]).max() <= 0.0041  # one output step (1/244)


def test_int8_grids_need_every_point(net):
    quant = torch.load(REPO / "weights" / "movenet_lightning_quant.pth", weights_only=True)
    del quant["fpn.add.1"]
    with pytest.raises(ValueError, match="fpn.add.1"):
        MoveNetInt8(net, quant)


def test_converter_reproduces_committed_state_dict(shared_dir, tmp_path):
    pytest.importorskip("tflite")
    convert = _load_script("convert_movenet")
    out, quant_out = tmp_path / "movenet.pth", tmp_path / "movenet_quant.pth"
    assert convert.main(["--source", str(shared_dir / "weights" / TFLITE), "--output", str(out),
                         "--quant-output", str(quant_out)]) == 0
    for fresh_path, name in ((out, "movenet_lightning.pth"), (quant_out, "movenet_lightning_quant.pth")):
        fresh = torch.load(fresh_path, weights_only=True)
        committed = torch.load(REPO / "weights" / name, weights_only=True)
        assert fresh.keys() == committed.keys()
        for key in fresh:
            assert torch.equal(fresh[key], committed[key]), key


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_builds_and_runs(variant):
    net = build_movenet(variant).eval()
    size = VARIANTS[variant].input_size
    with torch.no_grad():
        out = MoveNetSinglePose(net)(torch.zeros(2, 3, size, size))
    assert out.shape == (2, 17, 3)
    assert ((out[..., :2] >= -1) & (out[..., :2] <= 2)).all()


def test_topdown_adapter_int8_mode_gives_the_runtime_keypoints(interpreter, crops):
    """The estimator's adapter, fed crops normalised as its CropSpec says, in int8 mode."""
    from streampose.models.movenet.topdown import load_movenet_topdown

    model = load_movenet_topdown(REPO / "weights" / "movenet_lightning.pth", quantized=True)
    spec = model.crop
    x = (crops.astype(np.float32) / 255 - np.float32(spec.mean[0])) / np.float32(spec.std[0])
    out = model.infer(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
    expected = np.stack([_tflite_keypoints(interpreter, c) for c in crops])
    np.testing.assert_allclose(out.coords[..., 0], expected[..., 1] * SIZE, atol=1e-3)
    np.testing.assert_allclose(out.coords[..., 1], expected[..., 0] * SIZE, atol=1e-3)
