"""streampose.assignment: exact optimum against brute force and munkres; Numba vs Python twin."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from munkres import Munkres

from streampose.assignment import linear_assignment, match_by_similarity


def _brute_force_min(cost: np.ndarray) -> float:
    if cost.shape[0] > cost.shape[1]:
        cost = cost.T
    n, m = cost.shape
    return min(cost[np.arange(n), list(p)].sum() for p in itertools.permutations(range(m), n))


@pytest.mark.parametrize("use_numba", [True, False])
def test_linear_assignment_is_optimal_on_random_matrices(use_numba):
    rng = np.random.default_rng(0)
    for trial in range(150):
        n, m = rng.integers(1, 6, size=2)
        # Integer costs make ties common, the hard case for augmenting paths.
        cost = rng.integers(0, 4, (n, m)).astype(float) if trial % 2 else rng.normal(size=(n, m))
        rows, cols = linear_assignment(cost, use_numba=use_numba)
        assert len(rows) == len(cols) == min(n, m)
        assert np.all(np.diff(rows) > 0) and len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(_brute_force_min(cost), abs=1e-9)


def test_linear_assignment_matches_munkres_on_larger_matrices():
    rng = np.random.default_rng(1)
    for n, m in [(30, 30), (25, 40), (40, 25)]:
        cost = rng.random((n, m))
        rows, cols = linear_assignment(cost)
        pairs = Munkres().compute(cost.tolist())
        assert cost[rows, cols].sum() == pytest.approx(sum(cost[i, j] for i, j in pairs), abs=1e-9)


def test_numba_and_python_twin_agree():
    rng = np.random.default_rng(2)
    for _ in range(30):
        cost = rng.random(tuple(rng.integers(1, 12, size=2)))
        a = linear_assignment(cost, use_numba=True)
        b = linear_assignment(cost, use_numba=False)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (4, 0)])
def test_empty_matrices(shape):
    rows, cols = linear_assignment(np.zeros(shape))
    assert rows.shape == cols.shape == (0,) and rows.dtype == np.int64


def test_non_finite_cost_is_refused():
    with pytest.raises(ValueError, match="finite"):
        linear_assignment(np.array([[0.0, np.inf]]))


def test_match_by_similarity_is_global_not_greedy_and_respects_the_minimum():
    # Greedy would take the 0.9 pair and leave row 1 with nothing; the optimum
    # pairs (0,1) and (1,0) for 0.8 + 0.8.
    sim = np.array([[0.9, 0.8], [0.8, 0.0]])
    rows, cols = match_by_similarity(sim, 0.3)
    assert list(zip(rows, cols)) == [(0, 1), (1, 0)]
    # Below the minimum, a pair is never made even if nothing else is available.
    rows, cols = match_by_similarity(np.array([[0.29, 0.1], [0.0, 0.5]]), 0.3)
    assert list(zip(rows, cols)) == [(1, 1)]


def test_match_by_similarity_against_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(100):
        n, m = rng.integers(0, 5, size=2)
        sim = np.where(rng.random((n, m)) < 0.5, rng.random((n, m)), 0.0)
        rows, cols = match_by_similarity(sim, 0.25)
        assert np.all(sim[rows, cols] >= 0.25)
        weight = np.where(sim >= 0.25, sim, 0.0)
        best = -_brute_force_min(-weight) if n and m else 0.0
        assert sim[rows, cols].sum() == pytest.approx(best, abs=1e-9)
