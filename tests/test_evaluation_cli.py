"""scripts/evaluate_coco.py: a real checkpoint through the real flow, and one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streampose.evaluation.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hrnet_checkpoint(tmp_path_factory) -> Path:
    """HRNet-w32 256x192 with fresh weights, saved in the official key layout (no prefixes)."""
    import torch

    from streampose.models import build_model

    torch.manual_seed(0)
    network = build_model("pose_hrnet_w32_256x192")
    state = {key.split(".", 1)[1]: value for key, value in network.state_dict().items()}
    path = tmp_path_factory.mktemp("weights") / "pose_hrnet_w32_256x192.pth"
    torch.save(state, path)
    return path


def test_cli_runs_a_checkpoint_with_detector_boxes(shared_dir, hrnet_checkpoint, tmp_path, capsys):
    """One image, the bundled YOLOX person detector for boxes, HRNet-w32 (fresh weights) for poses."""
    coco = shared_dir / "coco"
    out = tmp_path / "results.json"
    detector = REPO_ROOT / "weights" / "light_person_detector_192.pth"
    code = main(["--images", str(coco), "--annotations", str(coco / "test_coco.json"),
                 "--pose-model", str(hrnet_checkpoint), "--device", "cpu", "--max-images", "1", "--no-flip",
                 "--boxes", "detector", "--det-model", str(detector), "--results-out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("metric") and len(lines) == 11 and lines[1].startswith("AP @[OKS=0.50:0.95 | all]")
    assert captured.err.startswith("1 images, ")
    records = json.loads(out.read_text())
    # the detector finds the one person of image 785 (SOURCES.md: 13 of the 14 people overall)
    assert len(records) >= 1 and {r["image_id"] for r in records} == {785}
    assert all(len(r["keypoints"]) == 51 and r["category_id"] == 1 for r in records)


def test_cli_evaluates_a_pipeline_pose_step(shared_dir, capsys):
    """The default pipeline's MoveNet step through the step adapter, on all four images with GT boxes."""
    if not (REPO_ROOT / "pipelines" / "default.toml").is_file():
        pytest.skip("pipelines/default.toml is not present")
    coco = shared_dir / "coco"
    code = main(["--images", str(coco), "--annotations", str(coco / "test_coco.json"), "--pipeline", "default",
                 "--device", "cpu", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.startswith("4 images, 12 person boxes, 12 people")
    ap = float(captured.out.splitlines()[1].split()[-1])
    # MoveNet Lightning on these 12 people (SOURCES.md measured 0.571 with the TFLite runtime, square crops)
    assert 0.4 < ap < 0.8


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --annotations"),
    (["--annotations", "{ann}", "--pose-model", "{ckpt}"], "--images DIR: the annotated images are needed"),
    (["--images", "{coco}", "--annotations", "{ann}"], "give --pose-model CKPT or --pipeline NAME"),
    (["--images", "{coco}", "--annotations", "{ann}", "--pose-model", "nope.pth"], "'nope.pth' not found"),
    (["--images", "{coco}/nope", "--annotations", "{ann}", "--pose-model", "{ckpt}"],
     "images folder '{coco}/nope' not found"),
    (["--images", "{tmp}", "--annotations", "{ann}", "--pose-model", "{ckpt}"],
     "4 of 4 annotated images are not in"),
    (["--images", "{coco}", "--annotations", "{coco}/test_coco_det_AP_H_56.json", "--pose-model", "{ckpt}"],
     "is a list of records"),
    (["--images", "{coco}", "--annotations", "{ann}", "--pose-model", "{ckpt}", "--boxes", "{tmp}/boxes.json"],
     "detections file '{tmp}/boxes.json' not found"),
    (["--images", "{coco}", "--annotations", "{ann}", "--pose-model", "{ckpt}", "--boxes", "{other_boxes}"],
     "shares no image id with the annotations"),
    (["--images", "{coco}", "--annotations", "{ann}", "--pose-model", "{ckpt}", "--boxes", "detector"],
     "--boxes detector needs --det-model"),
    (["--images", "{coco}", "--annotations", "{ann}", "--pose-model", "{ckpt}", "--det-model", "x.pt"],
     "apply to --boxes detector"),
    (["--images", "{coco}", "--annotations", "{ann}", "--pipeline", "nope"], "unknown pipeline 'nope'"),
    (["--images", "{coco}", "--annotations", "{ann}", "--pose-model", "{ckpt}", "--max-images", "0"],
     "must be at least 1"),
    (["--images", "{coco}", "--annotations", "{ann}", "--pose-model", "{ckpt}", "--det-conf", "2"],
     "argument --det-conf: must be between 0 and 1, got 2 (see --help)"),
    (["--images", "{coco}", "--annotations", "{ann}", "--pose-model", "{ckpt}", "--det-conf", "x"],
     "argument --det-conf: expected a number between 0 and 1, got 'x' (see --help)"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, shared_dir, hrnet_checkpoint, tmp_path, capsys):
    coco = shared_dir / "coco"
    other_boxes = tmp_path / "other.json"
    other_boxes.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 1.0}]))
    fill = {"coco": coco, "ann": coco / "test_coco.json", "ckpt": hrnet_checkpoint, "tmp": tmp_path,
            "other_boxes": other_boxes}
    argv = [a.format(**fill) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert message.format(**fill) in err


def test_script_entry_point_exit_code(tmp_path):
    script = REPO_ROOT / "scripts" / "evaluate_coco.py"
    proc = subprocess.run([sys.executable, str(script), "--images", str(tmp_path), "--annotations",
                           str(tmp_path / "missing.json"), "--pose-model", "x.pth"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: annotation file {str(tmp_path / 'missing.json')!r} not found; "
                                   "give a COCO person_keypoints_*.json annotation file")
