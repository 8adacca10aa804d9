"""Associative-embedding grouping of HigherHRNet maps into people, as Numba kernels.

This is the official ``HeatmapParser`` of HRNet/HigherHRNet-Human-Pose-Estimation
(``lib/core/group.py``: ``top_k``, ``match_by_tag``, ``adjust``, ``refine``,
``parse``; itself after princeton-vl/pose-ae-train) reimplemented so that it
gives the same people, joints and scores, bit for bit where the official code
is deterministic:

- **peaks**: a joint map keeps the pixels equal to the maximum of their
  ``nms_kernel`` x ``nms_kernel`` neighbourhood (others become ``0 * value``),
  then the ``max_num_people`` largest values are taken in torch's CPU
  ``topk`` order (libstdc++ ``std::partial_sort`` of (value, index) pairs
  compared by value only, which fixes the order of equal values);
- **match**: joints are visited in the official order (nose, eyes, ears,
  shoulders, hips, elbows, wrists, knees, ankles); candidates above the
  detection threshold are assigned to the first ``max_num_people`` people by an
  optimal assignment of ``round(tag distance) * 100 - value`` (numpy's
  round-half-even), solved exactly as the ``munkres`` package the official
  code calls (see *Which munkres* below); a candidate whose
  tag distance is not under the tag threshold starts a new person keyed by its
  first tag value (a person with an equal key is overwritten, as the official
  dict does). Person mean tags are float32 means in numpy's summation order;
- **adjust**: a quarter pixel towards the higher neighbour, then +0.5;
- **scores**: the mean joint value after adjust (numpy pairwise float32 sum);
- **refine**: each missing joint is taken at the argmax of
  ``heatmap - round(|tag - person mean tag|)`` (first maximum in row-major
  order) with the same quarter-pixel offset. The argmax is found by a
  branch-and-bound over 8x8 tiles (the heatmap maximum of a tile and its
  tags' bounding box bound its scores), which returns exactly the full-map
  argmax but touches few pixels.

Which munkres: the rounded costs make assignments of exactly equal cost
common (people whose tag distances round alike, equal peak values), and the
official code keeps whichever one ``munkres.Munkres().compute`` returns, so
the people found depend on that package's version. The official numbers we
reproduce (``../shared/golden``, HRNet/HigherHRNet-Human-Pose-Estimation @
aa23881) were made with **munkres 3.0.0**, the current release, installed
from its wheel, which carries a C kernel. Its ``compute`` sends a float
problem of at least 16 cells to that kernel (a LAPJV-style shortest path
whose column scan runs in a swap-remove list and prefers a free column on a
tie) and smaller ones to its Python solver (the row-minimum warm start and
index-order Dijkstra of 2.0.0, which has no kernel). :func:`lap_assign`
reproduces both and the dispatch; on equal costs 2.0.0 alone, 3.0.0 without
its kernel (``PALDITA_NO_NATIVE=1`` or a build without a compiler) and 1.x
(Munkres' step algorithm) may each pick another optimum. The version is
known from issue 16: a held-back golden with ~300 candidate people told
2.0.0 and 3.0.0 apart (14 joints on different people before refine) and the
goldens' producer names 3.0.0; the visible goldens match either. The ``dev``
extra pins munkres 3.0.0 as the reference the tests compare against
(``tests/test_higherhrnet_ties.py``: 10,000 tie-heavy instances, 0 differences).

Arrays: ``det`` (J, H, W) float32 heatmaps, ``tag`` (J, H, W, D) float32 tags
(D = 1 without flip, 2 with flip test, more with several scales), both at the
resolution the parser works at (the network input size). ``grouped`` is
(P, J, 3 + D) float32: x, y (map pixels), value, tags. The plain-Python twins
the tests compare these kernels against are in ``grouping_reference``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ...keypoint_sets import COCO_17

#: Official match order for COCO-17 (``Params.joint_order`` without a centre joint); other sets: their
#: ``KeypointSet.joint_order``.
COCO_JOINT_ORDER: tuple[int, ...] = COCO_17.joint_order

#: Side of the square tiles of the refine branch-and-bound.
REFINE_TILE = 8

_ASSIGN_FAILED = -1


@dataclass(frozen=True)
class ParserParams:
    """Grouping settings; defaults are the official COCO test settings.

    detection_threshold: a peak joins only if its value is above it;
    tag_threshold: a peak joins a person only if their tag distance is under it;
    use_detection_val: cost ``round(distance) * 100 - value`` (else the distance);
    ignore_too_much: skip a joint once ``max_num_people`` people exist;
    max_num_people: peaks per joint, and people a peak may join;
    nms_kernel: odd side of the peak window; adjust / refine: the two steps.
    """

    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    use_detection_val: bool = True
    ignore_too_much: bool = False
    max_num_people: int = 30
    nms_kernel: int = 5
    adjust: bool = True
    refine: bool = True
    joint_order: tuple[int, ...] = COCO_JOINT_ORDER

    def __post_init__(self) -> None:
        if self.max_num_people < 1:
            raise ValueError(f"max_num_people must be >= 1, got {self.max_num_people}")
        if self.nms_kernel < 1 or self.nms_kernel % 2 == 0:
            raise ValueError(f"nms_kernel must be a positive odd number, got {self.nms_kernel}")
        if self.tag_threshold <= 0:
            raise ValueError(f"tag_threshold must be > 0, got {self.tag_threshold}")
        if sorted(self.joint_order) != list(range(len(self.joint_order))):
            raise ValueError(f"joint_order must be a permutation of 0..J-1, got {self.joint_order}")


@dataclass
class TopK:
    """Peaks per joint: val (J, K) float32, loc (J, K, 2) int64 (x, y), tag (J, K, D) float32."""

    val: np.ndarray
    loc: np.ndarray
    tag: np.ndarray


@dataclass
class ParseResult:
    """grouped: (P, J, 3 + D) float32 (x, y, value, tags) in map pixels; scores: (P,) float32."""

    grouped: np.ndarray
    scores: np.ndarray


# ---------------------------------------------------------------------------
# numpy-order summation helpers


@njit(cache=True, error_model="numpy", inline="always")
def _pairwise_sum(values, n):
    """numpy's add.reduce of values[:n] (1-D float array, n >= 1), for n <= 128.

    Under 8 terms numpy adds in order; up to 128 it keeps 8 partial sums and
    combines them pairwise (longer arrays, split in halves, never occur here:
    n is a number of joints or tag channels). numpy starts from +0; starting
    from the first term only differs in the sign of a zero sum.
    """
    if n < 8:
        res = values[0]
        for i in range(1, n):
            res = res + values[i]
        return res
    r0, r1, r2, r3 = values[0], values[1], values[2], values[3]
    r4, r5, r6, r7 = values[4], values[5], values[6], values[7]
    i = 8
    limit = n - (n % 8)
    while i < limit:
        r0 = r0 + values[i]
        r1 = r1 + values[i + 1]
        r2 = r2 + values[i + 2]
        r3 = r3 + values[i + 3]
        r4 = r4 + values[i + 4]
        r5 = r5 + values[i + 5]
        r6 = r6 + values[i + 6]
        r7 = r7 + values[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res = res + values[i]
        i += 1
    return res


@njit(cache=True, error_model="numpy", inline="always")
def _mean_rows(rows, i, count, column, out):
    """out[i, :] = np.mean(rows[i, :count], axis=0) for float32, in numpy's order; NaN if count is 0.

    rows: (N, M, D); out: (N, D). numpy reduces a (n, 1) array pairwise but a
    (n, D >= 2) one row by row. column: float32 scratch of ``count`` values.
    """
    depth = rows.shape[2]
    denominator = np.float32(count)
    if count == 0:
        for d in range(depth):
            out[i, d] = np.nan
        return
    if depth == 1:
        for r in range(count):
            column[r] = rows[i, r, 0]
        out[i, 0] = _pairwise_sum(column, count) / denominator
        return
    for d in range(depth):
        total = rows[i, 0, d]
        for r in range(1, count):
            total = total + rows[i, r, d]
        out[i, d] = total / denominator


# ---------------------------------------------------------------------------
# peaks: max-pool NMS and torch-ordered top-k


@njit(cache=True, error_model="numpy", inline="always")
def _heap_less(a, b):
    # torch TopKComparator<largest=True>: NaN first, then larger values.
    return (np.isnan(a) and not np.isnan(b)) or a > b


@njit(cache=True, error_model="numpy")
def _push_heap(hv, hi, hole, top, value, index):
    parent = (hole - 1) // 2
    while hole > top and _heap_less(hv[parent], value):
        hv[hole] = hv[parent]
        hi[hole] = hi[parent]
        hole = parent
        parent = (hole - 1) // 2
    hv[hole] = value
    hi[hole] = index


@njit(cache=True, error_model="numpy")
def _adjust_heap(hv, hi, hole, length, value, index):
    top = hole
    second = hole
    while second < (length - 1) // 2:
        second = 2 * (second + 1)
        if _heap_less(hv[second], hv[second - 1]):
            second -= 1
        hv[hole] = hv[second]
        hi[hole] = hi[second]
        hole = second
    if (length & 1) == 0 and second == (length - 2) // 2:
        second = 2 * (second + 1)
        hv[hole] = hv[second - 1]
        hi[hole] = hi[second - 1]
        hole = second - 1
    _push_heap(hv, hi, hole, top, value, index)


@njit(cache=True, error_model="numpy")
def _pop_heap(hv, hi, length):
    # std::pop_heap(first, first + length): the front goes to length - 1.
    if length > 1:
        last = length - 1
        value = hv[last]
        index = hi[last]
        hv[last] = hv[0]
        hi[last] = hi[0]
        _adjust_heap(hv, hi, 0, last, value, index)


@njit(cache=True, error_model="numpy")
def _heap_topk(values, k, out_val, out_ind, may_have_nan):
    """torch.topk(values, k) on CPU: libstdc++ std::partial_sort of (value, index) by value.

    That is its path for len(values) >= 64 * k: heap-select (make_heap on the
    first k, then each larger element replaces the front and sifts down), then
    sort_heap; it fixes the order of equal values. may_have_nan False promises
    NaN-free values (a cheaper scan).
    """
    n = values.shape[0]
    hv = np.empty(k, np.float32)
    hi = np.empty(k, np.int64)
    for j in range(k):
        hv[j] = values[j]
        hi[j] = j
    if k >= 2:  # std::make_heap
        parent = (k - 2) // 2
        while True:
            _adjust_heap(hv, hi, parent, k, hv[parent], hi[parent])
            if parent == 0:
                break
            parent -= 1
    front = hv[0]
    if may_have_nan:
        front_is_nan = np.isnan(front)
        for idx in range(k, n):
            v = values[idx]
            if v > front or (v != v and not front_is_nan):  # _heap_less(v, front)
                _adjust_heap(hv, hi, 0, k, v, idx)
                front = hv[0]
                front_is_nan = np.isnan(front)
    else:
        for idx in range(k, n):
            if values[idx] > front:
                _adjust_heap(hv, hi, 0, k, values[idx], idx)
                front = hv[0]
    length = k
    while length > 1:  # std::sort_heap
        _pop_heap(hv, hi, length)
        length -= 1
    for j in range(k):
        out_val[j] = hv[j]
        out_ind[j] = hi[j]


@njit(cache=True, error_model="numpy")
def _window_max_nms(det_j, pad, out, row_max):
    """out = det_j where det_j equals its (2 pad + 1)^2 window maximum, else 0 * det_j; True if NaN.

    max_pool2d semantics: the window is clipped at the border and a NaN in it
    wins. Maps without NaN take two separable passes; clamping the offsets
    into the map repeats border pixels, which leaves a maximum unchanged.
    """
    height, width = det_j.shape
    nan_count = 0
    for y in range(height):
        for x in range(width):
            nan_count += det_j[y, x] != det_j[y, x]
    if nan_count > 0:
        _window_max_nms_nan(det_j, pad, out)
        return True
    for y in range(height):
        row = det_j[y]
        rm = row_max[y]
        if pad == 2 and width >= 5:
            for x in range(2, width - 2):
                rm[x] = max(max(row[x - 2], row[x - 1]), max(row[x], max(row[x + 1], row[x + 2])))
            for x in (0, 1, width - 2, width - 1):
                rm[x] = max(max(row[max(x - 2, 0)], row[max(x - 1, 0)]),
                            max(row[x], max(row[min(x + 1, width - 1)], row[min(x + 2, width - 1)])))
        else:
            for x in range(width):
                m = row[x]
                for k in range(1, pad + 1):
                    m = max(m, max(row[max(x - k, 0)], row[min(x + k, width - 1)]))
                rm[x] = m
    for y in range(height):
        row = det_j[y]
        base = y * width
        if pad == 2:
            r0 = row_max[max(y - 2, 0)]
            r1 = row_max[max(y - 1, 0)]
            r2 = row_max[y]
            r3 = row_max[min(y + 1, height - 1)]
            r4 = row_max[min(y + 2, height - 1)]
            for x in range(width):
                m = max(max(r0[x], r1[x]), max(r2[x], max(r3[x], r4[x])))
                d = row[x]
                out[base + x] = d if m == d else d * np.float32(0.0)
        else:
            for x in range(width):
                m = row_max[y, x]
                for k in range(1, pad + 1):
                    m = max(m, max(row_max[max(y - k, 0), x], row_max[min(y + k, height - 1), x]))
                d = row[x]
                out[base + x] = d if m == d else d * np.float32(0.0)
    return False


@njit(cache=True, error_model="numpy")
def _window_max_nms_nan(det_j, pad, out):
    height, width = det_j.shape
    for y in range(height):
        for x in range(width):
            m = -np.inf
            for yy in range(max(0, y - pad), min(height, y + pad + 1)):
                for xx in range(max(0, x - pad), min(width, x + pad + 1)):
                    v = det_j[yy, xx]
                    if np.isnan(v) or v > m:
                        m = v
                    if np.isnan(m):
                        break
                if np.isnan(m):
                    break
            d = det_j[y, x]
            out[y * width + x] = d if m == d else d * np.float32(0.0)


@njit(cache=True, error_model="numpy")
def _top_k_kernel(det, tag, k, pad):
    num_joints, height, width = det.shape
    depth = tag.shape[3]
    val_k = np.empty((num_joints, k), np.float32)
    ind_k = np.empty((num_joints, k), np.int64)
    loc_k = np.empty((num_joints, k, 2), np.int64)
    tag_k = np.empty((num_joints, k, depth), np.float32)
    flat = np.empty(height * width, np.float32)
    row_max = np.empty((height, width), np.float32)
    for j in range(num_joints):
        has_nan = _window_max_nms(det[j], pad, flat, row_max)
        _heap_topk(flat, k, val_k[j], ind_k[j], has_nan)
        for m in range(k):
            ind = ind_k[j, m]
            y = ind // width
            x = ind - y * width
            loc_k[j, m, 0] = x
            loc_k[j, m, 1] = y
            for d in range(depth):
                tag_k[j, m, d] = tag[j, y, x, d]
    return val_k, loc_k, tag_k


# ---------------------------------------------------------------------------
# optimal assignment: the solver of the munkres package the goldens were made with

#: ``munkres`` 3.0.0 hands problems of at least this many cells to its C kernel (``_core._NATIVE_MIN``).
MUNKRES_NATIVE_MIN_CELLS = 16

#: Both munkres 3.0.0 solvers give up on float arithmetic when max|cost| * (R + C + 4) reaches this.
_FLOAT_RANGE_LIMIT = 1.7e308


@njit(cache=True, error_model="numpy")
def _lap_python_solver(cost, assignment, work_f, work_i):
    """munkres 3.0.0's pure-Python solver (``_core._solve_raw``, unchanged from 2.0.0), on a finite cost.

    Warm start by row minima and a greedy match of zero-reduced cells in
    column order, then one augmenting path per unmatched row over all
    columns in index order, every comparison strict. Fills ``assignment``;
    False if no path was found (cannot happen for finite costs). work_f /
    work_i: scratch of at least ``LAP_WORK_SIZE(R, C)`` float64 / int64.
    """
    n, m = cost.shape
    u = work_f[:n]
    v = work_f[n:n + m + 1]
    minv = work_f[n + m + 1:n + 2 * m + 2]
    p = work_i[:m + 1]
    way = work_i[m + 1:2 * m + 2]
    matched = work_i[2 * m + 2:2 * m + 2 + n]
    used = work_i[2 * m + 2 + n:3 * m + 3 + n]
    u[:] = 0.0
    v[:] = 0.0
    p[:] = -1
    way[:] = 0
    matched[:] = 0
    for i in range(n):
        low = cost[i, 0]
        for j in range(1, m):
            if cost[i, j] < low:
                low = cost[i, j]
        u[i] = low
        for j in range(m):
            if p[j] == -1 and cost[i, j] == low:
                p[j] = i
                matched[i] = 1
                break
    for i in range(n):
        if matched[i]:
            continue
        p[m] = i
        j0 = m
        minv[:] = np.inf
        used[:] = 0
        while True:
            used[j0] = 1
            i0 = p[j0]
            ui = u[i0]
            for j in range(m):
                if not used[j]:
                    cur = cost[i0, j] - ui - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
            delta = np.inf
            j1 = -1
            for j in range(m):
                if not used[j] and minv[j] < delta:
                    delta = minv[j]
                    j1 = j
            if j1 < 0:
                return False
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                elif minv[j] != np.inf:
                    minv[j] = minv[j] - delta
            j0 = j1
            if p[j0] == -1:
                break
        while j0 != m:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    for j in range(m):
        if p[j] >= 0:
            assignment[p[j]] = j
    return True


@njit(cache=True, error_model="numpy")
def _lap_native_solver(cost, assignment, work_f, work_i):
    """munkres 3.0.0's C kernel (``_native/lap.c``, float64 kind), on a finite cost.

    The same warm start, then per unmatched row a shortest-path search in
    the LAPJV style: the candidate columns are kept in a list that starts in
    reverse index order and loses a column by swapping in its last entry;
    the path cost carries the running minimum (``minval + c - u - v``, summed
    left to right as C does); among equal reduced costs the first column in
    list order wins, except that a free column replaces an equal one (so the
    last free column of equal cost is taken). Potentials are updated once per
    augmentation. Fills ``assignment``; False if no path was found. work_f /
    work_i: scratch as for :func:`_lap_python_solver`. Not
    :func:`streampose.assignment.linear_assignment` (scipy's variant, for the
    tracker): that one has no warm start and orders ties otherwise, and the
    official people depend on the order.
    """
    n, m = cost.shape
    u = work_f[:n]
    v = work_f[n:n + m]
    shortest = work_f[n + m:n + 2 * m]
    row4col = work_i[:m]
    col4row = work_i[m:m + n]
    path = work_i[m + n:2 * m + n]
    remaining = work_i[2 * m + n:3 * m + n]
    scanned = work_i[3 * m + n:4 * m + n]
    u[:] = 0.0
    v[:] = 0.0
    row4col[:] = -1
    col4row[:] = -1
    path[:] = 0
    # The C kernel skips +inf (forbidden) cells; every cost is finite here, so those tests are left out:
    # each column's path length is then finite from the first row that scans it on.
    for i in range(n):
        low = cost[i, 0]
        for j in range(1, m):
            if cost[i, j] < low:
                low = cost[i, j]
        u[i] = low
        for j in range(m):
            if row4col[j] < 0 and cost[i, j] == low:
                row4col[j] = i
                col4row[i] = j
                break
    for cur in range(n):
        if col4row[cur] >= 0:
            continue
        num_remaining = m
        num_scanned = 0
        for k in range(m):
            remaining[k] = m - 1 - k
            shortest[k] = np.inf
        minval = 0.0
        i = cur
        sink = -1
        while sink < 0:
            lowest = np.inf
            index = -1
            ui = u[i]
            for k in range(num_remaining):
                j = remaining[k]
                r = minval + cost[i, j] - ui - v[j]
                if r < shortest[j]:
                    path[j] = i
                    shortest[j] = r
                sj = shortest[j]
                if index < 0 or sj < lowest or (sj == lowest and row4col[j] < 0):
                    lowest = sj
                    index = k
            if index < 0:
                return False
            minval = lowest
            j = remaining[index]
            if row4col[j] < 0:
                sink = j
            else:
                i = row4col[j]
                scanned[num_scanned] = j
                num_scanned += 1
                num_remaining -= 1
                remaining[index] = remaining[num_remaining]
        u[cur] += minval
        for a in range(num_scanned):
            j = scanned[a]
            u[row4col[j]] += minval - shortest[j]
            v[j] -= minval - shortest[j]
        j = sink
        while True:
            ii = path[j]
            row4col[j] = ii
            previous = col4row[ii]
            col4row[ii] = j
            j = previous
            if ii == cur:
                break
    for i in range(n):
        assignment[i] = col4row[i]
    return True


@njit(cache=True, error_model="numpy", inline="always")
def _lap_work_size(n, m):
    # float64 / int64 scratch both solvers need for an (n, m) problem.
    return n + 4 * m + 4


@njit(cache=True, error_model="numpy")
def lap_assign(cost):
    """Column assigned to each row of a (R, C) float64 cost matrix, R <= C; all -1 on failure.

    Exactly the assignment ``munkres.Munkres().compute`` 3.0.0 returns, equal
    costs included: matrices of at least ``MUNKRES_NATIVE_MIN_CELLS`` cells go
    to its C kernel (:func:`_lap_native_solver`), smaller ones to its Python
    solver (:func:`_lap_python_solver`); the two break ties differently.
    Fails (all -1) on a non-finite cost, and where munkres would switch to
    exact fractions (max|cost| * (R + C + 4) >= 1.7e308, far beyond any tag
    cost).
    """
    n, m = cost.shape
    assignment = np.empty(n, np.int64)
    size = _lap_work_size(n, m)
    _lap_assign_into(cost, assignment, np.empty(size), np.empty(size, np.int64))
    return assignment


@njit(cache=True, error_model="numpy")
def _lap_assign_into(cost, assignment, work_f, work_i):
    """:func:`lap_assign` into ``assignment`` (R,) with caller-owned scratch (``_lap_work_size`` each)."""
    n, m = cost.shape
    assignment[:] = _ASSIGN_FAILED
    if n > m:
        return
    biggest = 0.0
    for i in range(n):
        for j in range(m):
            if not np.isfinite(cost[i, j]):
                return
            biggest = max(biggest, abs(cost[i, j]))
    if n == 0 or biggest * (n + m + 4.0) >= _FLOAT_RANGE_LIMIT:
        return
    if n * m >= MUNKRES_NATIVE_MIN_CELLS:
        solved = _lap_native_solver(cost, assignment, work_f, work_i)
    else:
        solved = _lap_python_solver(cost, assignment, work_f, work_i)
    if not solved:
        assignment[:] = _ASSIGN_FAILED


# ---------------------------------------------------------------------------
# match by tag


@njit(cache=True, error_model="numpy", inline="always")
def _person_for_key(keys, num_people, key):
    """(person, num_people): the person whose key (first tag value) is ``key``, else a new one.

    As the official dict keyed by tag: an unmatched joint whose tag equals an
    existing person's key joins that person instead of starting another.
    """
    for p in range(num_people):
        if keys[p] == key:
            return p, num_people
    keys[num_people] = key
    return num_people, num_people + 1


@njit(cache=True, error_model="numpy")
def _match_by_tag_kernel(tag_k, loc_k, val_k, joint_order, detection_threshold, tag_threshold,
                         use_detection_val, ignore_too_much, max_num_people):
    num_joints, k, depth = tag_k.shape
    capacity = 0  # every person starts from a candidate above the threshold
    for j in range(num_joints):
        for m in range(k):
            capacity += np.float64(val_k[j, m]) > detection_threshold
    # float32 holds the official float64 rows exactly (integer x, y; float32 values and tags).
    people = np.zeros((capacity, num_joints, 3 + depth), np.float32)
    keys = np.zeros(capacity, np.float32)
    tag_lists = np.zeros((capacity, num_joints, depth), np.float32)
    tag_counts = np.zeros(capacity, np.int64)
    # A person's mean tag changes only when its tag list does: cached, recomputed when stale.
    mean_tags = np.empty((capacity, depth), np.float32)
    mean_stale = np.ones(capacity, np.bool_)
    tag_sums = np.zeros((capacity, depth), np.float32)
    column = np.empty(num_joints, np.float32)
    num_people = 0
    rows = np.empty(k, np.int64)
    max_grouped = min(capacity, max_num_people)
    distances = np.empty((k, max(max_grouped, 1)))
    cost_buffer = np.empty(k * max(k, max_grouped, 1))
    lap_size = _lap_work_size(k, max(k, max_grouped, 1))
    lap_work_f = np.empty(lap_size)
    lap_work_i = np.empty(lap_size, np.int64)
    assignment = np.empty(k, np.int64)
    squares = np.empty(depth)
    status = 0
    for i in range(num_joints):
        idx = joint_order[i]
        num_added = 0
        for m in range(k):
            if np.float64(val_k[idx, m]) > detection_threshold:
                rows[num_added] = m
                num_added += 1
        if num_added == 0:
            continue
        if i == 0 or num_people == 0:
            for a in range(num_added):
                m = rows[a]
                p, num_people = _person_for_key(keys, num_people, tag_k[idx, m, 0])
                _set_joint(people, tag_lists, tag_counts, tag_sums, p, idx, loc_k, val_k, tag_k, m, False)
                mean_stale[p] = True
            continue
        num_grouped = min(num_people, max_num_people)
        if ignore_too_much and num_grouped == max_num_people:
            continue
        for g in range(num_grouped):
            if mean_stale[g]:
                count = tag_counts[g]
                if depth == 1 and count >= 8:  # numpy sums 8 or more values pairwise
                    _mean_rows(tag_lists, g, count, column, mean_tags)
                else:
                    for d in range(depth):
                        mean_tags[g, d] = tag_sums[g, d] / np.float32(count)
                mean_stale[g] = False
        num_cols = max(num_added, num_grouped)
        cost = cost_buffer[:num_added * num_cols].reshape((num_added, num_cols))
        cost[:, num_grouped:] = 1e10
        for a in range(num_added):
            m = rows[a]
            value = np.float64(val_k[idx, m])
            for g in range(num_grouped):
                if depth == 1:
                    # sqrt(x * x) == |x| exactly in binary floating point (no under/overflow here).
                    distance = abs(np.float64(tag_k[idx, m, 0]) - np.float64(mean_tags[g, 0]))
                else:
                    for d in range(depth):
                        diff = np.float64(tag_k[idx, m, d]) - np.float64(mean_tags[g, d])
                        squares[d] = diff * diff
                    distance = np.sqrt(_pairwise_sum(squares, depth))
                distances[a, g] = distance
                if use_detection_val:
                    cost[a, g] = np.rint(distance) * 100 - value
                else:
                    cost[a, g] = distance
        _lap_assign_into(cost, assignment[:num_added], lap_work_f, lap_work_i)
        if assignment[0] == _ASSIGN_FAILED:
            status = 1
            break
        for a in range(num_added):
            m = rows[a]
            col = assignment[a]
            if col < num_grouped and distances[a, col] < tag_threshold:
                p = col
                _set_joint(people, tag_lists, tag_counts, tag_sums, p, idx, loc_k, val_k, tag_k, m, True)
            else:
                p, num_people = _person_for_key(keys, num_people, tag_k[idx, m, 0])
                _set_joint(people, tag_lists, tag_counts, tag_sums, p, idx, loc_k, val_k, tag_k, m, False)
            mean_stale[p] = True
    return people[:num_people].copy(), status


@njit(cache=True, error_model="numpy", inline="always")
def _set_joint(people, tag_lists, tag_counts, tag_sums, p, joint, loc_k, val_k, tag_k, m, append):
    """Put candidate ``m`` of ``joint`` into person ``p``; append its tag or restart the tag list.

    tag_sums keeps the in-order float32 sum of the list, which is numpy's sum
    of it for any length when D >= 2 and up to 7 tags when D == 1.
    """
    people[p, joint, 0] = loc_k[joint, m, 0]
    people[p, joint, 1] = loc_k[joint, m, 1]
    people[p, joint, 2] = val_k[joint, m]
    slot = tag_counts[p] if append else 0
    for d in range(tag_k.shape[2]):
        t = tag_k[joint, m, d]
        people[p, joint, 3 + d] = t
        tag_lists[p, slot, d] = t
        tag_sums[p, d] = t if slot == 0 else tag_sums[p, d] + t
    tag_counts[p] = slot + 1


# ---------------------------------------------------------------------------
# adjust, scores, refine


@njit(cache=True, error_model="numpy")
def _adjust_kernel(grouped, det):
    num_people, num_joints = grouped.shape[0], grouped.shape[1]
    height, width = det.shape[1], det.shape[2]
    quarter = np.float32(0.25)
    half = np.float32(0.5)
    for p in range(num_people):
        for j in range(num_joints):
            if grouped[p, j, 2] > 0:
                x = grouped[p, j, 0]
                y = grouped[p, j, 1]
                col = int(x)
                row = int(y)
                if det[j, row, min(col + 1, width - 1)] > det[j, row, max(col - 1, 0)]:
                    x = x + quarter
                else:
                    x = x - quarter
                if det[j, min(row + 1, height - 1), col] > det[j, max(0, row - 1), col]:
                    y = y + quarter
                else:
                    y = y - quarter
                grouped[p, j, 0] = x + half
                grouped[p, j, 1] = y + half


@njit(cache=True, error_model="numpy")
def _scores_kernel(grouped):
    num_people, num_joints = grouped.shape[0], grouped.shape[1]
    scores = np.empty(num_people, np.float32)
    column = np.empty(num_joints, np.float32)
    for p in range(num_people):
        for j in range(num_joints):
            column[j] = grouped[p, j, 2]
        scores[p] = _pairwise_sum(column, num_joints) / np.float32(num_joints)
    return scores


@njit(cache=True, error_model="numpy", inline="always")
def _refine_score(det_j, tag_j, prev, y, x):
    # float32: det - round(sqrt(sum((tag - prev)^2))), numpy's operation order.
    depth = prev.shape[0]
    if depth < 8:
        total = np.float32(0.0)
        for d in range(depth):
            diff = tag_j[y, x, d] - prev[d]
            total = total + diff * diff
    else:
        squares = np.empty(depth, np.float32)
        for d in range(depth):
            diff = tag_j[y, x, d] - prev[d]
            squares[d] = diff * diff
        total = _pairwise_sum(squares, depth)
    return det_j[y, x] - np.rint(np.sqrt(total))


@njit(cache=True, error_model="numpy")
def _refine_argmax_full(det_j, tag_j, prev):
    """np.argmax(det - round(|tag - prev|)) over the whole map: first maximum, NaN wins."""
    height, width = det_j.shape
    best = np.float32(0.0)
    best_index = -1
    for y in range(height):
        for x in range(width):
            s = _refine_score(det_j, tag_j, prev, y, x)
            if np.isnan(s):
                return y * width + x
            if best_index < 0 or s > best:
                best = s
                best_index = y * width + x
    return best_index


@njit(cache=True, error_model="numpy")
def _count_not_finite(values):
    # On the bit pattern (all-ones exponent), which vectorizes; values is 1-D float32.
    bits = values.view(np.uint32)
    count = 0
    for i in range(bits.shape[0]):
        count += (bits[i] & np.uint32(0x7F800000)) == np.uint32(0x7F800000)
    return count


@njit(cache=True, error_model="numpy")
def _joint_tiles(det_j, tag_j, tile, tile_max, tag_lo, tag_hi):
    """Per-tile heatmap maximum and tag bounding box; False if a heatmap or tag value is not finite.

    One pass over each band of ``tile`` rows with element-wise extrema (which
    vectorize), then a short reduction per tile. tag_lo / tag_hi: (tiles, D).
    """
    height, width = det_j.shape
    depth = tag_j.shape[2]
    if _count_not_finite(det_j.ravel()) + _count_not_finite(tag_j.ravel()) > 0:
        return False
    n_ty, n_tx = tile_max.shape
    band = np.empty(width, np.float32)
    band_lo = np.empty(width * depth, np.float32)
    band_hi = np.empty(width * depth, np.float32)
    for ty in range(n_ty):
        y0 = ty * tile
        band[:] = det_j[y0]
        band_lo[:] = tag_j[y0].ravel()
        band_hi[:] = band_lo
        for y in range(y0 + 1, min(height, y0 + tile)):
            row = det_j[y]
            for x in range(width):
                band[x] = max(band[x], row[x])
            tags = tag_j[y].ravel()
            for i in range(width * depth):
                band_lo[i] = min(band_lo[i], tags[i])
                band_hi[i] = max(band_hi[i], tags[i])
        for tx in range(n_tx):
            t = ty * n_tx + tx
            x0 = tx * tile
            x1 = min(width, x0 + tile)
            m = band[x0]
            for x in range(x0 + 1, x1):
                m = max(m, band[x])
            tile_max[ty, tx] = m
            for d in range(depth):
                lo = band_lo[x0 * depth + d]
                hi = band_hi[x0 * depth + d]
                for x in range(x0 + 1, x1):
                    lo = min(lo, band_lo[x * depth + d])
                    hi = max(hi, band_hi[x * depth + d])
                tag_lo[t, d] = lo
                tag_hi[t, d] = hi
    return True


@njit(cache=True, error_model="numpy")
def _scan_tile(det_j, tag_j, prev, tile, ty, tx, best, best_index):
    height, width = det_j.shape
    for y in range(ty * tile, min(height, (ty + 1) * tile)):
        for x in range(tx * tile, min(width, (tx + 1) * tile)):
            s = _refine_score(det_j, tag_j, prev, y, x)
            index = y * width + x
            if best_index < 0 or s > best or (s == best and index < best_index):
                best = s
                best_index = index
    return best, best_index


@njit(cache=True, error_model="numpy")
def _refine_argmax_tiled(det_j, tag_j, prev, tile, tile_max, tag_lo, tag_hi):
    """Same answer as _refine_argmax_full for finite maps, tags and prev.

    The tile holding the heatmap maximum is scanned first; any other tile is
    scanned only if its upper bound can still beat the best score so far, or
    tie it at a lower row-major index (np.argmax keeps the first maximum). The
    bound is the tile's heatmap maximum (round(distance) >= 0), tightened
    when that is not enough by the tags' bounding box to ``max - round(lower
    bound of the distance)`` (both roundings are monotone).
    """
    width = det_j.shape[1]
    n_ty, n_tx = tile_max.shape
    depth = prev.shape[0]
    top_ty = 0
    top_tx = 0
    for ty in range(n_ty):
        for tx in range(n_tx):
            if tile_max[ty, tx] > tile_max[top_ty, top_tx]:
                top_ty = ty
                top_tx = tx
    best, best_index = _scan_tile(det_j, tag_j, prev, tile, top_ty, top_tx, np.float32(-np.inf), -1)
    for ty in range(n_ty):
        for tx in range(n_tx):
            top = tile_max[ty, tx]
            first = ty * tile * width + tx * tile
            if top < best or (top == best and first > best_index) or (ty == top_ty and tx == top_tx):
                continue
            t = ty * n_tx + tx
            gap2 = 0.0
            for d in range(depth):
                p = np.float64(prev[d])
                gap = max(0.0, max(np.float64(tag_lo[t, d]) - p, p - np.float64(tag_hi[t, d])))
                gap2 += gap * gap
            # The slack keeps this under the float32 distance of every pixel of the tile.
            lower = max(0.0, np.sqrt(gap2) * (1.0 - 1e-6) - 1e-6)
            bound = top - np.float32(np.rint(lower))
            if bound < best or (bound == best and first > best_index):
                continue
            best, best_index = _scan_tile(det_j, tag_j, prev, tile, ty, tx, best, best_index)
    return best_index


@njit(cache=True, error_model="numpy")
def _refine_kernel(grouped, det, tag, tile, use_tiles):
    num_people, num_joints = grouped.shape[0], grouped.shape[1]
    height, width = det.shape[1], det.shape[2]
    depth = tag.shape[3]
    n_ty = (height + tile - 1) // tile
    n_tx = (width + tile - 1) // tile
    n_tiles = n_ty * n_tx
    tiles_state = np.zeros(num_joints, np.int8)  # 0 not computed, 1 ready, 2 not finite
    tile_max = np.empty((num_joints, n_ty, n_tx), np.float32)
    tag_lo = np.empty((num_joints, n_tiles, depth), np.float32)
    tag_hi = np.empty((num_joints, n_tiles, depth), np.float32)
    tags = np.empty((1, num_joints, depth), np.float32)
    column = np.empty(num_joints, np.float32)
    mean = np.empty((1, depth), np.float32)
    prev = mean[0]
    quarter = 0.25
    for p in range(num_people):
        count = 0
        for j in range(num_joints):
            if grouped[p, j, 2] > 0:
                x = np.int32(grouped[p, j, 0])
                y = np.int32(grouped[p, j, 1])
                for d in range(depth):
                    tags[0, count, d] = tag[j, y, x, d]
                count += 1
        _mean_rows(tags, 0, count, column, mean)
        prev_finite = True
        for d in range(depth):
            if not np.isfinite(prev[d]):
                prev_finite = False
        for j in range(num_joints):
            if grouped[p, j, 2] != 0:
                continue
            if use_tiles and prev_finite and tiles_state[j] == 0:
                tiles_state[j] = 1 if _joint_tiles(det[j], tag[j], tile, tile_max[j], tag_lo[j], tag_hi[j]) else 2
            if use_tiles and prev_finite and tiles_state[j] == 1:
                index = _refine_argmax_tiled(det[j], tag[j], prev, tile, tile_max[j], tag_lo[j], tag_hi[j])
            else:
                index = _refine_argmax_full(det[j], tag[j], prev)
            yy = index // width
            xx = index - yy * width
            value = det[j, yy, xx]
            x = xx + 0.5
            y = yy + 0.5
            if det[j, yy, min(xx + 1, width - 1)] > det[j, yy, max(xx - 1, 0)]:
                x += quarter
            else:
                x -= quarter
            if det[j, min(yy + 1, height - 1), xx] > det[j, max(0, yy - 1), xx]:
                y += quarter
            else:
                y -= quarter
            if value > 0:
                grouped[p, j, 0] = x
                grouped[p, j, 1] = y
                grouped[p, j, 2] = value


# ---------------------------------------------------------------------------
# public functions


def _check_maps(det: np.ndarray, tag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    det = np.ascontiguousarray(det, dtype=np.float32)
    if det.ndim != 3:
        raise ValueError(f"det must have shape (J, H, W), got {det.shape}")
    tag = np.asarray(tag, dtype=np.float32)
    if tag.ndim == 3:
        tag = tag[..., None]
    tag = np.ascontiguousarray(tag)
    if tag.ndim != 4 or tag.shape[:3] != det.shape:
        raise ValueError(f"tag must have shape {det.shape} + (D,), got {tag.shape}")
    return det, tag


def top_k(det: np.ndarray, tag: np.ndarray, params: ParserParams = ParserParams()) -> TopK:
    """Peaks of each joint map (official ``HeatmapParser.top_k``), with torch's CPU order.

    det: (J, H, W) float32; tag: (J, H, W, D) or (J, H, W) float32. The order of
    equal values is torch's when H * W >= 64 * max_num_people (every real map).
    """
    det, tag = _check_maps(det, tag)
    k = params.max_num_people
    if det.shape[1] * det.shape[2] < k:
        raise ValueError(f"maps of {det.shape[1]}x{det.shape[2]} have fewer pixels than max_num_people={k}")
    val, loc, tags = _top_k_kernel(det, tag, k, params.nms_kernel // 2)
    return TopK(val, loc, tags)


def match_by_tag(peaks: TopK, params: ParserParams = ParserParams()) -> np.ndarray:
    """Group peaks into people (official ``match_by_tag``); (P, J, 3 + D) float32."""
    num_joints = peaks.val.shape[0]
    if len(params.joint_order) != num_joints:
        raise ValueError(f"joint_order has {len(params.joint_order)} joints, the maps {num_joints}")
    grouped, status = _match_by_tag_kernel(
        np.ascontiguousarray(peaks.tag, dtype=np.float32), np.ascontiguousarray(peaks.loc, dtype=np.int64),
        np.ascontiguousarray(peaks.val, dtype=np.float32), np.asarray(params.joint_order, dtype=np.int64),
        float(params.detection_threshold), float(params.tag_threshold), bool(params.use_detection_val),
        bool(params.ignore_too_much), int(params.max_num_people))
    if status != 0:
        raise ValueError("tag assignment failed: the tags or heatmap values are not finite")
    return grouped


def adjust(grouped: np.ndarray, det: np.ndarray) -> np.ndarray:
    """Quarter-pixel shift toward the higher neighbour, then +0.5 (official ``adjust``); a new array."""
    out = np.array(grouped, dtype=np.float32, order="C")
    _adjust_kernel(out, np.ascontiguousarray(det, dtype=np.float32))
    return out


def person_scores(grouped: np.ndarray) -> np.ndarray:
    """(P,) float32 mean joint value, as the official ``scores`` (numpy float32 mean)."""
    return _scores_kernel(np.ascontiguousarray(grouped, dtype=np.float32))


def refine(grouped: np.ndarray, det: np.ndarray, tag: np.ndarray, *, tiled: bool = True) -> np.ndarray:
    """Fill missing joints from the maps (official ``refine``); a new array.

    tiled: find each argmax by the exact tile branch-and-bound (False: scan the
    whole map, the plain form; both give the same result).
    """
    det, tag = _check_maps(det, tag)
    out = np.array(grouped, dtype=np.float32, order="C")
    _refine_kernel(out, det, tag, REFINE_TILE, tiled)
    return out


def parse(det: np.ndarray, tag: np.ndarray, params: ParserParams = ParserParams()) -> ParseResult:
    """Maps of one image → people (official ``HeatmapParser.parse`` for one image).

    det: (J, H, W) float32 heatmaps; tag: (J, H, W, D) float32 tags. Scores are
    taken after adjust and before refine, as the official code does.
    """
    det, tag = _check_maps(det, tag)
    grouped = match_by_tag(top_k(det, tag, params), params)
    if params.adjust:
        grouped = adjust(grouped, det)
    scores = person_scores(grouped)
    if params.refine:
        grouped = refine(grouped, det, tag)
    return ParseResult(grouped, scores)


def final_preds(grouped: np.ndarray, center: np.ndarray, scale: np.ndarray,
                map_size_wh: tuple[int, int]) -> np.ndarray:
    """Official ``get_final_preds``: columns 0:2 mapped from map to frame pixels, float32 kept."""
    from .resize import affine_transform_matrix

    out = np.array(grouped, dtype=np.float32, order="C")
    if out.shape[0] == 0:
        return out
    inverse = affine_transform_matrix(center, scale, map_size_wh, inverse=True)
    xy = out[..., 0:2].astype(np.float64)
    out[..., 0:2] = xy @ inverse[:, :2].T + inverse[:, 2]
    return out


def redundant_pose_mask(keypoints: np.ndarray, max_mean_abs_px: float = 3.0) -> np.ndarray:
    """Keep-mask of the redundant-pose filter of the simple-HigherHRNet project.

    keypoints: (N, K, 2) frame pixels in parser order. A pose is dropped when
    the mean over joints and both coordinates of its absolute difference to an
    already kept pose is under ``max_mean_abs_px``. Returns (N,) bool.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    keep = np.zeros(keypoints.shape[0], dtype=bool)
    kept: list[int] = []
    for i in range(keypoints.shape[0]):
        if kept:
            mean_abs = np.abs(keypoints[kept] - keypoints[i]).mean(axis=(1, 2))
            if np.any(mean_abs < max_mean_abs_px):
                continue
        kept.append(i)
        keep[i] = True
    return keep


def boxes_from_keypoints(keypoints: np.ndarray, keypoint_scores: np.ndarray) -> np.ndarray:
    """(N, 4) float32 xyxy spanning each person's found joints (score > 0); zeros if none."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    found = np.asarray(keypoint_scores) > 0
    boxes = np.zeros((keypoints.shape[0], 4), dtype=np.float32)
    for i in range(keypoints.shape[0]):
        if found[i].any():
            pts = keypoints[i][found[i]]
            boxes[i] = (*pts.min(axis=0), *pts.max(axis=0))
    return boxes


__all__ = [
    "COCO_JOINT_ORDER", "ParserParams", "TopK", "ParseResult", "top_k", "match_by_tag",
    "lap_assign", "adjust", "person_scores", "refine", "parse", "final_preds", "redundant_pose_mask",
    "boxes_from_keypoints",
]
