"""pycocotools wiring: the published known answer, and one-line errors for bad or mismatched files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streampose.errors import UserError
from streampose.evaluation import STAT_NAMES, evaluate_keypoints, format_stats, keypoint_results
from streampose.evaluation.coco_results import KeypointResultsWriter, write_keypoint_results
from streampose.records import Poses

# ../shared/SOURCES.md, eval/ row: pycocotools, xtcocotools and faster-coco-eval agree on these.
KNOWN_STATS = [0.5048844884488449, 0.7227722772277227, 0.6336633663366337, 0.46633663366336636,
               0.7504950495049505, 0.5181818181818182, 0.7272727272727273, 0.6363636363636364,
               0.4666666666666666, 0.75]


@pytest.fixture
def known(shared_dir):
    """(gt path, results path, a fresh copy of the result records)."""
    gt = shared_dir / "eval" / "keypoints_gt.json"
    dt = shared_dir / "eval" / "keypoints_dt.json"
    return gt, dt, json.loads(dt.read_text())


def test_known_answer_from_files(known):
    gt, dt, _ = known
    stats = evaluate_keypoints(gt, dt)
    assert list(stats) == list(STAT_NAMES)
    assert [stats[name] for name in STAT_NAMES] == KNOWN_STATS


def test_known_answer_from_records_and_round_trip(known, tmp_path):
    gt, _, records = known
    assert [evaluate_keypoints(gt, records)[n] for n in STAT_NAMES] == KNOWN_STATS
    # evaluation must not modify the caller's records (loadRes adds keys in place)
    assert all("area" not in r for r in records)
    # through our writer and back: the same numbers
    out = write_keypoint_results(records, tmp_path / "sub" / "dt.json")
    assert [evaluate_keypoints(gt, out)[n] for n in STAT_NAMES] == KNOWN_STATS
    table = format_stats(evaluate_keypoints(gt, out))
    assert "0.505" in table and len(table.splitlines()) == 11
    assert format_stats({"AP": 0.25, "APm": -1.0}).splitlines()[1:] == [
        "AP @[OKS=0.50:0.95 | all]     0.250", "AP @[OKS=0.50:0.95 | medium]    n/a"]


def test_subset_and_empty_results(known):
    gt, _, records = known
    image_id = records[0]["image_id"]
    assert evaluate_keypoints(gt, records, image_ids=[image_id])["AP"] == KNOWN_STATS[0]
    empty = evaluate_keypoints(gt, [])
    assert empty["AP"] == 0.0 and empty["AR"] == 0.0


def test_keypoint_results_records():
    poses = Poses(np.arange(2 * 17 * 2, dtype=np.float32).reshape(2, 17, 2),
                  np.full((2, 17), 0.5, np.float32), np.array([0.9, 0.1], np.float32), np.zeros((2, 4)))
    records = keypoint_results(7, poses)
    assert [r["image_id"] for r in records] == [7, 7] and records[0]["category_id"] == 1
    assert records[1]["keypoints"][:6] == [34.0, 35.0, 0.5, 36.0, 37.0, 0.5]
    assert len(records[0]["keypoints"]) == 51 and records[0]["score"] == pytest.approx(0.9)
    assert keypoint_results(7, poses, scores=np.array([1.0, 2.0]))[1]["score"] == 2.0
    assert keypoint_results(7, Poses.empty()) == []
    with pytest.raises(ValueError, match="scores"):
        keypoint_results(7, poses, scores=np.ones(3))


def test_writer_streams_records(tmp_path):
    path = tmp_path / "r.json"
    with KeypointResultsWriter(path) as writer:
        writer.write([{"a": 1}])
        assert path.read_text().startswith("[\n{\"a\": 1}")  # on disk before close
        writer.write([{"b": 2}, {"c": 3}])
    assert json.loads(path.read_text()) == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert writer.count == 3
    write_keypoint_results([], tmp_path / "e.json")
    assert json.loads((tmp_path / "e.json").read_text()) == []


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("case, match", [
    ("missing_gt", "not found"),
    ("gt_is_directory", "is a directory"),
    ("gt_not_json", "not valid JSON"),
    ("gt_is_results", "a results file"),
    ("gt_no_keypoint_category", "no category with keypoints"),
    ("gt_annotation_without_keypoints", "lacks keypoints"),
    ("missing_results", "results file .* not found"),
    ("results_not_json", "not valid JSON"),
    ("results_not_list", "must hold a JSON list"),
    ("results_are_boxes", "lacks keypoints"),
    ("results_short_keypoints", "keypoints has 50 values, expected 51"),
    ("results_nan", "non-finite"),
    ("results_bad_score", "score"),
    ("results_bad_category", "category_id 2"),
    ("results_unknown_image", r"1 image id\(s\) not in the annotations \(e.g. 123\)"),
    ("results_other_dataset", "not in the annotations"),
    ("subset_unknown_image", "image id 5 asked for"),
])
def test_bad_files_give_one_line_errors(case, match, known, shared_dir, tmp_path):
    gt, dt, records = known
    gt_data = json.loads(gt.read_text())
    kwargs = {}

    def dump(name, obj):
        path = tmp_path / name
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return path

    results = dt
    if case == "missing_gt":
        gt = tmp_path / "nope.json"
    elif case == "gt_is_directory":
        gt = tmp_path
    elif case == "gt_not_json":
        gt = dump("gt.json", "{not json")
    elif case == "gt_is_results":
        gt = dt
    elif case == "gt_no_keypoint_category":
        gt_data["categories"] = [{"id": 1, "name": "person"}]
        gt = dump("gt.json", gt_data)
    elif case == "gt_annotation_without_keypoints":
        del gt_data["annotations"][3]["keypoints"]
        gt = dump("gt.json", gt_data)
    elif case == "missing_results":
        results = tmp_path / "nope.json"
    elif case == "results_not_json":
        results = dump("dt.json", "[{")
    elif case == "results_not_list":
        results = dump("dt.json", {"annotations": records})
    elif case == "results_are_boxes":
        results = dump("dt.json", [{k: r[k] for k in ("image_id", "category_id", "bbox", "score")}
                                   for r in records])
    elif case == "results_short_keypoints":
        records[2] = dict(records[2], keypoints=records[2]["keypoints"][:-1])
        results = records
    elif case == "results_nan":
        records[2] = dict(records[2], keypoints=[float("nan")] * 51)
        results = records
    elif case == "results_bad_score":
        records[0] = dict(records[0], score="high")
        results = records
    elif case == "results_bad_category":
        records[0] = dict(records[0], category_id=2)
        results = records
    elif case == "results_unknown_image":
        records[1] = dict(records[1], image_id=123)
        results = records
    elif case == "results_other_dataset":
        gt = shared_dir / "coco" / "test_coco.json"
    elif case == "subset_unknown_image":
        kwargs["image_ids"] = [5]
    with pytest.raises(UserError, match=match) as excinfo:
        evaluate_keypoints(gt, results, **kwargs)
    _one_line(excinfo)
