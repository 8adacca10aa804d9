"""Plain-Python twins of the grouping kernels, written the way the official parser is.

Each function here computes what one kernel of :mod:`.grouping` computes, in
straightforward Python/numpy with the official data structures (a dict of
people keyed by their first tag value, a list-based assignment solver or the
``munkres`` package itself, torch's ``max_pool2d`` / ``topk`` for the peaks,
whole-map numpy expressions in refine). Tests compare the kernels with these twins on random
and rendered maps; ``scripts/bench_grouping.py`` times them side by side.
They are slow by design and not used at run time. ``munkres`` and ``torch``
are imported inside the functions that need them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .grouping import ParserParams, ParseResult, TopK


def top_k_reference(det: np.ndarray, tag: np.ndarray, params: ParserParams = ParserParams()) -> TopK:
    """Peaks through torch: max_pool2d equality NMS, then ``topk`` over each flattened map."""
    import torch

    det_t = torch.from_numpy(np.ascontiguousarray(det, dtype=np.float32))[None]
    tag = np.asarray(tag, dtype=np.float32)
    if tag.ndim == 3:
        tag = tag[..., None]
    pad = params.nms_kernel // 2
    pooled = torch.nn.functional.max_pool2d(det_t, params.nms_kernel, 1, pad)
    det_nms = det_t * torch.eq(pooled, det_t).float()
    num_joints, height, width = det.shape
    val_k, ind = det_nms.view(1, num_joints, -1).topk(params.max_num_people, dim=2)
    ind = ind[0].numpy()
    x = ind % width
    y = ind // width
    tag_k = np.stack([tag[j, y[j], x[j], :] for j in range(num_joints)])
    return TopK(val_k[0].numpy(), np.stack([x, y], axis=2).astype(np.int64), tag_k.astype(np.float32))


def lap_assign_reference(cost: np.ndarray) -> np.ndarray:
    """Column per row as ``munkres`` 3.0.0's ``Munkres().compute``: its C kernel from 16 cells on, else its Python solver."""
    from .grouping import MUNKRES_NATIVE_MIN_CELLS

    cost = np.asarray(cost, dtype=np.float64)
    if cost.shape[0] * cost.shape[1] >= MUNKRES_NATIVE_MIN_CELLS:
        return native_kernel_assign_reference(cost)
    return python_solver_assign_reference(cost)


