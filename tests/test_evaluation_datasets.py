"""``evaluate_coco.py --results``: scoring a results file on COCO, CrowdPose (easy/medium/hard) and OCHuman.

The CrowdPose known answer: the example files of the Extended COCO API,
which faster-coco-eval's own test suite scores (tests/data/crowdpose/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streampose.evaluation.cli import main
from streampose.keypoint_sets import CROWDPOSE_14

CROWDPOSE_NAMES = CROWDPOSE_14.keypoint_names

REPO_ROOT = Path(__file__).resolve().parents[1]
CROWDPOSE = Path(__file__).resolve().parent / "data" / "crowdpose"

#: faster-coco-eval tests/test_crowdpose.py, on the same two files.
CROWDPOSE_KNOWN_ANSWER = {
    "AP": 0.7877215935879303, "AP50": 0.9881188118811886, "AP75": 0.7314356435643564,
    "AR": 0.8222222222222223, "AR50": 1.0, "AR75": 0.7777777777777778,
    "AP_easy": 1.0, "AP_medium": 0.9802, "AP_hard": 0.4116,
}

pytest.importorskip("faster_coco_eval")


def run_json(argv, capsys) -> dict:
    code = main(argv + ["--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1, captured.out  # one JSON object, nothing else on stdout
    return json.loads(lines[0])


def test_crowdpose_known_answer(capsys):
    stats = run_json(["--annotations", str(CROWDPOSE / "example_crowdpose_val.json"),
                      "--results", str(CROWDPOSE / "example_crowdpose_preds.json"), "--dataset", "crowdpose"], capsys)
    assert list(stats) == list(CROWDPOSE_KNOWN_ANSWER)
    for name, expected in CROWDPOSE_KNOWN_ANSWER.items():
        assert abs(stats[name] - expected) <= 1e-4, (name, stats[name], expected)


def test_crowdpose_table_names_the_crowd_split(capsys):
    code = main(["--annotations", str(CROWDPOSE / "example_crowdpose_val.json"),
                 "--results", str(CROWDPOSE / "example_crowdpose_preds.json"), "--dataset", "crowdpose"])
    out = capsys.readouterr().out
    assert code == 0
    assert "easy]" in out and "hard]" in out and out.splitlines()[1].split()[-1] == "0.788"


def coco_results_from_ground_truth(annotations: dict, shift_px: float, rng) -> list[dict]:
    """A result per annotated person: its keypoints moved by about ``shift_px``, scores varied."""
    records = []
    for ann in annotations["annotations"]:
        kp = np.array(ann["keypoints"], np.float64).reshape(-1, 3)
        if ann.get("num_keypoints", int((kp[:, 2] > 0).sum())) == 0:
            continue
        kp[:, :2] += rng.normal(0, shift_px, (len(kp), 2))
        kp[:, 2] = 1.0
        records.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                        "score": float(rng.uniform(0.5, 1.0))})
    return records


def test_ochuman_format_scores_like_coco_and_without_area(shared_dir, tmp_path, capsys):
    gt = json.loads((shared_dir / "coco" / "test_coco.json").read_text())
    results = tmp_path / "results.json"
    results.write_text(json.dumps(coco_results_from_ground_truth(gt, 4.0, np.random.default_rng(0))))
    annotations = str(shared_dir / "coco" / "test_coco.json")
    coco = run_json(["--annotations", annotations, "--results", str(results)], capsys)  # pycocotools
    ochuman = run_json(["--annotations", annotations, "--results", str(results), "--dataset", "ochuman"], capsys)
    assert list(coco) == list(ochuman) == ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    for name in coco:  # faster-coco-eval in COCO mode = pycocotools on the same files
        assert (coco[name] is None and ochuman[name] is None) or abs(coco[name] - ochuman[name]) <= 1e-9, name
    assert 0.2 < coco["AP"] < 1.0
    # OCHuman-style file without 'area' (the box area is used): perfect results score 1.
    for ann in gt["annotations"]:
        ann.pop("area")
    no_area = tmp_path / "ochuman.json"
    no_area.write_text(json.dumps(gt))
    perfect = tmp_path / "perfect.json"
    perfect.write_text(json.dumps(coco_results_from_ground_truth(gt, 0.0, np.random.default_rng(1))))
    stats = run_json(["--annotations", str(no_area), "--results", str(perfect), "--dataset", "ochuman"], capsys)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)


@pytest.mark.parametrize("argv, message", [
    (["--annotations", "{coco_ann}", "--results", "{crowd_preds}", "--dataset", "crowdpose"],
     "has 17 keypoints per person; crowdpose has 14"),
    (["--annotations", "{crowd_ann}", "--results", "{crowd_preds}"], "lacks area"),
    (["--annotations", "{crowd_ann}", "--results", "{crowd_preds}", "--dataset", "ochuman"],
     "has 14 keypoints per person; ochuman has 17"),
    (["--annotations", "{crowd_ann}", "--results", "{tmp}/none.json", "--dataset", "crowdpose"],
     "results file '{tmp}/none.json' not found"),
    (["--annotations", "{crowd_ann}", "--results", "{crowd_preds}", "--dataset", "crowdpose", "--pose-model", "x"],
     "--pose-model: not used with --results"),
    (["--annotations", "{crowd_ann}", "--results", "{crowd_preds}", "--dataset", "nope"], "invalid choice: 'nope'"),
    (["--images", "{tmp}", "--annotations", "{crowd_ann}", "--pose-model", "x.pth", "--dataset", "crowdpose",
      "--max-images", "1"], "--max-images: the crowdpose evaluation scores whole annotation files"),
])
def test_bad_input_is_one_line_exit_2(argv, message, shared_dir, tmp_path, capsys):
    fill = {"coco_ann": shared_dir / "coco" / "test_coco.json", "crowd_ann": CROWDPOSE / "example_crowdpose_val.json",
            "crowd_preds": CROWDPOSE / "example_crowdpose_preds.json", "tmp": tmp_path}
    try:
        code = main([a.format(**fill) for a in argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert message.format(**fill) in err


def test_crowdpose_index_is_required(tmp_path, capsys):
    data = json.loads((CROWDPOSE / "example_crowdpose_val.json").read_text())
    del data["images"][1]["crowdIndex"]
    path = tmp_path / "val.json"
    path.write_text(json.dumps(data))
    code = main(["--annotations", str(path), "--results", str(CROWDPOSE / "example_crowdpose_preds.json"),
                 "--dataset", "crowdpose"])
    assert code == 2 and "has no 'crowdIndex'" in capsys.readouterr().err


def test_script_prints_json(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "evaluate_coco.py"),
                           "--annotations", str(CROWDPOSE / "example_crowdpose_val.json"),
                           "--results", str(CROWDPOSE / "example_crowdpose_preds.json"),
                           "--dataset", "crowdpose", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["AP_hard"] == pytest.approx(0.4116, abs=1e-4)


def crowdpose_annotations_from_coco(coco: dict) -> dict:
    """The COCO test annotations as a CrowdPose file: 14 keypoints (neck = mid-shoulders), no area, crowdIndex."""
    head_from, body = 0, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]  # nose stands in for the head top
    out = {"images": [], "annotations": [], "categories": [{
        "id": 1, "name": "person", "supercategory": "person", "keypoints": list(CROWDPOSE_NAMES), "skeleton": []}]}
    for i, image in enumerate(sorted(coco["images"], key=lambda im: im["id"])):
        out["images"].append({**image, "crowdIndex": (0.1, 0.5, 0.9, 0.3)[i % 4]})
    for ann in coco["annotations"]:
        kp = np.array(ann["keypoints"], np.float64).reshape(17, 3)
        neck = (kp[5] + kp[6]) / 2 if kp[5, 2] > 0 and kp[6, 2] > 0 else np.zeros(3)
        neck[2] = 2 if neck.any() else 0
        cp = np.concatenate([kp[body], kp[[head_from]], neck[None]])
        out["annotations"].append({k: ann[k] for k in ("id", "image_id", "category_id", "bbox", "iscrowd")} | {
            "keypoints": cp.ravel().tolist(), "num_keypoints": int((cp[:, 2] > 0).sum())})
    return out


@pytest.mark.slow
def test_crowdpose_model_evaluated_end_to_end(shared_dir, tmp_path, capsys):
    # A CrowdPose HigherHRNet (recipe weights, official fp16 release layout) run on the images and scored
    # with the crowd split, in one command.
    from hrnet_recipe import recipe_crowdpose_checkpoint

    coco = json.loads((shared_dir / "coco" / "test_coco.json").read_text())
    keep = {785}  # one image: a 640 forward pass and the grouping of random-weight maps are slow on a CPU
    coco["images"] = [i for i in coco["images"] if i["id"] in keep]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    annotations = tmp_path / "crowdpose_test.json"
    annotations.write_text(json.dumps(crowdpose_annotations_from_coco(coco)))
    results = tmp_path / "results.json"
    stats = run_json(["--images", str(shared_dir / "coco"), "--annotations", str(annotations),
                      "--pose-model", str(recipe_crowdpose_checkpoint(32)), "--dataset", "crowdpose", "--no-flip",
                      "--device", "cpu", "--results-out", str(results), "--no-progress"], capsys)
    assert list(stats) == list(CROWDPOSE_KNOWN_ANSWER)
    assert all(v is None or -1.0 <= v <= 1.0 for v in stats.values())
    records = json.loads(results.read_text())
    assert records and all(len(r["keypoints"]) == 3 * 14 for r in records)
    # Scoring the written file again gives the same numbers.
    assert run_json(["--annotations", str(annotations), "--results", str(results), "--dataset", "crowdpose"],
                    capsys) == stats
