"""CPU precision: bf16 where the CPU has it (refused elsewhere), and the fp32 vs bf16 accuracy table
(scripts/bf16_accuracy.py) that decides where bf16 is the default."""

from __future__ import annotations

import pytest

from streampose import device as device_module
from streampose.builtin_steps import movenet, yolov5, yolox
from streampose.device import cpu_bf16_support, resolve_precision
from streampose.errors import ConfigError
from streampose.step import build_step


@pytest.mark.parametrize("precision, device, default, support, expected", [
    ("auto", "cpu", True, "avx512_bf16", "bf16"),
    ("auto", "cpu", True, "amx_bf16", "bf16"),
    ("auto", "cpu", True, None, "fp32"),  # no native bf16: the default stays fp32
    ("auto", "cpu", False, "amx_bf16", "fp32"),  # not measured (or lost accuracy): fp32
    ("auto", "cuda", True, "amx_bf16", "fp32"),
    ("bf16", "cpu", False, "avx512_bf16", "bf16"),
    ("fp32", "cpu", True, "amx_bf16", "fp32"),
])
def test_resolve_precision(monkeypatch, precision, device, default, support, expected):
    monkeypatch.setattr(device_module, "cpu_bf16_support", lambda: support)
    assert resolve_precision(precision, device, default) == expected


@pytest.mark.parametrize("precision, message", [
    ("bf16", "precision: bf16 needs a CPU with AMX or AVX512-BF16"),
    ("fp16", "precision: fp16 needs a CUDA device"),
])
def test_refused_where_the_cpu_lacks_it(monkeypatch, precision, message):
    monkeypatch.setattr(device_module, "cpu_bf16_support", lambda: None)
    with pytest.raises(ConfigError) as info:
        resolve_precision(precision, "cpu")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_step_refuses_bf16_on_a_cpu_without_it(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_bf16_support", lambda: None)
    step = build_step({"type": "movenet_pose", "precision": "bf16", "device": "cpu"})
    with pytest.raises(ConfigError, match="bf16 needs a CPU with AMX or AVX512-BF16"):
        step.start()


@pytest.mark.skipif(cpu_bf16_support() is None, reason="needs a CPU with AMX or AVX512-BF16")
@pytest.mark.usefixtures("one_torch_thread")
def test_bf16_default_follows_the_measured_accuracy_table(shared_dir):
    from scripts.bf16_accuracy import NEGLIGIBLE_AP_LOSS, accuracy_table, markdown

    rows = {row.model: row for row in accuracy_table(shared_dir)}
    print(markdown(list(rows.values())))
    defaults = {"movenet_pose (bundled MoveNet Lightning)": movenet.BF16_DEFAULT_ON_CPU,
                "light_person_detector (bundled)": yolox.BF16_DEFAULT_ON_CPU,
                "yolov5n.pt": yolov5.BF16_DEFAULT_ON_CPU}
    assert set(rows) == set(defaults)
    for name, row in rows.items():
        assert defaults[name] == (row.ap_fp32 - row.ap_bf16 <= NEGLIGIBLE_AP_LOSS), (name, row)
    pose = rows["movenet_pose (bundled MoveNet Lightning)"]
    assert pose.keypoint_px_mean < 2.0  # bf16 moves MoveNet's keypoints by about a pixel on average
    for name in ("light_person_detector (bundled)", "yolov5n.pt"):
        assert rows[name].boxes_bf16 == rows[name].boxes_fp32 and rows[name].box_iou_min > 0.9
