"""The restricted checkpoint loader: real files load, round trips are exact, payloads never run."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streampose.errors import CheckpointError, UserError  # noqa: E402
from streampose.models.yolov5.checkpoint import load_yolov5_checkpoint, recover_checkpoint, walk_state_dict  # noqa: E402
from streampose.models.yolov5.network import network_from_checkpoint  # noqa: E402
from streampose.models.yolov5.detector import YoloV5Detector  # noqa: E402
from streampose.models.yolov5.safe_unpickle import PickledObject, restricted_load  # noqa: E402


def _torch_zip(path, data_pkl: bytes) -> None:
    """A torch zip checkpoint whose object pickle is ``data_pkl`` (no storages)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")


def _legacy_file(path, data_pkl: bytes) -> None:
    """A legacy (pre-zip) torch checkpoint whose object pickle is ``data_pkl``."""
    header = b"".join(pickle.dumps(v, protocol=2) for v in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
    path.write_bytes(header + data_pkl + pickle.dumps([], protocol=2))


# ------------------------------------------------------------------ real checkpoint


def test_real_yolov5n_loads_without_torch_load(shared_dir, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load must not be used for yolov5 checkpoints")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    ckpt = load_yolov5_checkpoint(shared_dir / "weights" / "yolov5n.pt")
    assert ckpt.strides == (8.0, 16.0, 32.0)
    assert ckpt.names[0] == "person" and len(ckpt.names) == 80
    assert ckpt.bn_eps == pytest.approx(1e-3)
    assert ckpt.activation.name == "silu"
    assert ckpt.yaml["backbone"][0] == [-1, 1, "Conv", [64, 6, 2, 2]]  # v6.x stem
    assert ckpt.yaml["backbone"][-1][2] == "SPPF"
    # The file is fp16; everything we hand on is fp32.
    assert all(t.dtype == torch.float32 for t in ckpt.state_dict.values() if t.is_floating_point())
    expected = torch.tensor([[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
                            dtype=torch.float32).view(3, 3, 2) / torch.tensor([8.0, 16.0, 32.0]).view(3, 1, 1)
    assert torch.equal(ckpt.anchors, expected)
    raw = restricted_load(shared_dir / "weights" / "yolov5n.pt")
    assert isinstance(raw["model"], PickledObject) and raw["model"].pickled_name == "models.yolo.Model"
    # Placeholders hold data only: the fp16 weights are plain tensors, bit-identical after the cast.
    conv = raw["model"].get("_modules")["model"].get("_modules")["0"].get("_modules")["conv"]
    weight = conv.get("_parameters")["weight"]
    assert type(weight) is torch.Tensor and weight.dtype == torch.float16
    assert torch.equal(weight.float(), ckpt.state_dict["model.0.conv.weight"])


# ------------------------------------------------------------------ round trips


def _sample_objects():
    base = torch.arange(24, dtype=torch.float32).view(4, 6)
    return OrderedDict(
        plain=base,
        view=base[1:, 2:5],  # offset and strides into a shared storage
        transposed=base.t(),
        half=torch.linspace(-2, 2, 7).half(),
        bf16=torch.ones(3, dtype=torch.bfloat16),
        long=torch.tensor([1, -2, 3], dtype=torch.int64),
        flags=torch.tensor([True, False]),
        empty=torch.zeros(0, 3),
        scalar=torch.tensor(2.5, dtype=torch.float64),
        param=torch.nn.Parameter(torch.ones(2, 2)),
        numpy=np.array([0.25, 0.5]),
        numpy_scalar=np.float64(0.75),
        meta={"names": ["person", "head"], "set": {1, 2}, "bytes": b"\x00\xff", "tuple": (1, 2.0, None)},
    )


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_round_trip_matches_torch(tmp_path, zip_format):
    objects = _sample_objects()
    path = tmp_path / "sample.pt"
    torch.save(objects, path, _use_new_zipfile_serialization=zip_format)
    loaded = restricted_load(path)
    for key in ("plain", "view", "transposed", "half", "bf16", "long", "flags", "empty", "scalar", "param"):
        expected = objects[key].detach()
        assert type(loaded[key]) is torch.Tensor, key
        assert loaded[key].dtype == expected.dtype and loaded[key].shape == expected.shape, key
        assert torch.equal(loaded[key], expected), key
    np.testing.assert_array_equal(loaded["numpy"], objects["numpy"])
    assert loaded["numpy_scalar"] == 0.75
    assert loaded["meta"] == objects["meta"]


def test_legacy_format_module_pickle(tmp_path):
    # torch < 1.6 files name every nn.Module class through a ("module", cls, file, source) id.
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4, eps=1e-3),
                                torch.nn.SiLU()).eval()
    torch.nn.init.normal_(model[1].running_mean)
    path = tmp_path / "legacy_module.pt"
    torch.save({"model": model}, path, _use_new_zipfile_serialization=False)
    loaded = restricted_load(path)["model"]
    assert isinstance(loaded, PickledObject)
    assert loaded.pickled_name == "torch.nn.modules.container.Sequential"
    ours = walk_state_dict(loaded)
    expected = model.state_dict()
    assert list(ours) == list(expected)
    assert all(torch.equal(ours[k], expected[k]) for k in expected)
    assert loaded.get("_modules")["1"].get("eps") == 1e-3


def test_anchors_come_from_the_file_not_the_yaml(shared_dir):
    # AutoAnchor rewrites the Detect anchors of a trained model; its yaml keeps the defaults.
    model = restricted_load(shared_dir / "weights" / "yolov5n.pt")["model"]
    detect = model.get("_modules")["model"].get("_modules")["24"]
    evolved = detect.get("_buffers")["anchors"].float() * torch.tensor([1.25, 0.75])
    detect.get("_buffers")["anchors"] = evolved
    ckpt = recover_checkpoint(model, "yolov5n.pt")
    assert torch.equal(ckpt.anchors, evolved)
    assert ckpt.yaml["anchors"][0] == [10, 13, 16, 30, 33, 23]
    # The rebuilt head decodes with them: widths scale by 1.25 and heights by 0.75 against the
    # same network with the original anchors.
    evolved_net = network_from_checkpoint(ckpt)
    detect.get("_buffers")["anchors"] = evolved / torch.tensor([1.25, 0.75])
    original_net = network_from_checkpoint(recover_checkpoint(model, "yolov5n.pt"))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ratio = evolved_net(x)[0, :, 2:4] / original_net(x)[0, :, 2:4]
    torch.testing.assert_close(ratio, torch.tensor([1.25, 0.75]).expand_as(ratio))


# ------------------------------------------------------------------ malicious files


class _SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def _import_payload(tmp_path, marker) -> bytes:
    """A pickle naming a global of a module whose import writes the marker."""
    module_dir = tmp_path / "evil_pkg"
    module_dir.mkdir()
    (module_dir / "streampose_evil_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nclass Payload:\n    pass\n")
    sys.path.insert(0, str(module_dir))
    return b"\x80\x02cstreampose_evil_module\nPayload\nq\x00)\x81q\x01."


@pytest.fixture
def cleanup_sys_path():
    saved = list(sys.path)
    yield
    sys.path[:] = saved
    sys.modules.pop("streampose_evil_module", None)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "import"])
