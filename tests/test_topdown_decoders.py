"""Decoders recover ground truth, and follow the official edge rules.

Heatmaps (and SimDR 1-D distributions) are rendered as Gaussians (sigma 2) at
the crop-space positions of the annotated keypoints of ../shared/coco/test_coco.json
(official crop geometry from the GT boxes), decoded, mapped back to image
pixels and scored against the annotation with COCO OKS.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from streampose.topdown.crops import affine_points, crop_transforms, transform_preds, xywh_to_center_scale
from streampose.topdown.estimator import person_scores
from streampose.models.hrnet.heatmap_decode import dark_refine, decode_heatmaps, get_max_preds, quarter_offset
from streampose.models.hrnet.simdr_decode import decode_simdr

SIGMA = 2.0
# COCO keypoint OKS sigmas (pycocotools cocoeval.py, Params.setKpParams).
KPT_OKS_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10


def oks(pred_xy: np.ndarray, gt: np.ndarray, area: float) -> float:
    """COCO OKS of one prediction against one annotation (its visible keypoints)."""
    visible = gt[:, 2] > 0
    d2 = ((pred_xy - gt[:, :2]) ** 2).sum(axis=1)
    e = d2 / (2 * KPT_OKS_SIGMAS) ** 2 / (area + np.spacing(1)) / 2
    return float(np.exp(-e)[visible].mean())


@pytest.fixture(scope="module")
def people(shared_dir):
    data = json.loads((shared_dir / "coco" / "test_coco.json").read_text())
    out = [(np.array(a["bbox"], float), np.array(a["keypoints"], float).reshape(17, 3), a["area"])
           for a in data["annotations"] if a["num_keypoints"] > 0]
    assert len(out) >= 10
    return out


def _render_heatmaps(points: np.ndarray, visible: np.ndarray, size_wh) -> np.ndarray:
    w, h = size_wh
    ys, xs = np.mgrid[0:h, 0:w]
    maps = np.exp(-((xs[None] - points[:, 0, None, None]) ** 2 + (ys[None] - points[:, 1, None, None]) ** 2)
                  / (2 * SIGMA**2))
    maps[~visible] = 0
    return maps.astype(np.float32)[None]


@pytest.mark.parametrize("use_dark", [False, True], ids=["argmax_quarter", "dark"])
def test_heatmap_decoders_recover_annotations(people, use_dark):
    for xywh, keypoints, area in people:
        center, scale = xywh_to_center_scale(xywh[None])
        to_map = crop_transforms(center, scale, (48, 64))
        visible = keypoints[:, 2] > 0
        heatmaps = _render_heatmaps(affine_points(keypoints[None, :, :2], to_map)[0], visible, (48, 64))
        coords, scores = decode_heatmaps(heatmaps, use_dark=use_dark)
        preds = transform_preds(coords, center, scale, (48, 64))[0]
        assert oks(preds, keypoints, area) >= 0.99, (xywh, use_dark)
        assert np.allclose(scores[0][visible], 1.0, atol=0.2)


def test_simdr_decoder_recovers_annotations(people):
    ratio = 2.0
    for xywh, keypoints, area in people:
        center, scale = xywh_to_center_scale(xywh[None])
        points = affine_points(keypoints[None, :, :2], crop_transforms(center, scale, (192, 256)))[0] * ratio
        bins_x, bins_y = np.arange(int(192 * ratio)), np.arange(int(256 * ratio))
        prob_x = np.exp(-(bins_x[None] - points[:, :1]) ** 2 / (2 * SIGMA**2))[None]
        prob_y = np.exp(-(bins_y[None] - points[:, 1:]) ** 2 / (2 * SIGMA**2))[None]
        coords, _ = decode_simdr(prob_x, prob_y, ratio)
        preds = transform_preds(coords, center, scale, (192, 256))[0]
        assert oks(preds, keypoints, area) >= 0.99, xywh


def test_dark_is_subpixel_exact_on_a_gaussian():
    heatmaps = _render_heatmaps(np.array([[20.3, 30.7]]), np.array([True]), (48, 64))
    coords, _ = get_max_preds(heatmaps)
    assert np.allclose(dark_refine(heatmaps, coords)[0, 0], [20.3, 30.7], atol=0.02)
    assert np.allclose(quarter_offset(heatmaps, coords)[0, 0], [20.25, 30.75])


def test_official_edge_rules():
    heatmaps = np.zeros((1, 3, 8, 8), np.float32)
    heatmaps[0, 0, 4, 1] = 1.0  # x = 1: the official test is 1 < x, no quarter step
    heatmaps[0, 0, 4, 2] = 0.5
    heatmaps[0, 1] = -1.0  # maximum <= 0: coordinates zeroed
    heatmaps[0, 1, 3, 5] = -0.5
    heatmaps[0, 2, 3, 3] = heatmaps[0, 2, 3, 5] = 1.0  # tie: the first maximum in row-major order wins
    coords, scores = decode_heatmaps(heatmaps)
    assert coords[0, 0].tolist() == [1.0, 4.0]
    assert coords[0, 1].tolist() == [0.0, 0.0] and scores[0, 1] == -0.5
    assert coords[0, 2].tolist() == [3.0, 3.0]
    bare, _ = decode_heatmaps(heatmaps, post_process=False)
    assert bare[0, 0].tolist() == [1.0, 4.0]


def test_simdr_ties_and_confidence():
    prob_x = np.array([[[0.1, 0.4, 0.4, 0.1]]])
    prob_y = np.array([[[0.7, 0.2, 0.1]]])
    coords, scores = decode_simdr(prob_x, prob_y, 2.0)
    assert coords.tolist() == [[[0.5, 0.0]]] and scores.tolist() == [[np.float32(0.7)]]


def test_person_scores_rescoring():
    keypoint_scores = np.array([[0.9, 0.1, 0.3, 0.19], [0.1, 0.19, 0.0, 0.15]], np.float32)
    scores = person_scores(keypoint_scores, np.array([0.5, 0.8]))
    assert scores.dtype == np.float32
    assert scores[0] == pytest.approx(0.5 * (0.9 + 0.3) / 2, rel=1e-6) and scores[1] == 0.0
