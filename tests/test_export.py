"""`streampose export` and the inference backends: every model with weights here exports to a checked ONNX
file whose raw outputs match our PyTorch network within 1e-4 relative, decoded keypoints agree on
../shared/coco crops, and torch / ONNX Runtime / OpenVINO agree on the visible goldens' inputs."""

from __future__ import annotations

import importlib.util
import json

import cv2
import numpy as np
import pytest
import torch

from hrnet_recipe import one_torch_thread, recipe_checkpoint  # noqa: F401
from streampose.cli import main as cli_main
from streampose.errors import ConfigError
from streampose.export.backends import BackendNetwork, on_backend, prepare_network
from streampose.models import registry
from streampose.models.hrnet.heatmap_decode import decode_heatmaps
from streampose.models.hrnet.simdr_decode import decode_simdr, simdr_probabilities
from streampose.topdown.crops import build_crop_batch, crop_transforms, xyxy_to_center_scale
from streampose.topdown.estimator import TopDownEstimator

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

NET_TOL = 1e-4  # max|ours - torch| <= NET_TOL * max|torch|, per output
BACKENDS = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])


def _coco(shared_dir):
    data = json.loads((shared_dir / "coco" / "test_coco.json").read_text())
    out = []
    for image in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"] and not a.get("iscrowd")]
        xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        out.append((cv2.imread(str(shared_dir / "coco" / image["file_name"])),
                    np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)))
    return out


def _crops(shared_dir, crop):
    """Every ground-truth person of ../shared/coco as the model's network input."""
    batches = []
    for image, xyxy in _coco(shared_dir):
        centers, scales = xyxy_to_center_scale(xyxy, crop)
        trans = crop_transforms(centers, scales, crop.input_size_wh)
        batches.append(build_crop_batch([image], np.zeros(len(xyxy), np.int64), trans, crop))
    return torch.cat(batches)


def _relative_errors(ours, reference) -> list[float]:
    ours = ours if isinstance(ours, (tuple, list)) else [ours]
    reference = reference if isinstance(reference, (tuple, list)) else [reference]
    assert len(ours) == len(reference)
    errors = []
    for o, r in zip(ours, reference):
        o, r = np.asarray(o, np.float32), np.asarray(r, np.float32)
        assert o.shape == r.shape
        errors.append(float(np.abs(o - r).max() / np.abs(r).max()))
    return errors


def _assert_net_close(ours, reference, what, tol=NET_TOL):
    errors = _relative_errors(ours, reference)
    assert max(errors) <= tol, (what, errors, tol)


def _detector_input(shared_dir, size):
    image = cv2.resize(_coco(shared_dir)[1][0], (size, size))
    return torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0).repeat(2, 1, 1, 1)


# (model argument of `streampose export`, kind) for every model whose weights are here.
def _models(shared_dir):
    models = [(name, None) for name in ("movenet_lightning", "light_person_detector_192", "yolox_nano_416")]
    models.append((str(shared_dir / "weights" / "yolov5n.pt"), None))
    for name in ("pose_hrnet_w32_256x192", "simdr_hrnet_w32_256x192", "pose_higher_hrnet_w32_512"):
        models.append((str(recipe_checkpoint(name)), name))
    return models


@pytest.mark.parametrize("index", range(7), ids=["movenet", "light_detector", "yolox_nano", "yolov5n",
                                                 "hrnet_w32_recipe", "simdr_w32_recipe", "higherhrnet_w32_recipe"])
