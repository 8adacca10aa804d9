"""Globally optimal one-to-one assignment (linear sum assignment).

:func:`linear_assignment` solves the rectangular minimum-cost assignment
problem exactly with the shortest-augmenting-path method of Jonker and
Volgenant (1987), in the rectangular form described by Crouse, "On
implementing 2D rectangular assignment algorithms", IEEE TAES 52(4), 2016.
:func:`match_by_similarity` is the form trackers and groupers need: maximise
the total similarity of matched pairs, never matching a pair below a minimum.

The kernel is written once as plain Python and compiled with Numba; the
uncompiled function is kept as the twin the tests compare against.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import register_jitable

__all__ = ["linear_assignment", "match_by_similarity", "match_weights"]


@register_jitable  # callable from other kernels, and still plain Python for the twins
def _solve_rows_le_cols(cost: np.ndarray) -> np.ndarray:
    """Column assigned to each row of a finite (R, C) float64 cost matrix, R <= C."""
    n, m = cost.shape
    u = np.zeros(n)  # row duals
    v = np.zeros(m)  # column duals
    shortest = np.empty(m)
    path = np.full(m, -1, np.int64)
    col4row = np.full(n, -1, np.int64)
    row4col = np.full(m, -1, np.int64)
    row_seen = np.zeros(n, np.bool_)
    col_seen = np.zeros(m, np.bool_)
    remaining = np.empty(m, np.int64)
    for cur_row in range(n):
        # Dijkstra-like search for the cheapest augmenting path from cur_row
        # to a free column, on reduced costs.
        for j in range(m):
            shortest[j] = np.inf
            col_seen[j] = False
            remaining[j] = m - 1 - j
        for i in range(n):
            row_seen[i] = False
        num_remaining = m
        min_val = 0.0
        i = cur_row
        sink = -1
        while sink == -1:
            row_seen[i] = True
            best = -1
            lowest = np.inf
            for it in range(num_remaining):
                j = remaining[it]
                reduced = min_val + cost[i, j] - u[i] - v[j]
                if reduced < shortest[j]:
                    path[j] = i
                    shortest[j] = reduced
                # Ties go to a free column: it ends the search sooner.
                if shortest[j] < lowest or (shortest[j] == lowest and row4col[j] == -1):
                    lowest = shortest[j]
                    best = it
            min_val = lowest
            j = remaining[best]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            col_seen[j] = True
            num_remaining -= 1
            remaining[best] = remaining[num_remaining]
        u[cur_row] += min_val
        for i in range(n):
            if row_seen[i] and i != cur_row:
                u[i] += min_val - shortest[col4row[i]]
        for j in range(m):
            if col_seen[j]:
                v[j] -= min_val - shortest[j]
        # Augment along the path back to cur_row.
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            previous = col4row[i]
            col4row[i] = j
            j = previous
            if i == cur_row:
                break
    return col4row


def _match_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-total-weight matching of a (R, C) matrix of weights >= 0; 0 = never matched."""
    n, m = weight.shape
    rows = np.zeros(n, np.int64)
    cols = np.zeros(m, np.int64)
    num_rows = 0
    num_cols = 0
    # Rows/columns with no positive weight cannot be matched: leave them out so
    # the solver only sees the contested part (usually small in tracking).
    col_used = np.zeros(m, np.bool_)
    largest = 0.0
    for i in range(n):
        used = False
        for j in range(m):
            if weight[i, j] > 0.0:
                used = True
                col_used[j] = True
                largest = max(largest, weight[i, j])
        if used:
            rows[num_rows] = i
            num_rows += 1
    for j in range(m):
        if col_used[j]:
            cols[num_cols] = j
            num_cols += 1
    out_rows = np.zeros(min(num_rows, num_cols), np.int64)
    out_cols = np.zeros(min(num_rows, num_cols), np.int64)
    if num_rows == 0:
        return out_rows, out_cols
    transpose = num_rows > num_cols
    a, b = (num_cols, num_rows) if transpose else (num_rows, num_cols)
    cost = np.empty((a, b))
    for i in range(num_rows):
        for j in range(num_cols):
            if transpose:
                cost[j, i] = largest - weight[rows[i], cols[j]]
            else:
                cost[i, j] = largest - weight[rows[i], cols[j]]
    assigned = _solve_rows_le_cols(cost)
    count = 0
    if transpose:
        row_of_col = np.full(num_rows, -1, np.int64)  # sub-row matched to each sub-column
        for j in range(num_cols):
            row_of_col[assigned[j]] = j
        for i in range(num_rows):
            j = row_of_col[i]
            if j >= 0 and weight[rows[i], cols[j]] > 0.0:
                out_rows[count] = rows[i]
                out_cols[count] = cols[j]
                count += 1
    else:
        for i in range(num_rows):
            j = assigned[i]
            if weight[rows[i], cols[j]] > 0.0:
                out_rows[count] = rows[i]
                out_cols[count] = cols[j]
                count += 1
    return out_rows[:count], out_cols[:count]


