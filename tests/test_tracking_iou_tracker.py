"""IoU/OKS tracker: ID continuity, life cycle, extremes, and Numba kernels vs their twins."""

from __future__ import annotations

import numpy as np
import pytest

from streampose.records import UNTRACKED
from streampose.tracking import IoUTracker
from streampose.tracking.iou_tracker import COCO_KEYPOINT_SIGMAS, iou_matrix, similarity_matrix


def _box(cx: float, cy: float, w: float = 60.0, h: float = 150.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _pose(box: list[float], rng: np.random.Generator | None = None) -> np.ndarray:
    """17 keypoints laid out in the box (a crude standing person), optionally jittered."""
    x1, y1, x2, y2 = box
    u = np.linspace(0.2, 0.8, 17)
    v = np.linspace(0.05, 0.95, 17)
    kpts = np.stack([x1 + u * (x2 - x1), y1 + v * (y2 - y1)], axis=1)
    return kpts if rng is None else kpts + rng.normal(0, 2, kpts.shape)


def _run(tracker: IoUTracker, frames: list[list[list[float]]], with_pose: bool = False) -> list[np.ndarray]:
    out = []
    for boxes in frames:
        xyxy = np.array(boxes, dtype=float).reshape(-1, 4)
        if with_pose:
            kpts = np.array([_pose(b) for b in boxes]).reshape(-1, 17, 2)
            out.append(tracker.update(xyxy, keypoints=kpts, keypoint_scores=np.ones(kpts.shape[:2])))
        else:
            out.append(tracker.update(xyxy))
    return out


@pytest.mark.parametrize("with_pose", [False, True])
@pytest.mark.parametrize("dy", [0.0, 20.0])
def test_two_people_crossing_keep_their_ids(with_pose, dy):
    # A walks right, B walks left, 9 px/frame each; at the crossing their boxes
    # coincide (dy=0) or nearly so, and B is listed first half of the time.
    frames = []
    for f in range(40):
        a = _box(100 + 9 * f, 200)
        b = _box(460 - 9 * f, 200 + dy, w=55, h=140)
        frames.append([a, b] if f % 2 else [b, a])
    ids = _run(IoUTracker(), frames, with_pose)
    id_a = {int(i[1] if f % 2 else i[0]) for f, i in enumerate(ids) if f >= 2}
    id_b = {int(i[0] if f % 2 else i[1]) for f, i in enumerate(ids) if f >= 2}
    assert len(id_a) == 1 and len(id_b) == 1 and id_a != id_b
    assert all((i == UNTRACKED).all() for i in ids[:2])  # tentative for min_hits - 1 frames


@pytest.mark.parametrize("gap, same_id", [(8, True), (10, True), (11, False), (20, False)])
def test_occlusion_within_max_age_keeps_the_id_longer_gives_a_new_one(gap, same_id):
    max_age = 10
    tracker = IoUTracker(max_age=max_age)
    frames = []
    for f in range(60):
        walker = _box(50 + 6 * f, 200)
        sitter = _box(600, 300)
        hidden = 20 <= f < 20 + gap
        frames.append([sitter] if hidden else [sitter, walker])
    ids = _run(tracker, frames)
    before = int(ids[19][1])
    after = [int(i[1]) for i in ids[20 + gap:] if len(i) == 2 and i[1] != UNTRACKED]
    assert after and len(set(after)) == 1
    assert (after[0] == before) == same_id
    if not same_id:
        assert after[0] > before  # a fresh ID, never the old one
    assert {int(i[0]) for i in ids[2:]} == {0}  # the seated person is undisturbed


def test_lost_track_is_predicted_at_constant_velocity():
    tracker = IoUTracker(max_age=5)
    for f in range(10):
        tracker.update(np.array([_box(100 + 10 * f, 100)]))
    for _ in range(3):
        tracker.update(np.zeros((0, 4)))
    assert tracker.states() == {0: "lost"}
    predicted = tracker.predicted_xyxy()[0]
    assert np.allclose(predicted, _box(100 + 10 * 13, 100), atol=1e-6)


def test_ids_are_never_reused():
    rng = np.random.default_rng(4)
    tracker = IoUTracker(max_age=3)
    issued: dict[int, int] = {}  # id -> person
    removed: set[int] = set()
    # 30 people, each alive during a random window, each in its own column of
    # the frame so identities are unambiguous; people come back after being
    # removed (a gap > max_age) and must get a new ID.
    windows = [sorted(rng.choice(np.arange(0, 120), size=4, replace=False)) for _ in range(30)]
    for f in range(120):
        boxes, people = [], []
        for p, (s0, e0, s1, e1) in enumerate(windows):
            if s0 <= f < e0 or s1 <= f < e1:
                boxes.append(_box(40 + 80 * p, 200 + 2 * np.sin(f)))
                people.append(p)
        ids = tracker.update(np.array(boxes).reshape(-1, 4))
        for p, i in zip(people, ids):
            if i != UNTRACKED:
                assert int(i) not in removed
                assert issued.setdefault(int(i), p) == p
        removed.update(tracker.removed_ids)
    assert removed and sorted(issued) == list(range(len(issued)))  # dense, each once


def test_empty_frames_and_zero_people():
    tracker = IoUTracker(max_age=4)
    for _ in range(5):
        ids = tracker.update(np.zeros((0, 4)))
        assert ids.shape == (0,) and ids.dtype == np.int64
    assert len(tracker) == 0 and tracker.states() == {}
    frames = [[_box(100, 100)]] * 4 + [[]] * 4 + [[_box(100, 100)]] * 2
    ids = _run(tracker, frames)
    assert [i.tolist() for i in ids] == [[-1], [-1], [0], [0], [], [], [], [], [0], [0]]
    tracker.update(np.zeros((0, 4), np.float32), keypoints=np.zeros((0, 17, 2)), keypoint_scores=np.zeros((0, 17)))


def test_three_hundred_people():
    rng = np.random.default_rng(5)
    grid = np.stack(np.meshgrid(np.arange(20), np.arange(15)), -1).reshape(-1, 2)
    centers = grid * np.array([90.0, 160.0]) + 50
    velocity = rng.uniform(-3, 3, centers.shape)
    tracker = IoUTracker()
    for f in range(12):
        c = centers + velocity * f + rng.normal(0, 1, centers.shape)
        order = rng.permutation(300)
        xyxy = np.array([_box(x, y, 50, 120) for x, y in c[order]])
        kpts = np.array([_pose(b, rng) for b in xyxy])
        ids = tracker.update(xyxy, keypoints=kpts, keypoint_scores=np.full((300, 17), 0.9))
        person_ids = np.empty(300, np.int64)
        person_ids[order] = ids
        if f == 2:
            first = person_ids.copy()
    assert len(np.unique(first)) == 300 and (first >= 0).all()
    assert np.array_equal(person_ids, first)
    assert len(tracker.states()) == 300 and set(tracker.states().values()) == {"confirmed"}


def test_min_hits_one_labels_at_once_and_classes_never_mix():
    tracker = IoUTracker(min_hits=1)
    b = _box(100, 100)
    assert tracker.update(np.array([b, b]), class_ids=np.array([0, 2])).tolist() == [0, 1]
    assert tracker.update(np.array([b, b]), class_ids=np.array([2, 0])).tolist() == [1, 0]


def test_oks_term_decides_between_equal_boxes():
    # Two people in the same box (one in front of the other) whose poses differ:
    # boxes alone cannot tell them apart, the keypoints can.
    rng = np.random.default_rng(6)
    box = np.array([_box(200, 200), _box(200, 200)])
    pose_a = _pose(box[0])
    pose_b = pose_a[::-1].copy()  # same points, other order: a different pose
    tracker = IoUTracker(oks_weight=0.5)
    for f in range(8):
        flip = f % 2 == 1
        kpts = np.array([pose_b, pose_a] if flip else [pose_a, pose_b]) + rng.normal(0, 1, (2, 17, 2))
        ids = tracker.update(box, keypoints=kpts, keypoint_scores=np.ones((2, 17)))
        if f >= 2:
            assert ids.tolist() == ([1, 0] if flip else [0, 1])


def test_constructor_errors_name_argument_value_and_range():
    with pytest.raises(ValueError, match=r"min_hits=0 is out of range: allowed 1 ≤ min_hits ≤ 1000"):
        IoUTracker(min_hits=0)
    with pytest.raises(ValueError, match=r"min_similarity=1.5 .* 0.0 < min_similarity ≤ 1.0"):
        IoUTracker(min_similarity=1.5)
    with pytest.raises(ValueError, match=r"oks_weight=-0.1"):
        IoUTracker(oks_weight=-0.1)
    with pytest.raises(ValueError, match=r"max_age=2.5 must be an integer"):
        IoUTracker(max_age=2.5)
    tracker = IoUTracker()
    with pytest.raises(ValueError, match="keypoints and keypoint_scores together"):
        tracker.update(np.zeros((1, 4)), keypoints=np.zeros((1, 17, 2)))
    with pytest.raises(ValueError, match="finite"):
        tracker.update(np.full((1, 4), np.nan))


# --- kernels vs their twins -------------------------------------------------

def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(10, 120, (n, 2))
    wh[rng.random(n) < 0.1] = 0.0  # degenerate boxes too
    return np.concatenate([xy, xy + wh], axis=1)


def _iou_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(inter > 0, inter / np.where(union > 0, union, 1), 0.0)


def test_iou_kernel_against_numpy_reference_and_python_twin():
    rng = np.random.default_rng(7)
    for n, m in [(0, 3), (3, 0), (1, 1), (17, 23)]:
        a, b = _random_boxes(rng, n), _random_boxes(rng, m)
        expected = _iou_reference(a, b)
        assert np.allclose(iou_matrix(a, b), expected, atol=1e-12)
        assert np.array_equal(iou_matrix(a, b, use_numba=False), iou_matrix(a, b))


def test_similarity_kernel_against_numpy_reference_and_python_twin():
    rng = np.random.default_rng(8)
    t, d, k, w = 9, 11, 17, 0.2
    tb, db = _random_boxes(rng, t), _random_boxes(rng, d)
    tc, dc = rng.integers(0, 2, t), rng.integers(0, 2, d)
    tk, dk = rng.uniform(50, 65, (t, k, 2)), rng.uniform(50, 65, (d, k, 2))
    tv, dv = rng.random((t, k)) < 0.7, rng.random((d, k)) < 0.7
    tv[0] = False  # a track with no visible keypoint: IoU alone
    got = similarity_matrix(tb, db, tc, dc, tk, tv, dk, dv, COCO_KEYPOINT_SIGMAS, w)
    twin = similarity_matrix(tb, db, tc, dc, tk, tv, dk, dv, COCO_KEYPOINT_SIGMAS, w, use_numba=False)
    assert np.array_equal(got, twin)

    iou = _iou_reference(tb, db)
    area = (db[:, 2:] - db[:, :2]).prod(-1)
    d2 = ((tk[:, None] - dk[None]) ** 2).sum(-1)  # (t, d, k)
    e = np.exp(-d2 / (2 * (2 * COCO_KEYPOINT_SIGMAS) ** 2 * (area[None, :, None] + 1e-9)))
    both = tv[:, None, :] & dv[None, :, :]
    count = both.sum(-1)
    oks = np.where(count > 0, (e * both).sum(-1) / np.maximum(count, 1), 0)
    expected = np.where(count > 0, (1 - w) * iou + w * oks, iou)
    expected = np.where((iou > 0) & (tc[:, None] == dc[None, :]), expected, 0.0)
    assert np.allclose(got, expected, atol=1e-12)
    assert (got > 0).sum() > 30 and (np.abs(expected - iou) > 0.01).sum() > 10  # not vacuous


def test_tracker_with_numba_and_with_python_twins_agree():
    rng = np.random.default_rng(9)
    trackers = [IoUTracker(max_age=4, use_numba=True), IoUTracker(max_age=4, use_numba=False)]
    centers = rng.uniform(0, 400, (12, 2))
    for f in range(25):
        present = rng.random(12) < 0.8
        c = centers[present] + rng.normal(0, 4, (present.sum(), 2)) + f * 3
        xyxy = np.array([_box(x, y, 50, 90) for x, y in c]).reshape(-1, 4)
        kpts = np.array([_pose(b, rng) for b in xyxy]).reshape(-1, 17, 2)
        scores = rng.random((len(xyxy), 17))
        a, b = (t.update(xyxy, keypoints=kpts, keypoint_scores=scores) for t in trackers)
        assert np.array_equal(a, b)
        assert trackers[0].removed_ids == trackers[1].removed_ids
    assert trackers[0].states() == trackers[1].states() and trackers[0].states()