def test_export_is_checked_and_faithful(shared_dir, tmp_path, capsys, index):
    model, _ = _models(shared_dir)[index]
    out = tmp_path / "model.onnx"
    assert cli_main(["export", model, "--output", str(out)]) == 0
    assert "ONNX opset 17" in capsys.readouterr().out
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert proto.opset_import[0].version == 17 and meta["streampose.opset"] == "17"
    assert not list(tmp_path.glob(".*partial*"))

    from streampose.export.cli import load_model

    network, entry, _ = load_model(model)
    shape = json.loads(meta["streampose.input_shape"])
    if entry.role == "detector":
        x = _detector_input(shared_dir, shape[2])
    elif entry.role == "bottomup":
        # the golden's network input (704x512), cut to the file's 512x512
        x = torch.from_numpy(np.load(shared_dir / "golden" / "higherhrnet_w32_512.npz")["bus_input"][:, :, :512])
    else:
        crop = registry.build(entry.name, weights=model if entry.name != model else None).crop
        x = _crops(shared_dir, crop)
    assert x.shape[0] > 1 or entry.role == "bottomup"  # the batch axis is dynamic: more than the export's 1
    from streampose.export.onnx_export import _cpu_float_copy

    def numpy(outputs):
        return [t.numpy() for t in (outputs if isinstance(outputs, (tuple, list)) else [outputs])]

    with torch.inference_mode():
        reference = numpy(_cpu_float_copy(network)(x))  # the exported layout (contiguous)
        runtime = numpy(network(x))  # as the step runs it (the detectors: channels-last)
    # fp32 sums in another order move YOLOX-Nano's unnormalised outputs by up to ~3e-4 of their maximum
    # within torch itself; the export is held to 1e-4, or to twice torch's own spread where that is larger.
    tol = max(NET_TOL, 2 * max(_relative_errors(runtime, reference)))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    _assert_net_close(session.run(None, {"input": x.numpy()}), reference, model, tol)
    if entry.name != "yolox_nano_416":
        assert tol == NET_TOL


@pytest.mark.parametrize("name", ["pose_hrnet_w32_256x192", "simdr_hrnet_w32_256x192", "movenet_lightning"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_decoded_keypoints_agree_on_coco_crops(shared_dir, name, backend):
    weights = None if name == "movenet_lightning" else recipe_checkpoint(name)
    torch_model = registry.build(name, weights=weights) if weights else registry.build(name)
    other = registry.build(name, weights=weights) if weights else registry.build(name)
    other.network = on_backend(other.network, backend, "cpu", name)
    assert isinstance(other.network, BackendNetwork)
    people = _coco(shared_dir)
    a = TopDownEstimator(torch_model).predict_batch([p[0] for p in people], [p[1] for p in people])
    b = TopDownEstimator(other).predict_batch([p[0] for p in people], [p[1] for p in people])
    for pa, pb in zip(a, b):
        if name == "movenet_lightning":  # keypoints regressed from the maps: float noise only
            assert np.abs(pa.keypoints - pb.keypoints).max() < 1e-2
        else:  # argmax decoding of (nearly) equal maps: the same keypoints
            np.testing.assert_array_equal(pa.keypoints, pb.keypoints)
        np.testing.assert_allclose(pa.keypoint_scores, pb.keypoint_scores, atol=1e-4)


@pytest.mark.parametrize("golden, model", [("hrnet_w32_256x192_topdown", "pose_hrnet_w32_256x192"),
                                           ("simdr_w32_256x192", "simdr_hrnet_w32_256x192")])
def test_backends_equal_keypoints_on_the_goldens_inputs(shared_dir, golden, model):
    g = np.load(shared_dir / "golden" / f"{golden}.npz")
    network = registry.build(model, weights=recipe_checkpoint(model)).network
    x = torch.from_numpy(g["input"])
    keypoints = {}
    for backend in ["torch"] + BACKENDS:
        net = on_backend(network, backend, "cpu", model)
        with torch.inference_mode():
            out = net(x)
        if golden.startswith("hrnet"):
            _assert_net_close(out.numpy(), g["heatmaps"], backend)
            keypoints[backend] = decode_heatmaps(out.numpy())[0]
        else:
            _assert_net_close([o.numpy() for o in out], [g["output_x"], g["output_y"]], backend)
            keypoints[backend] = decode_simdr(simdr_probabilities(out[0]), simdr_probabilities(out[1]), 2.0)[0]
    for backend, coords in keypoints.items():
        np.testing.assert_allclose(coords, keypoints["torch"], atol=1e-3, rtol=0, err_msg=backend)


def test_backends_on_the_higherhrnet_golden_input(shared_dir):
    g = np.load(shared_dir / "golden" / "higherhrnet_w32_512.npz")
    model = registry.build("pose_higher_hrnet_w32_512", weights=recipe_checkpoint("pose_higher_hrnet_w32_512"))
    network = model.network
    x = torch.from_numpy(g["bus_input"])
    for backend in BACKENDS:
        out = on_backend(network, backend, "cpu", "higherhrnet")(x)
        _assert_net_close([o.numpy() for o in out], [g["bus_raw0_full"], g["bus_raw1_full"]], backend)


@pytest.mark.parametrize("argv, message", [
    (["export", "no_such_model", "--output", "{tmp}/a.onnx"], "error: no_such_model: no such model or file"),
    (["export", "movenet_lightning", "--output", "{tmp}/missing/a.onnx"], "error: --output: folder"),
    (["export", "movenet_lightning", "--img-size", "256", "--output", "{tmp}/a.onnx"], "error: --img-size: only"),
    (["export", "{tmp}/README.md", "--output", "{tmp}/a.onnx"], "error: {tmp}/README.md: not a checkpoint"),
])
def test_export_errors_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "README.md").write_text("not weights")
    assert cli_main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message.format(tmp=tmp_path)) and "\n" not in err
    assert not (tmp_path / "a.onnx").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT installed")