_solve_rows_le_cols_py = _solve_rows_le_cols
_solve_rows_le_cols_nb = numba.njit(cache=True, nogil=True)(_solve_rows_le_cols)
_match_weights_py = _match_weights
_match_weights_nb = numba.njit(cache=True, nogil=True)(_match_weights)


def linear_assignment(cost: np.ndarray, *, use_numba: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-total-cost one-to-one assignment of the rows and columns of ``cost``.

    cost: (R, C) array of finite numbers (R and C may differ and may be 0).
    Returns ``(rows, cols)``, two int64 arrays of length ``min(R, C)``: row
    ``rows[i]`` is assigned column ``cols[i]``; ``rows`` is ascending.
    Raises ValueError for a non-2-D or non-finite matrix. Forbidden pairs are
    the caller's business: give them a large finite cost, or use
    :func:`match_by_similarity`. ``use_numba=False`` runs the plain-Python twin.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    if cost.size and not np.isfinite(cost).all():
        raise ValueError("cost must be finite; give forbidden pairs a large finite cost")
    solve = _solve_rows_le_cols_nb if use_numba else _solve_rows_le_cols_py
    n, m = cost.shape
    if n == 0 or m == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy()
    if n <= m:
        return np.arange(n, dtype=np.int64), solve(np.ascontiguousarray(cost))
    col_rows = solve(np.ascontiguousarray(cost.T))  # row assigned to each column
    order = np.argsort(col_rows)
    return col_rows[order], order.astype(np.int64)


def match_by_similarity(similarity: np.ndarray, min_similarity: float, *,
                        use_numba: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Pairs maximising the total similarity, never pairing below ``min_similarity``.

    similarity: (R, C) finite array, larger is better, values <= 0 never
    match; min_similarity > 0. Equivalent to a maximum-weight matching where a
    pair below the minimum weighs the same as leaving both unmatched (0), so
    the result is the global optimum, not a greedy one. Returns ``(rows,
    cols)`` int64 arrays of the matched pairs, ``rows`` ascending.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2:
        raise ValueError(f"similarity must be a 2-D matrix, got shape {similarity.shape}")
    if not min_similarity > 0:
        raise ValueError(f"min_similarity={min_similarity!r} is out of range: allowed > 0")
    if similarity.size and not np.isfinite(similarity).all():
        raise ValueError("similarity must be finite")
    return match_weights(np.where(similarity >= min_similarity, similarity, 0.0), use_numba=use_numba)


def match_weights(weight: np.ndarray, *, use_numba: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-total-weight matching; pairs of weight <= 0 are never matched.

    weight: (R, C) finite float64, already 0 wherever a pair is not allowed
    (the form a kernel that thresholds as it goes produces). Returns ``(rows,
    cols)`` int64 arrays of the matched pairs, ``rows`` ascending.
    """
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    if weight.ndim != 2:
        raise ValueError(f"weight must be a 2-D matrix, got shape {weight.shape}")
    return (_match_weights_nb if use_numba else _match_weights_py)(weight)