def python_solver_assign_reference(cost: np.ndarray) -> np.ndarray:
    """Column per row, the shortest-augmenting-path Hungarian method of munkres' Python solver, in lists.

    Row minima as starting potentials, greedy zero-reduced matches in column
    order, then per unmatched row a Dijkstra-like search over columns with
    strict comparisons; rows <= columns.
    """
    rows = np.asarray(cost, dtype=np.float64).tolist()
    n, m = len(rows), len(rows[0])
    u = [0.0] * n
    v = [0.0] * (m + 1)
    owner = [-1] * (m + 1)
    way = [0] * (m + 1)
    matched = [False] * n
    for i, row in enumerate(rows):
        u[i] = min(row)
        for j, c in enumerate(row):
            if owner[j] == -1 and c == u[i]:
                owner[j] = i
                matched[i] = True
                break
    for i in range(n):
        if matched[i]:
            continue
        owner[m] = i
        j0 = m
        best = [float("inf")] * (m + 1)
        visited = [False] * (m + 1)
        while True:
            visited[j0] = True
            i0 = owner[j0]
            for j in range(m):
                if not visited[j]:
                    reduced = rows[i0][j] - u[i0] - v[j]
                    if reduced < best[j]:
                        best[j] = reduced
                        way[j] = j0
            delta, j1 = float("inf"), -1
            for j in range(m):
                if not visited[j] and best[j] < delta:
                    delta, j1 = best[j], j
            for j in range(m + 1):
                if visited[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                elif best[j] != float("inf"):
                    best[j] -= delta
            j0 = j1
            if owner[j0] == -1:
                break
        while j0 != m:
            owner[j0] = owner[way[j0]]
            j0 = way[j0]
    assignment = np.full(n, -1, dtype=np.int64)
    for j in range(m):
        if owner[j] >= 0:
            assignment[owner[j]] = j
    return assignment


def native_kernel_assign_reference(cost: np.ndarray) -> np.ndarray:
    """Column per row, munkres 3.0.0's C kernel (``lap.c``) written out in lists; finite costs, rows <= columns.

    The same warm start; then, per unmatched row, columns still to reach are
    held in a list (reverse index order at first, a reached column replaced
    by the list's last entry), path lengths carry the running minimum, a
    free column wins an equal-length tie, potentials move once per path.
    """
    rows = np.asarray(cost, dtype=np.float64).tolist()
    n, m = len(rows), len(rows[0])
    u, v = [0.0] * n, [0.0] * m
    row_of_col, col_of_row = [-1] * m, [-1] * n
    via = [0] * m
    for i, row in enumerate(rows):
        u[i] = min(row)
        for j, c in enumerate(row):
            if row_of_col[j] < 0 and c == u[i]:
                row_of_col[j], col_of_row[i] = i, j
                break
    for start in range(n):
        if col_of_row[start] >= 0:
            continue
        to_reach = list(range(m - 1, -1, -1))
        length = [float("inf")] * m
        reached: list[int] = []
        path_length, i, sink = 0.0, start, -1
        while sink < 0:
            lowest, index = float("inf"), -1
            for k, j in enumerate(to_reach):
                r = path_length + rows[i][j] - u[i] - v[j]
                if r < length[j]:
                    via[j], length[j] = i, r
                if index < 0 or length[j] < lowest or (length[j] == lowest and row_of_col[j] < 0):
                    lowest, index = length[j], k
            path_length = lowest
            j = to_reach[index]
            if row_of_col[j] < 0:
                sink = j
            else:
                i = row_of_col[j]
                reached.append(j)
                to_reach[index] = to_reach[-1]
                to_reach.pop()
        u[start] += path_length
        for j in reached:
            u[row_of_col[j]] += path_length - length[j]
            v[j] -= path_length - length[j]
        j = sink
        while True:
            i = via[j]
            row_of_col[j] = i
            col_of_row[i], j = j, col_of_row[i]
            if i == start:
                break
    return np.array(col_of_row, dtype=np.int64)


def munkres_package_assign(cost: np.ndarray) -> np.ndarray:
    """Column per row from the installed ``munkres`` package (``Munkres().compute``), as the official call.

    Equal-cost alternatives are resolved as :func:`lap_assign_reference` does
    only with munkres 3.0.0 and its C kernel loaded (1.x uses another
    algorithm; 2.0.0 has only the Python solver; ``PALDITA_NO_NATIVE=1``
    switches 3.0.0's kernel off).
    """
    from munkres import Munkres

    assignment = np.full(cost.shape[0], -1, dtype=np.int64)
    for row, col in Munkres().compute(np.array(cost, dtype=np.float64)):
        assignment[row] = col
    return assignment


def match_by_tag_reference(peaks: TopK, params: ParserParams = ParserParams(),
                           assign: Callable[[np.ndarray], np.ndarray] = lap_assign_reference) -> np.ndarray:
    """People as the official ``match_by_tag``: a dict of people, one assignment per joint.

    assign: the assignment solver (default the twin of the kernel's; pass
    :func:`munkres_package_assign` to use the ``munkres`` package itself).
    """
    tag_k, loc_k, val_k = peaks.tag, peaks.loc, peaks.val
    num_joints, depth = tag_k.shape[0], tag_k.shape[2]
    empty_person = np.zeros((num_joints, 3 + depth))
    people: dict = {}
    person_tags: dict = {}
    for i, joint in enumerate(params.joint_order):
        candidates = np.concatenate((loc_k[joint], val_k[joint, :, None], tag_k[joint]), 1)
        keep = candidates[:, 2] > params.detection_threshold
        tags = tag_k[joint][keep]
        candidates = candidates[keep]
        if candidates.shape[0] == 0:
            continue
        if i == 0 or not people:
            for tag, candidate in zip(tags, candidates):
                people.setdefault(tag[0], np.copy(empty_person))[joint] = candidate
                person_tags[tag[0]] = [tag]
            continue
        keys = list(people)[:params.max_num_people]
        mean_tags = [np.mean(person_tags[key], axis=0) for key in keys]
        if params.ignore_too_much and len(keys) == params.max_num_people:
            continue
        distances = np.linalg.norm(candidates[:, None, 3:] - np.array(mean_tags)[None, :, :], ord=2, axis=2)
        cost = np.round(distances) * 100 - candidates[:, 2:3] if params.use_detection_val else np.copy(distances)
        num_added, num_grouped = distances.shape
        if num_added > num_grouped:
            cost = np.concatenate((cost, np.zeros((num_added, num_added - num_grouped)) + 1e10), axis=1)
        assignment = assign(cost)
        for row, col in enumerate(assignment):
            if col < num_grouped and distances[row][col] < params.tag_threshold:
                key = keys[col]
                people[key][joint] = candidates[row]
                person_tags[key].append(tags[row])
            else:
                key = tags[row][0]
                people.setdefault(key, np.copy(empty_person))[joint] = candidates[row]
                person_tags[key] = [tags[row]]
    if not people:
        return np.zeros((0, num_joints, 3 + depth), dtype=np.float32)
    return np.array([people[key] for key in people]).astype(np.float32)


def adjust_reference(grouped: np.ndarray, det: np.ndarray) -> np.ndarray:
    """Official ``adjust`` on one image's people."""
    out = np.array(grouped, dtype=np.float32)
    height, width = det.shape[1:]
    for person in out:
        for joint_id, joint in enumerate(person):
            if joint[2] > 0:
                x, y = joint[0], joint[1]
                col, row = int(x), int(y)
                heatmap = det[joint_id]
                x = x + np.float32(0.25) if heatmap[row, min(col + 1, width - 1)] > heatmap[row, max(col - 1, 0)] \
                    else x - np.float32(0.25)
                y = y + np.float32(0.25) if heatmap[min(row + 1, height - 1), col] > heatmap[max(0, row - 1), col] \
                    else y - np.float32(0.25)
                person[joint_id, 0:2] = (x + np.float32(0.5), y + np.float32(0.5))
    return out


def scores_reference(grouped: np.ndarray) -> np.ndarray:
    """Official person scores: mean joint value."""
    return np.array([person[:, 2].mean() for person in grouped], dtype=np.float32)


def refine_reference(grouped: np.ndarray, det: np.ndarray, tag: np.ndarray) -> np.ndarray:
    """Official ``refine`` for every person, whole-map numpy expressions."""
    tag = np.asarray(tag, dtype=np.float32)
    if tag.ndim == 3:
        tag = tag[..., None]
    out = np.array(grouped, dtype=np.float32)
    for keypoints in out:
        found_tags = []
        for j in range(keypoints.shape[0]):
            if keypoints[j, 2] > 0:
                x, y = keypoints[j][:2].astype(np.int32)
                found_tags.append(tag[j, y, x])
        mean_tag = np.mean(found_tags, axis=0)
        candidates = []
        for j in range(keypoints.shape[0]):
            heatmap = det[j]
            distance = ((tag[j] - mean_tag[None, None, :]) ** 2).sum(axis=2) ** 0.5
            y, x = np.unravel_index(np.argmax(heatmap - np.round(distance)), heatmap.shape)
            value = heatmap[y, x]
            col, row = x, y
            x = x + 0.5 + (0.25 if heatmap[row, min(col + 1, heatmap.shape[1] - 1)] > heatmap[row, max(col - 1, 0)]
                           else -0.25)
            y = y + 0.5 + (0.25 if heatmap[min(row + 1, heatmap.shape[0] - 1), col] > heatmap[max(0, row - 1), col]
                           else -0.25)
            candidates.append((x, y, value))
        candidates = np.array(candidates)
        for j in range(det.shape[0]):
            if candidates[j, 2] > 0 and keypoints[j, 2] == 0:
                keypoints[j, :2] = candidates[j, :2]
                keypoints[j, 2] = candidates[j, 2]
    return out


def parse_reference(det: np.ndarray, tag: np.ndarray, params: ParserParams = ParserParams(),
                    assign: Callable[[np.ndarray], np.ndarray] = lap_assign_reference) -> ParseResult:
    """The whole official parse for one image, from the twins above (assign: as in :func:`match_by_tag_reference`)."""
    grouped = match_by_tag_reference(top_k_reference(det, tag, params), params, assign)
    if params.adjust:
        grouped = adjust_reference(grouped, det)
    scores = scores_reference(grouped)
    if params.refine:
        grouped = refine_reference(grouped, det, tag)
    return ParseResult(grouped, scores)
