"""Equal-cost assignments: the grouping kernel against the official matching driven by munkres 3.0.0.

The official ``match_by_tag`` costs are ``round(distance) * 100 - value``, so
two people at distances that round alike, or two equal peak values, give
assignments of exactly equal cost; which one munkres returns decides which
person gets the joint. The instances here are built to be full of such ties:
person tags on a quarter grid (several people share a tag, candidates sit
exactly half-way between people, so numpy's half-even rounding matters),
peak values from a handful of levels, more candidates than people and fewer.
Every instance is grouped by the Numba kernel and by the official algorithm
(:func:`match_by_tag_reference`) calling ``munkres.Munkres().compute``; the
two must agree exactly, person for person.
"""

from __future__ import annotations

import numpy as np
import pytest

from streampose.models.higherhrnet import grouping as G
from streampose.models.higherhrnet import grouping_reference as R
from streampose.models.higherhrnet.synthetic import TAG_STEP, random_people, render_maps

munkres = pytest.importorskip("munkres")

NUM_JOINTS = 17
VALUE_LEVELS = np.array([0.05, 0.3, 0.3, 0.6, 0.9, 0.9], np.float32)  # 0.05: under the detection threshold
TAG_OFFSETS = np.array([0.0, 0.0, 0.25, -0.25, 0.5, -0.5, 1.5, -1.5, 2.5], np.float32)  # halves round to even


def requires_munkres_3() -> None:
    from munkres import _native

    if munkres.__version__ != "3.0.0" or not _native.available():
        pytest.skip(f"the reference is munkres 3.0.0 with its C kernel (installed: {munkres.__version__})")


def tie_heavy_peaks(rng: np.random.Generator, depth: int, k: int) -> G.TopK:
    """Peaks of a few people whose tags share values, with candidates at equal distances from several of them."""
    num_people = int(rng.integers(1, 7))
    person_tags = rng.choice(np.arange(0, 4, 0.5, dtype=np.float32), (num_people, depth))
    owner = rng.integers(0, num_people, (NUM_JOINTS, k))
    offsets = rng.choice(TAG_OFFSETS, (NUM_JOINTS, k, depth))
    tag = (person_tags[owner] + offsets).astype(np.float32)
    val = rng.choice(VALUE_LEVELS, (NUM_JOINTS, k))
    val[rng.random((NUM_JOINTS, k)) < 0.3] = np.float32(0.05)  # joints with fewer candidates than people
    val = -np.sort(-val, axis=1)  # top-k order, equal values side by side
    loc = rng.integers(0, 64, (NUM_JOINTS, k, 2))
    return G.TopK(val.astype(np.float32), loc, tag)


def random_params(rng: np.random.Generator, k: int) -> G.ParserParams:
    kind = int(rng.integers(0, 4))
    if kind == 1:  # fewer people may be grouped than candidates: padding columns
        return G.ParserParams(max_num_people=k, tag_threshold=float(rng.choice([0.75, 1.0, 1.5])))
    if kind == 2:
        return G.ParserParams(max_num_people=k, tag_threshold=2.0)
    if kind == 3:
        return G.ParserParams(max_num_people=k, use_detection_val=False)
    return G.ParserParams(max_num_people=k)


def test_tie_heavy_instances_match_munkres_3_exactly():
    # 10,000 instances of 17 joints: about 100,000 assignments, most of them with ties.
    requires_munkres_3()
    rng = np.random.default_rng(16)
    differing = []
    with_ties = 0
    solved = 0
    for instance in range(10_000):
        k = int(rng.integers(2, 9))
        peaks = tie_heavy_peaks(rng, depth=1 + instance % 2, k=k)
        params = random_params(rng, k)
        ours = G.match_by_tag(peaks, params)
        official = R.match_by_tag_reference(peaks, params, R.munkres_package_assign)
        if not (ours.shape == official.shape and np.array_equal(ours, official)):
            differing.append(instance)
        if instance % 4 == 0:  # the 2.0.0 solver resolves many of these otherwise: ties are exercised
            with_ties += not np.array_equal(
                official, R.match_by_tag_reference(peaks, params, R.python_solver_assign_reference))
        solved += 1
    assert solved == 10_000
    assert differing == [], f"{len(differing)} instances grouped differently, first {differing[:5]}"
    assert with_ties > 250, f"only {with_ties} of 2,500 instances where the tie-breaking mattered"


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 5), (4, 4), (2, 8), (4, 5), (6, 6), (9, 12), (17, 30),
                                   (30, 30)])
