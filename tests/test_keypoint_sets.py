"""Keypoint sets as data: each fact checked against its source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streampose.keypoint_sets import COCO_17, CROWDPOSE_14, KEYPOINT_SETS, KeypointSet, keypoint_set, keypoint_set_for
from streampose.records import Poses

CROWDPOSE_FILE = Path(__file__).resolve().parent / "data" / "crowdpose" / "example_crowdpose_val.json"


def test_flip_indexes_are_the_official_ones():
    # HigherHRNet lib/dataset/transforms/build.py FLIP_CONFIG
    assert COCO_17.flip_index == (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
    assert CROWDPOSE_14.flip_index == (1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13)
    for s in KEYPOINT_SETS.values():  # a flip pairs left with right, by name
        for a, b in s.flip_pairs:
            assert s.keypoint_names[a].replace("left_", "right_") == s.keypoint_names[b]


def test_crowdpose_names_match_its_annotations_and_sigmas_its_api():
    category = json.loads(CROWDPOSE_FILE.read_text())["categories"][0]
    assert tuple(category["keypoints"]) == CROWDPOSE_14.keypoint_names
    np.testing.assert_array_equal(CROWDPOSE_14.sigmas, np.array(
        [.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]) / 10.0)
    # The CrowdPose body sigmas are COCO's for the same joints.
    for k, name in enumerate(CROWDPOSE_14.keypoint_names[:12]):
        assert CROWDPOSE_14.oks_sigmas[k] == COCO_17.oks_sigmas[COCO_17.keypoint_names.index(name)]


def test_grouping_orders_are_the_official_ones():
    # HigherHRNet lib/core/group.py Params.joint_order, looped over range(NUM_JOINTS).
    official = [i - 1 for i in [1, 2, 3, 4, 5, 6, 7, 12, 13, 8, 9, 10, 11, 14, 15, 16, 17]]
    assert list(COCO_17.joint_order) == official
    assert list(CROWDPOSE_14.joint_order) == official[:14]


def test_sets_are_found_by_name_and_count():
    assert keypoint_set("coco17") is COCO_17 and keypoint_set("crowdpose14") is CROWDPOSE_14
    assert keypoint_set_for(17) is COCO_17 and keypoint_set_for(14) is CROWDPOSE_14
    generic = keypoint_set_for(5)
    assert generic.keypoint_names == tuple(f"keypoint_{i}" for i in range(5)) and generic.skeleton == ()
    assert generic.flip_index == (0, 1, 2, 3, 4)
    assert np.allclose(generic.sigmas, np.mean(COCO_17.oks_sigmas))
    assert Poses.empty(14).keypoint_set is CROWDPOSE_14
    with pytest.raises(ValueError, match="unknown keypoint set 'mpii'"):
        keypoint_set("mpii")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"skeleton": ((0, 3),)}, "skeleton refers to a keypoint outside 0..2"),
    ({"oks_sigmas": (0.1, 0.1)}, "2 OKS sigmas for 3 keypoints"),
    ({"joint_order": (0, 0, 1)}, "joint_order must be a permutation"),
    ({"keypoint_names": ("a", "a", "b")}, "names repeat"),
])
def test_a_set_is_checked(kwargs, match):
    base = {"name": "t", "keypoint_names": ("a", "b", "c"), "skeleton": (), "flip_pairs": (),
            "oks_sigmas": (0.1, 0.1, 0.1)}
    with pytest.raises(ValueError, match=match):
        KeypointSet(**(base | kwargs))
