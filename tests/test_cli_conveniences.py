"""CLI conveniences: model and pipeline tables, --conf/--iou/--classes/--smooth/--batch/--half/--copy-audio,
COCO results (--output results.json) and single-image (--output out.png) outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from streampose.cli import main
from streampose.config import apply_overrides, load_pipeline
from streampose.errors import ConfigError
from streampose.models import registry

REPO = Path(__file__).resolve().parents[1]


def _steps(config):
    return [spec for stage in config.stages for spec in stage.steps]


def test_models_table_has_one_line_per_model_starting_with_its_name(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "role", "family"]
    assert [line.split()[0] for line in lines[1:]] == list(registry.MODELS)
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert by_name["movenet_lightning"].endswith("runs now (bundled)")
    assert by_name["movenet_multipose_lightning"].split()[1:4] == ["bottomup", "MoveNet", "MultiPose"]
    assert by_name["movenet_multipose_lightning"].endswith("runs now (bundled)")
    assert "needs weights: put " in by_name["pose_hrnet_w32_256x192"]
    assert main(["models", "--role", "detector"]) == 0
    assert {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]} == \
        {e.name for e in registry.entries("detector")}


def test_run_stream_models_is_streampose_models():
    script = subprocess.run([sys.executable, str(REPO / "run_stream.py"), "models"], capture_output=True, text=True,
                            timeout=120, cwd="/")
    module = subprocess.run([sys.executable, "-c", "import sys; from streampose.cli import main; "
                             "sys.exit(main(['models']))"], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert script.returncode == 0 and script.stdout == module.stdout and "movenet_lightning" in script.stdout


def test_list_pipelines_is_a_table_saying_what_runs_now(capsys):
    assert main(["--list-pipelines"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "status", "description"]
    rows = {line.split()[0]: line for line in lines[1:] if not line.startswith(" ")}
    assert rows["default"].split()[1:3] == ["runs", "now"]
    assert rows["multipose"].split()[1:3] == ["runs", "now"]
    assert rows["topdown_hrnet_w32"].split()[1:3] == ["needs", "weights"]
    how = lines[lines.index(rows["topdown_hrnet_w32"]) + 1]
    assert how.strip().startswith("get: ") and "weights/pose_hrnet_w32_256x192.pth" in how
    assert "leoxiaobin/deep-high-resolution-net.pytorch" in how


def test_detector_settings_reach_the_detector_under_its_own_option_names(shared_dir):
    yolox = apply_overrides(load_pipeline("default"), conf=0.45, iou=0.6)
    detector = next(s for s in _steps(yolox) if s["type"] == "yolox_detector")
    assert (detector["score_threshold"], detector["nms_threshold"]) == (0.45, 0.6)
    yolov5 = apply_overrides(load_pipeline("default"), det_model=str(shared_dir / "weights" / "yolov5n.pt"),
                             conf=0.2, iou=0.4, classes=["person", "car"], half=True)
    detector = next(s for s in _steps(yolov5) if s["type"] == "yolov5_detector")
    assert (detector["conf_threshold"], detector["iou_threshold"]) == (0.2, 0.4)
    assert detector["classes"] == ["person", "car"] and detector["half"] is True
    with pytest.raises(ConfigError, match=r"--classes: the yolox_detector step has no such setting; use a "
                                          r"multi-class detector, e.g. --det-model yolov5n"):
        apply_overrides(load_pipeline("default"), classes=["car"])
    with pytest.raises(ConfigError, match=r"--half: no step of pipeline 'default' has an fp16 mode"):
        apply_overrides(load_pipeline("default"), half=True)
    with pytest.raises(ConfigError, match=r"--conf: pipeline 'passthrough' has no detector step"):
        apply_overrides(load_pipeline("passthrough"), conf=0.3)


def test_smoothing_is_on_in_the_pose_pipelines_and_can_be_switched(shared_dir):
    for name in ("default", "topdown_hrnet_w32", "bottomup_higherhrnet_w32_512", "multipose"):
        types = [s["type"] for s in _steps(load_pipeline(name))]
        assert types.index("one_euro_filter") == types.index("iou_tracker") + 1
    off = apply_overrides(load_pipeline("default"), smooth=False)
    assert "one_euro_filter" not in [s["type"] for s in _steps(off)]
    on = apply_overrides(off, smooth=True)
    types = [s["type"] for s in _steps(on)]
    assert types.index("one_euro_filter") == types.index("iou_tracker") + 1
    with pytest.raises(ConfigError, match="--smooth: pipeline 'passthrough' has no iou_tracker"):
        apply_overrides(load_pipeline("passthrough"), smooth=True)


def test_batch_sets_the_model_stages():
    config = apply_overrides(load_pipeline("default"), batch=8)
    assert [(s.name, s.batch_size) for s in config.stages] == [("detect", 8), ("pose", 8), ("render", 1)]


def test_bad_flag_values_are_one_line_errors(capsys):
    for flag, value, message in (("--conf", "1.5", "must be between 0 and 1, got 1.5"),
                                 ("--batch", "0", "must be at least 1, got 0")):
        with pytest.raises(SystemExit) as e:
            main(["--source", "x.mp4", flag, value])
        assert e.value.code == 2
        assert capsys.readouterr().err == f"error: argument {flag}: {message} (see --help)\n"


def test_one_image_to_a_png_and_coco_results_json(tmp_path, shared_dir):
    from pycocotools.coco import COCO

    image = shared_dir / "coco" / "000000000785.jpg"
    png, results = tmp_path / "out.png", tmp_path / "results.json"
    assert main(["--source", str(image), "--output", str(png), "--output", str(results), "--inline", "-q",
                 "--no-progress"]) == 0
    annotated, original = cv2.imread(str(png)), cv2.imread(str(image))
    assert annotated.shape == original.shape and (annotated != original).any()
    rows = json.loads(results.read_text())
    assert rows and all(r["image_id"] == 785 and len(r["keypoints"]) == 51 for r in rows)
    gt = COCO(str(shared_dir / "coco" / "test_coco.json"))
    assert len(gt.loadRes(str(results)).getAnnIds()) == len(rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "results.json"]  # no partial files left


def test_one_image_output_refuses_a_video(tmp_path, shared_dir, capsys):
    code = main(["--source", str(shared_dir / "media" / "street-demo.mp4"), "--output", str(tmp_path / "x.png"),
                 "--inline", "-q", "--no-progress"])
    assert code != 0
    assert "holds one image" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_no_copy_audio_reaches_the_video_sink(tmp_path, shared_dir):
    from streampose.cli import build_parser

    args = build_parser().parse_args(["--source", "a.mp4", "--output", "o.mp4", "--no-copy-audio"])
    assert args.copy_audio is False
    out = tmp_path / "o.mp4"
    assert main(["--source", str(shared_dir / "media" / "street-demo.mp4"), "--output", str(out), "--no-copy-audio",
                 "--pipeline", "passthrough", "--inline", "-q", "--no-progress"]) == 0
    assert out.is_file() and out.stat().st_size > 0