@pytest.mark.parametrize("file_format", ["zip", "legacy"])
def test_malicious_checkpoint_is_refused_and_payload_never_runs(tmp_path, kind, file_format, cleanup_sys_path):
    marker = tmp_path / "marker"
    if kind == "os.system":
        payload = pickle.dumps({"model": _SystemPayload(marker)}, protocol=2)
        refused = f"'{os.system.__module__}.system'"  # posix.system on Linux
    elif kind == "builtins.eval":
        payload = pickle.dumps({"epoch": 1, "model": _EvalPayload(marker)}, protocol=2)
        refused = "'builtins.eval'"
    else:
        payload = _import_payload(tmp_path, marker)
        refused = "'streampose_evil_module.Payload'"
    path = tmp_path / "evil.pt"
    (_torch_zip if file_format == "zip" else _legacy_file)(path, payload)

    with pytest.raises(CheckpointError) as excinfo:
        load_yolov5_checkpoint(path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert f"refused global {refused}" in message and str(path) in message
    assert not marker.exists()
    assert "streampose_evil_module" not in sys.modules

    with pytest.raises(CheckpointError):
        YoloV5Detector.from_checkpoint(path, device="cpu")
    assert not marker.exists()

    # Control: the same bytes really are live under an ordinary unpickler.
    pickle.loads(payload)
    assert marker.exists()


def test_payload_nested_inside_a_yolov5_structure_is_refused(tmp_path):
    marker = tmp_path / "marker"
    objects = {"model": None, "opt": {"hyp": [1, 2, _EvalPayload(marker)]}, "weights": torch.ones(3)}
    path = tmp_path / "nested.pt"
    torch.save(objects, path)
    with pytest.raises(CheckpointError, match="refused global 'builtins.eval'"):
        restricted_load(path)
    assert not marker.exists()


def _binunicode(text: str) -> bytes:
    return b"X" + struct.pack("<I", len(text)) + text.encode()


@pytest.mark.parametrize("target", ["torch._utils\n_rebuild_tensor_v2\n", "models.common\nConv\n", "torch\nHalfStorage\n"])
def test_allowed_globals_cannot_be_modified(tmp_path, target):
    # GLOBAL target; BUILD with slot state {"__defaults__" / "__setstate__": ()}: a pickle
    # trying to rewrite an allowed function or placeholder class for later loads.
    for attribute in ("__defaults__", "__setstate__", "__call__"):
        payload = (b"\x80\x02c" + target.encode() + b"N}" + _binunicode(attribute) + b")s\x86b.")
        path = tmp_path / "tamper.pt"
        _torch_zip(path, payload)
        with pytest.raises(CheckpointError):
            restricted_load(path)
    # Still intact afterwards.
    torch.save({"x": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(restricted_load(tmp_path / "ok.pt")["x"], torch.ones(2))


def test_out_of_bounds_tensor_is_refused(tmp_path):
    # A tensor view claiming more elements than its storage holds.
    buffer = io.BytesIO()
    torch.save({"x": torch.ones(4)}, buffer)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    name = next(n for n in entries if n.endswith("data.pkl"))
    entries[name] = entries[name].replace(b"K\x04\x85", b"K\x09\x85")  # size (4,) -> (9,)
    path = tmp_path / "oob.pt"
    with zipfile.ZipFile(path, "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    with pytest.raises(CheckpointError, match="claims 9 elements from a storage of 4"):
        restricted_load(path)


# ------------------------------------------------------------------ bad files, clear errors


def test_unusable_files_give_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        YoloV5Detector.from_checkpoint(tmp_path / "missing.pt", device="cpu")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        load_yolov5_checkpoint(text)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(pickle.dumps({"model": 1}, protocol=2)[:-3])
    with pytest.raises(CheckpointError):
        load_yolov5_checkpoint(truncated)
    state_dict = tmp_path / "state_dict.pt"
    torch.save({"model.0.conv.weight": torch.ones(1)}, state_dict)
    with pytest.raises(CheckpointError, match="bare state dict"):
        load_yolov5_checkpoint(state_dict)
    damaged = tmp_path / "damaged.pt"  # a zip checkpoint with one storage byte flipped (CRC error)
    torch.save({"model": torch.arange(1000.0)}, damaged)
    data = bytearray(damaged.read_bytes())
    data[data.index(b"\x00\x00\x80?") + 2] ^= 0xFF  # inside the float 1.0 of the storage
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or damaged checkpoint"):
        restricted_load(damaged)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(state_dict.read_bytes()[:200])
    with pytest.raises(CheckpointError):
        restricted_load(cut)
    for error_file in (text, truncated, state_dict, damaged, cut):
        with pytest.raises(CheckpointError) as excinfo:
            load_yolov5_checkpoint(error_file)
        assert "\n" not in str(excinfo.value)
