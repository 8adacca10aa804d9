"""backend = "auto": the fastest backend a table measured on this machine names, torch without one."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from streampose.backends_command import main as backends_main
from streampose.errors import UserError
from streampose.export.backend_choice import (TABLE_ENV, TABLE_VERSION, fastest_backend, machine_id, merge_into,
                                              read_table, resolve_backend, table_path)
from streampose.export.backends import BackendNetwork
from streampose.records import Frame, FramePacket
from streampose.step import build_step

CPU = torch.device("cpu")
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.fixture
def table_file(tmp_path, monkeypatch):
    path = tmp_path / "backends.json"
    monkeypatch.setenv(TABLE_ENV, str(path))
    return path


def _write(path, fastest: dict[str, str], machine: str | None = None):
    models = {family: {"cpu": {"items_per_s": {"torch": 1.0, backend: 2.0}, "fastest": backend}}
              for family, backend in fastest.items()}
    path.write_text(json.dumps({"version": TABLE_VERSION, "machine": machine or machine_id(), "models": models}))


def test_without_a_table_auto_is_torch(table_file, tmp_path, monkeypatch):
    assert table_path() == table_file and not table_file.exists()
    assert resolve_backend("auto", "yolox", CPU) == "torch"
    assert resolve_backend("onnxruntime", "yolox", CPU) == "onnxruntime"  # a named backend stays as named
    monkeypatch.delenv(TABLE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert table_path() == tmp_path / "cache" / "streampose" / "backends.json"


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs openvino (the export extra)")
def test_a_step_runs_the_measured_fastest_backend_and_finds_the_same_people(table_file, shared_dir):
    import cv2

    image = cv2.imread(str(shared_dir / "media" / "bus.jpg"))
    found = {}
    for table in (None, {"yolox": "openvino"}):
        if table:
            _write(table_file, table)
        step = build_step({"type": "yolox_detector", "device": "cpu", "precision": "fp32", "threads": 1})
        step.start()
        assert isinstance(step.detector.net, BackendNetwork) == bool(table)
        if table:
            assert step.detector.net.backend == "openvino"
        frame = Frame(FramePacket(0, "test", 0, None, image.shape, 0.0), image)
        step.process([frame])
        found[bool(table)] = frame.packet.detections.xyxy
        step.close()
    assert len(found[True]) == len(found[False]) > 0
    np.testing.assert_allclose(found[True], found[False], atol=0.5)


def test_a_table_of_another_machine_or_a_torch_only_option_gives_torch(table_file):
    _write(table_file, {"yolox": "onnxruntime"}, machine="another CPU x64; gpus: none; torch 0.0")
    assert fastest_backend("yolox", CPU) == "torch"
    _write(table_file, {"yolox": "onnxruntime"})
    expected = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "torch"
    assert fastest_backend("yolox", CPU) == expected
    assert resolve_backend("auto", "yolox", CPU) == expected
    assert resolve_backend("auto", "yolox", CPU, torch_only=True) == "torch"
    assert resolve_backend("auto", "movenet", CPU) == "torch"  # a family the table lacks
    assert fastest_backend("yolox", torch.device("cuda", 0)) == "torch"  # no row for that device type


@pytest.mark.parametrize("text", ["{not json", json.dumps({"version": 99, "machine": "x", "models": {}}), "[]"])
def test_a_file_that_is_not_a_table_is_a_one_line_error(table_file, text, capsys):
    table_file.write_text(text)
    with pytest.raises(UserError, match="not a backend table.*streampose backends --measure") as e:
        read_table()
    assert "\n" not in str(e.value) and str(table_file) in str(e.value)
    assert backends_main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_measuring_writes_a_table_that_auto_then_follows(table_file, capsys):
    _write(table_file, {"hrnet": "torch"})  # an older row the new measurement must keep
    assert backends_main(["--measure", "--family", "yolox", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    table = read_table()
    row = table["models"]["yolox"]["cpu"]
    expected = {"torch"} | {b for b in ("onnxruntime", "openvino") if importlib.util.find_spec(b)}
    assert set(row["items_per_s"]) == expected and all(r > 0 for r in row["items_per_s"].values())
    assert row["fastest"] == max(row["items_per_s"], key=row["items_per_s"].get)
    assert table["machine"] == machine_id() and "hrnet" in table["models"]
    assert f"wrote {table_file}" in out and "yolox" in out and f"fastest {row['fastest']}" in out
    assert resolve_backend("auto", "yolox", CPU) == row["fastest"]
    assert not list(table_file.parent.glob("*.partial"))


def test_unknown_family_and_bad_device_are_one_line_errors(table_file, capsys):
    assert backends_main(["--measure", "--family", "resnet"]) == 2
    assert "unknown model family resnet" in capsys.readouterr().err
    assert not table_file.exists()
    if not torch.cuda.is_available():
        assert backends_main(["--measure", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_merge_keeps_the_rows_not_measured_again_on_the_same_machine():
    old = {"version": TABLE_VERSION, "machine": "m", "models": {"hrnet": {"cpu": {"fastest": "openvino"}},
                                                                 "yolox": {"cpu": {"fastest": "torch"}}}}
    new = {"version": TABLE_VERSION, "machine": "m", "models": {"yolox": {"cpu": {"fastest": "onnxruntime"}}}}
    merged = merge_into(new, old)
    assert merged["models"] == {"hrnet": {"cpu": {"fastest": "openvino"}}, "yolox": {"cpu": {"fastest": "onnxruntime"}}}
    assert merge_into(new, old | {"machine": "other"}) == new