def test_engine_and_tensorrt_backend_refused_without_tensorrt(tmp_path, capsys):
    assert cli_main(["export", "movenet_lightning", "--format", "engine", "--output", str(tmp_path / "m.engine")]) == 2
    assert "needs NVIDIA TensorRT" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="backend: tensorrt is not installed here"):
        on_backend(torch.nn.Identity(), "tensorrt", "cpu")


def test_precision_other_than_fp32_needs_the_torch_backend():
    with pytest.raises(ConfigError, match="precision: bf16 runs on the torch backend only"):
        prepare_network(torch.nn.Identity(), backend="onnxruntime", precision="bf16", device="cpu")


def test_a_step_runs_on_onnxruntime_with_the_same_detections(shared_dir):
    from streampose.records import Frame, FramePacket
    from streampose.step import build_step

    image = _coco(shared_dir)[1][0]
    boxes = {}
    for backend in ("torch", "onnxruntime"):
        step = build_step({"type": "yolox_detector", "backend": backend, "precision": "fp32", "device": "cpu"})
        step.start()
        frame = Frame(FramePacket(0, "x", 0, None, image.shape, 0.0), image)
        step.process([frame])
        boxes[backend] = frame.packet.detections.xyxy
    assert len(boxes["torch"]) and boxes["torch"].shape == boxes["onnxruntime"].shape
    assert np.abs(boxes["torch"] - boxes["onnxruntime"]).max() < 1e-2


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("tensorrt") is None,
                    reason="needs a CUDA device and TensorRT")
def test_tensorrt_engine_matches_torch_on_the_golden_input(shared_dir, tmp_path):
    g = np.load(shared_dir / "golden" / "hrnet_w32_256x192_topdown.npz")
    network = registry.build("pose_hrnet_w32_256x192", weights=recipe_checkpoint("pose_hrnet_w32_256x192"),
                             device="cuda").network
    x = torch.from_numpy(g["input"]).cuda().repeat(3, 1, 1, 1)
    engine = on_backend(network, "tensorrt", "cuda", "hrnet", input_shape_chw=(3, 256, 192))
    with torch.inference_mode():
        ours = engine(x)
    assert ours.is_cuda
    _assert_net_close(ours.cpu().numpy(), np.repeat(g["heatmaps"], 3, axis=0), "tensorrt fp32", tol=1e-3)
    out = tmp_path / "hrnet.engine"
    assert cli_main(["export", str(recipe_checkpoint("pose_hrnet_w32_256x192")), "--format", "engine",
                     "--fp16", "--output", str(out)]) == 0
    assert out.stat().st_size > 0
