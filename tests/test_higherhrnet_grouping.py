"""The Numba grouping kernels: official parser goldens, and their plain-Python twins on random inputs.

Tolerance classes from ../shared/golden/INDEX.md: ``parser`` (same number of
people; x, y to 1e-3; value / tag columns max|diff| <= 1e-4 * max|ref|;
final_preds to 1e-3 px). The kernels reproduce these goldens bit for bit
today; the assertions use the documented classes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streampose.models.higherhrnet import grouping as G
from streampose.models.higherhrnet import grouping_reference as R
from streampose.models.higherhrnet.aggregate import MapAccumulator, stage_maps

NET = 1e-4


def assert_parser(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    assert ours.shape == ref.shape, f"{name}: {ours.shape} people/joints, official {ref.shape}"
    if ref.size == 0:
        return
    assert np.abs(ours[..., :2] - ref[..., :2]).max() <= 1e-3, f"{name}: x, y differ"
    worst = np.abs(ours[..., 2:].astype(np.float64) - ref[..., 2:]).max()
    assert worst <= NET * np.abs(ref[..., 2:]).max(), f"{name}: value/tag columns differ by {worst:.3g}"


def assert_net(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    assert ours.shape == ref.shape, name
    assert np.abs(ours.astype(np.float64) - ref).max() <= NET * np.abs(ref).max(), name


def check_all_stages(det, tag, golden, prefix, center, scale) -> None:
    peaks = G.top_k(det, tag)
    assert np.array_equal(peaks.loc, golden[prefix + "topk_loc"][0])
    assert_net(peaks.val, golden[prefix + "topk_val"][0], "topk_val")
    assert_net(peaks.tag, golden[prefix + "topk_tag"][0], "topk_tag")
    matched = G.match_by_tag(peaks)
    assert_parser(matched, golden[prefix + "matched"], "matched")
    adjusted = G.adjust(matched, det)
    assert_parser(adjusted, golden[prefix + "adjusted"], "adjusted")
    assert_net(G.person_scores(adjusted), golden[prefix + "scores"], "scores")
    parsed = G.parse(det, tag)
    assert_parser(parsed.grouped, golden[prefix + "grouped"], "grouped")
    final = G.final_preds(parsed.grouped, center, scale, (det.shape[2], det.shape[1]))
    assert_parser(final, golden[prefix + "final_preds"], "final_preds")


# --------------------------------------------------------------------------- goldens


@pytest.fixture(scope="module")
def rendered(shared_dir):
    return np.load(shared_dir / "golden" / "higherhrnet_parser_rendered.npz")


@pytest.fixture(scope="module")
def higher(shared_dir):
    return np.load(shared_dir / "golden" / "higherhrnet_w32_512.npz")


@pytest.mark.parametrize("tag_dim", [1, 2])
def test_rendered_196141_every_parser_stage(rendered, tag_dim):
    det = rendered["196141_det"][0]
    tag = rendered[f"196141_tag{tag_dim}"][0]
    check_all_stages(det, tag, rendered, f"196141_tagdim{tag_dim}_", rendered["196141_center"],
                     rendered["196141_scale"])


def test_bus_recipe_weights_noflip_every_parser_stage(higher):
    # 300 "people" from random-weight maps: a hard case for tie-breaking and person bookkeeping.
    accumulator = MapAccumulator((512, 704))
    accumulator.add(*stage_maps([torch.from_numpy(higher["bus_raw0_full"]), torch.from_numpy(higher["bus_raw1_full"])]))
    heatmaps, tags = accumulator.result()
    check_all_stages(heatmaps[0].numpy(), tags[0].numpy(), higher, "bus_noflip_", higher["bus_center"],
                     higher["bus_scale"])


def test_bus_recipe_weights_flip_matching(higher):
    # The flip maps are not stored in full; the matching runs on the stored official peaks.
    peaks = G.TopK(higher["bus_flip_topk_val"][0], higher["bus_flip_topk_loc"][0], higher["bus_flip_topk_tag"][0])
    assert_parser(G.match_by_tag(peaks), higher["bus_flip_matched"], "bus_flip_matched")


# --------------------------------------------------------------------------- twins on random inputs


def random_maps(rng, shape=(17, 48, 64), depth=1, levels=None):
    """Heatmaps with plateaus and negative regions (many equal values), and tags."""
    if levels is None:
        det = rng.standard_normal(shape).astype(np.float32)
    else:
        det = (rng.integers(-2, levels, shape) / 4).astype(np.float32)
    tag = (rng.standard_normal(shape + (depth,)) * 2).astype(np.float32)
    return det, tag


@pytest.mark.parametrize("seed", range(4))
def test_top_k_equals_torch(seed):
    rng = np.random.default_rng(seed)
    det, tag = random_maps(rng, levels=[None, 3, 6, 1][seed], depth=1 + seed % 2)
    if seed == 3:
        det[2, 5, 7] = np.nan
        det[4] = -np.abs(det[4]) - 1  # every value negative: the peaks are the -0s left by the NMS
    ours, ref = G.top_k(det, tag), R.top_k_reference(det, tag)
    assert np.array_equal(ours.loc, ref.loc)
    assert np.array_equal(ours.val, ref.val, equal_nan=True)
    assert np.array_equal(np.signbit(ours.val), np.signbit(ref.val))
    assert np.array_equal(ours.tag, ref.tag)


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (4, 7), (8, 8), (12, 30), (30, 30)])
def test_assignment_equals_its_twin_on_ties(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for _ in range(20):
        cost = rng.integers(0, 3, shape) * 100.0 - rng.choice([0.5, 0.75, 0.9], shape[0])[:, None]
        if shape[0] > 1 and rng.random() < 0.5:
            cost[:, shape[1] // 2:] = 1e10  # the official padding columns
        assert np.array_equal(G.lap_assign(cost), R.lap_assign_reference(cost))


@pytest.mark.parametrize("shape", [(5, 5), (6, 11), (20, 20), (30, 30)])
def test_assignment_is_optimal_like_munkres(shape):
    rng = np.random.default_rng(shape[1])
    for trial in range(5):
        cost = rng.random(shape) if trial % 2 else rng.integers(0, 4, shape).astype(np.float64)
        ours = G.lap_assign(cost)
        ref = R.munkres_package_assign(cost)
        assert sorted(ours) == sorted(set(ours)) and len(ours) == shape[0]
        assert cost[np.arange(shape[0]), ours].sum() == pytest.approx(cost[np.arange(shape[0]), ref].sum(), abs=1e-9)
        if trial % 2:  # continuous costs: the optimum is unique
            assert np.array_equal(ours, ref)


def test_assignment_rejects_non_finite():
    cost = np.ones((2, 2))
    cost[0, 1] = np.nan
    assert (G.lap_assign(cost) == -1).all()
    with pytest.raises(ValueError, match="not finite"):
        G.match_by_tag(G.TopK(np.full((17, 2), 0.9, np.float32), np.zeros((17, 2, 2), np.int64),
                              np.full((17, 2, 1), np.nan, np.float32)))


def random_peaks(rng, depth: int, num_people: int, k: int = 30) -> G.TopK:
    """Peaks of ``num_people`` true people plus clutter, tags clustered per person, some keys repeated."""
    val = rng.uniform(0.0, 1.0, (17, k)).astype(np.float32)
    loc = rng.integers(0, 60, (17, k, 2))
    person = rng.integers(0, num_people, (17, k))
    tag = (person[..., None] * 1.3 + rng.normal(0, 0.4, (17, k, depth))).astype(np.float32)
    tag[3, 2] = tag[0, 0]  # an exactly repeated tag value: the official dict merges people by key
    tag[7, :2] = tag[7, 2]
    return G.TopK(val, loc, tag)


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("num_people", [1, 4, 12, 45])
def test_match_by_tag_equals_its_twin(depth, num_people):
    rng = np.random.default_rng(depth * 1000 + num_people)
    for params in (G.ParserParams(), G.ParserParams(max_num_people=5, tag_threshold=0.7),
                   G.ParserParams(use_detection_val=False, detection_threshold=0.3),
                   G.ParserParams(ignore_too_much=True, max_num_people=8)):
        peaks = random_peaks(rng, depth, num_people, k=params.max_num_people)
        ours = G.match_by_tag(peaks, params)
        assert np.array_equal(ours, R.match_by_tag_reference(peaks, params))


@pytest.mark.parametrize("depth", [1, 2])
def test_adjust_scores_refine_equal_their_twins(depth):
    rng = np.random.default_rng(7 + depth)
    for levels in (None, 5):
        det, tag = random_maps(rng, shape=(17, 40, 56), depth=depth, levels=levels)
        det = np.abs(det)
        grouped = G.match_by_tag(G.top_k(det, tag, G.ParserParams(detection_threshold=0.6)),
                                 G.ParserParams(detection_threshold=0.6))
        assert len(grouped) > 3
        adjusted = G.adjust(grouped, det)
        assert np.array_equal(adjusted, R.adjust_reference(grouped, det))
        assert np.array_equal(G.person_scores(adjusted), R.scores_reference(adjusted))
        refined = G.refine(adjusted, det, tag)
        assert np.array_equal(refined, R.refine_reference(adjusted, det, tag))
        assert np.array_equal(refined, G.refine(adjusted, det, tag, tiled=False))


def test_refine_tiled_equals_full_scan_with_smooth_tags():
    # Smooth tag fields make the tile bounds prune; the answer must not change.
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:70, 0:90].astype(np.float32)
    det = np.stack([np.exp(-((xx - rng.uniform(0, 90)) ** 2 + (yy - rng.uniform(0, 70)) ** 2) / 50)
                    for _ in range(17)]).astype(np.float32)
    tag = np.stack([(xx / 30 + yy / 40 + j * 0.01)[..., None] for j in range(17)]).astype(np.float32)
    grouped = np.zeros((6, 17, 4), np.float32)
    grouped[:, 0, :2] = rng.integers(0, 60, (6, 2))
    grouped[:, 0, 2] = 0.5
    assert np.array_equal(G.refine(grouped, det, tag), G.refine(grouped, det, tag, tiled=False))
    assert np.array_equal(G.refine(grouped, det, tag), R.refine_reference(grouped, det, tag))
    nan_tag = tag.copy()
    nan_tag[5, 3, 4, 0] = np.nan  # not finite: both paths fall back to the full scan
    assert np.array_equal(G.refine(grouped, det, nan_tag), R.refine_reference(grouped, det, nan_tag))


def test_parse_equals_its_twin_and_handles_empty_maps():
    rng = np.random.default_rng(11)
    det, tag = random_maps(rng, shape=(17, 48, 64), depth=2)
    ours, ref = G.parse(det, tag), R.parse_reference(det, tag)
    assert np.array_equal(ours.grouped, ref.grouped) and np.array_equal(ours.scores, ref.scores)
    empty = G.parse(np.zeros((17, 48, 64), np.float32), np.zeros((17, 48, 64), np.float32))
    assert empty.grouped.shape == (0, 17, 4) and empty.scores.shape == (0,)


# --------------------------------------------------------------------------- output helpers


def test_final_preds_maps_xy_and_keeps_other_columns():
    from streampose.models.higherhrnet.resize import input_to_frame, multi_scale_size

    geometry = multi_scale_size((429, 640), 512)
    grouped = np.random.default_rng(0).uniform(0, 500, (3, 17, 5)).astype(np.float32)
    final = G.final_preds(grouped, geometry.center, geometry.scale, geometry.size_wh)
    assert final.dtype == np.float32
    assert np.allclose(final[..., :2], input_to_frame(grouped[..., :2], geometry), atol=1e-3)
    assert np.array_equal(final[..., 2:], grouped[..., 2:])


def test_redundant_pose_mask_drops_near_duplicates_in_order():
    base = np.random.default_rng(1).uniform(0, 300, (17, 2))
    keypoints = np.stack([base, base + 2.5, base + 40, base + 3.5])
    assert G.redundant_pose_mask(keypoints).tolist() == [True, False, True, True]
    assert G.redundant_pose_mask(np.zeros((0, 17, 2))).tolist() == []


def test_boxes_span_found_joints_only():
    keypoints = np.array([[[10, 20], [30, 5], [-100, -100]], [[0, 0], [0, 0], [0, 0]]], np.float32)
    scores = np.array([[0.5, 0.2, 0.0], [0.0, 0.0, 0.0]], np.float32)
    assert G.boxes_from_keypoints(keypoints, scores).tolist() == [[10, 5, 30, 20], [0, 0, 0, 0]]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_num_people": 0}, "max_num_people"), ({"nms_kernel": 4}, "nms_kernel"),
    ({"tag_threshold": 0.0}, "tag_threshold"), ({"joint_order": (0, 0, 1)}, "joint_order"),
])
def test_parser_params_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        G.ParserParams(**kwargs)


def test_maps_are_checked():
    with pytest.raises(ValueError, match="tag must have shape"):
        G.parse(np.zeros((17, 48, 64), np.float32), np.zeros((17, 48, 63, 1), np.float32))
    with pytest.raises(ValueError, match="fewer pixels"):
        G.top_k(np.zeros((17, 4, 5), np.float32), np.zeros((17, 4, 5), np.float32))
