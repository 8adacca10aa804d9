"""OKS and OKS-NMS against plain loop twins of the official definitions, and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from streampose.evaluation.oks import COCO_KEYPOINT_SIGMAS, oks_matrix, oks_nms


def _oks_loop(a, b, area_a, area_b):
    """One pair, written out keypoint by keypoint (the official oks_iou with in_vis_thre=None)."""
    total = 0.0
    for k in range(a.shape[0]):
        d2 = (a[k, 0] - b[k, 0]) ** 2 + (a[k, 1] - b[k, 1]) ** 2
        variance = (2 * COCO_KEYPOINT_SIGMAS[k]) ** 2
        total += np.exp(-d2 / variance / ((area_a + area_b) / 2 + np.spacing(1)) / 2)
    return total / a.shape[0]


def _nms_loop(keypoints, scores, areas, threshold):
    """The official greedy loop: keep the best, drop the rest whose OKS with it is above threshold."""
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        overlaps = np.array([_oks_loop(keypoints[i], keypoints[j], areas[i], areas[j]) for j in order[1:]])
        order = order[np.where(overlaps <= threshold)[0] + 1]
    return keep


def _random_people(rng, n, spread):
    centers = rng.uniform(0, 200, size=(n // 2 + 1, 1, 2))
    base = centers[rng.integers(0, len(centers), size=n)]  # some people share a centre: duplicates
    keypoints = base + rng.normal(0, spread, size=(n, 17, 2))
    scores = rng.uniform(0, 1, size=n)
    areas = rng.uniform(500, 20000, size=n)
    return keypoints, scores, areas


def test_oks_matrix_matches_loop_twin():
    rng = np.random.default_rng(0)
    a, _, area_a = _random_people(rng, 5, 20)
    b, _, area_b = _random_people(rng, 4, 20)
    matrix = oks_matrix(a, b, area_a, area_b)
    assert matrix.shape == (5, 4)
    expected = np.array([[_oks_loop(a[i], b[j], area_a[i], area_b[j]) for j in range(4)] for i in range(5)])
    np.testing.assert_allclose(matrix, expected, rtol=1e-12)
    np.testing.assert_allclose(np.diag(oks_matrix(a, a, area_a, area_a)), 1.0)


def test_oks_known_values():
    a = np.zeros((1, 17, 2))
    b = np.zeros((1, 17, 2))
    b[0, 0] = (3.0, 4.0)  # nose 5 px away, everything else identical
    area = np.array([100.0])
    expected = (16 + np.exp(-25 / (2 * 0.026) ** 2 / 100 / 2)) / 17
    assert oks_matrix(a, b, area, area)[0, 0] == pytest.approx(expected, rel=1e-12)
    # the scale is the mean area: 50 and 150 behave as 100 and 100
    assert oks_matrix(a, b, np.array([50.0]), np.array([150.0]))[0, 0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.5, 0.9])
def test_oks_nms_matches_official_loop(seed, threshold):
    rng = np.random.default_rng(seed)
    keypoints, scores, areas = _random_people(rng, 12, [2.0, 8.0, 30.0][seed % 3])
    keep = oks_nms(keypoints, scores, areas, threshold)
    assert keep.dtype == np.int64
    assert keep.tolist() == _nms_loop(keypoints, scores, areas, threshold)


def test_oks_nms_hand_made():
    person = np.random.default_rng(1).uniform(0, 100, size=(17, 2))
    far = person + 500
    keypoints = np.stack([person, person + 0.5, far, person + 40])
    scores = np.array([0.5, 0.9, 0.3, 0.8])
    areas = np.full(4, 5000.0)
    keep = oks_nms(keypoints, scores, areas, 0.9)
    # 1 beats its near-duplicate 0; 3 (40 px off) and 2 (elsewhere) survive; best first
    assert keep.tolist() == [1, 3, 2]
    assert oks_nms(keypoints, scores, areas, 1.0).tolist() == [1, 3, 0, 2]  # nothing is above 1
    assert oks_nms(keypoints, scores, areas, 0.0).tolist() == [1, 2]  # anything overlapping at all goes
    assert oks_nms(np.zeros((0, 17, 2)), np.zeros(0), np.zeros(0)).tolist() == []


def test_oks_nms_rejects_bad_input():
    with pytest.raises(ValueError, match="keypoints"):
        oks_nms(np.zeros((2, 17)), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="scores"):
        oks_nms(np.zeros((2, 17, 2)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="threshold"):
        oks_nms(np.zeros((2, 17, 2)), np.zeros(2), np.zeros(2), 1.5)
    with pytest.raises(ValueError, match="sigmas"):
        oks_matrix(np.zeros((1, 5, 2)), np.zeros((1, 5, 2)), np.ones(1), np.ones(1), sigmas=np.ones(4))


def test_default_sigmas_follow_the_keypoint_set():
    from streampose.keypoint_sets import CROWDPOSE_14

    # One keypoint 10 px off on a 100 px^2 object: the OKS term uses that keypoint's own sigma.
    a = np.zeros((1, 14, 2))
    b = a.copy()
    b[0, 12, 0] = 10.0  # CrowdPose "head", sigma 0.079 (the COCO nose would be 0.026)
    got = oks_matrix(a, b, np.full(1, 100.0), np.full(1, 100.0))[0, 0]
    variance = (2 * CROWDPOSE_14.oks_sigmas[12]) ** 2
    assert got == pytest.approx((13 + np.exp(-100.0 / (2 * 100.0 * variance))) / 14)