def test_assignment_equals_munkres_3_on_equal_costs(shape):
    # Both sides of munkres' dispatch: its Python solver under 16 cells, its C kernel from 16 on.
    requires_munkres_3()
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for _ in range(300):
        cost = rng.integers(0, 3, shape) * 100.0 - rng.choice([0.25, 0.5, 0.9], shape)
        if rng.random() < 0.5 and shape[1] > shape[0]:
            cost[:, shape[0]:] = 1e10  # the official padding columns
        ours = G.lap_assign(cost)
        assert np.array_equal(ours, R.munkres_package_assign(cost))
        assert np.array_equal(ours, R.lap_assign_reference(cost))


def test_the_two_munkres_3_solvers_break_ties_differently():
    # Why the kernel dispatches on size: the same matrix, two answers of equal cost.
    cost = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    native = R.native_kernel_assign_reference(cost)
    python = R.python_solver_assign_reference(cost)
    assert python.tolist() == [0, 1, 2, 3]
    assert sorted(native.tolist()) == [0, 1, 2, 3]
    rng = np.random.default_rng(1)
    differ = 0
    for _ in range(200):
        cost = rng.integers(0, 2, (5, 6)) * 100.0 - 0.5
        differ += not np.array_equal(R.native_kernel_assign_reference(cost), R.python_solver_assign_reference(cost))
    assert differ > 0


def rendered_tie_scene(rng: np.random.Generator, size_wh=(96, 80)):
    """(heatmaps, tags (J, H, W, 1)) of people whose tags repeat or sit half-way between each other."""
    num_people = int(rng.integers(2, 7))
    people = random_people(num_people, size_wh, rng)
    hidden = rng.random(people.shape[:2]) < 0.25
    hidden[:, 0] = False
    people[hidden] = np.nan
    person_tag = rng.choice(np.arange(0, 3, 0.5), num_people)  # shared and half-way tags
    joint_offset = rng.choice([0.0, 0.0, 0.25, -0.25, 0.5], people.shape[:2])
    # render_maps writes p * TAG_STEP + noise: the noise is chosen to give these exact (binary) tags.
    noise = person_tag[:, None] + joint_offset - np.arange(num_people)[:, None] * TAG_STEP
    heatmaps, tags = render_maps(people, size_wh, noise)
    return heatmaps, tags[..., None]


def test_rendered_maps_with_equal_tag_distances_parse_as_official():
    requires_munkres_3()
    rng = np.random.default_rng(7)
    params = G.ParserParams(max_num_people=8)
    differing = 0
    tie_sensitive = 0
    for _ in range(60):
        heatmaps, tags = rendered_tie_scene(rng)
        ours = G.parse(heatmaps, tags, params)
        official = R.parse_reference(heatmaps, tags, params, R.munkres_package_assign)
        differing += not (np.array_equal(ours.grouped, official.grouped)
                          and np.array_equal(ours.scores, official.scores))
        peaks = G.top_k(heatmaps, tags, params)
        tie_sensitive += not np.array_equal(R.match_by_tag_reference(peaks, params, R.munkres_package_assign),
                                            R.match_by_tag_reference(peaks, params, R.python_solver_assign_reference))
    assert differing == 0
    assert tie_sensitive >= 3, f"only {tie_sensitive} of 60 scenes where the tie-breaking mattered"
