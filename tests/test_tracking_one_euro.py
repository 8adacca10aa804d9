"""One-Euro keypoint filter: jitter and lag at the defaults, timestamps, confidence, state, twins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streampose.tracking import OneEuroFilter, OneEuroParams

FPS = 30.0
PEOPLE, K = 20, 17


def _filter_sequence(filt: OneEuroFilter, keypoints: np.ndarray, times_s: np.ndarray,
                     scores: np.ndarray | None = None) -> np.ndarray:
    """keypoints (T, N, K, 2) of N tracks (IDs 0..N-1) → filtered (T, N, K, 2)."""
    ids = np.arange(keypoints.shape[1])
    if scores is None:
        scores = np.ones(keypoints.shape[:3])
    return np.stack([filt(ids, kp, sc, t) for kp, sc, t in zip(keypoints, scores, times_s)])


def _jitter(keypoints: np.ndarray) -> float:
    """RMS frame-to-frame displacement of every keypoint, pixels."""
    return float(np.sqrt((np.diff(keypoints, axis=0) ** 2).sum(-1).mean()))


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    base = rng.uniform(50, 600, (PEOPLE, K, 2))
    noise = rng.normal(0, 3.0, (300, PEOPLE, K, 2))  # 3 px per coordinate
    return base, noise


def test_still_pose_with_3px_noise_jitter_cut_at_least_5x(scene):
    base, noise = scene
    raw = base + noise
    out = _filter_sequence(OneEuroFilter(), raw, np.arange(len(raw)) / FPS)
    # After the first second (the filter starts at the first raw sample).
    reduction = _jitter(raw[30:]) / _jitter(out[30:])
    print(f"jitter {_jitter(raw[30:]):.2f} px -> {_jitter(out[30:]):.2f} px: {reduction:.1f}x")
    assert reduction >= 5.0
    # Smoothing does not displace a still pose.
    assert np.abs((out[30:] - base).mean(axis=(0, 1, 2))).max() < 0.5


@pytest.mark.parametrize("noisy", [False, True])
def test_pose_moving_10px_per_frame_lags_less_than_2px(scene, noisy):
    base, noise = scene
    direction = np.array([0.6, 0.8])  # 10 px/frame, diagonal
    truth = base + (np.arange(300) * 10.0)[:, None, None, None] * direction
    raw = truth + noise if noisy else truth
    out = _filter_sequence(OneEuroFilter(), raw, np.arange(300) / FPS)
    # Steady state: after 2 s of motion; lag measured along the motion.
    lag = float(((truth - out)[60:] @ direction).mean())
    print(f"lag {'with' if noisy else 'without'} noise: {lag:.2f} px")
    assert 0 < lag < 2.0


def test_timestamps_drive_the_filter_dropped_frames_and_variable_rate():
    # The same 300 px/s motion sampled regularly at 30 fps and irregularly
    # (frames dropped, 15-60 fps): the lag in pixels stays the same, because
    # the filter works in seconds, not frames.
    rng = np.random.default_rng(1)
    regular = np.arange(240) / FPS
    irregular = np.cumsum(rng.choice([1 / 60, 1 / 30, 1 / 15, 3 / 30], size=240))
    lags = []
    for times in (regular, irregular):
        truth = np.zeros((len(times), 1, K, 2))
        truth[..., 0] = 300.0 * times[:, None, None]
        out = _filter_sequence(OneEuroFilter(), truth, times)
        lags.append(float((truth - out)[120:, ..., 0].mean()))
    assert lags[0] == pytest.approx(lags[1], rel=0.15)
    assert max(lags) < 2.0


def test_non_increasing_timestamp_restarts_the_keypoint():
    filt = OneEuroFilter()
    kp = np.zeros((1, K, 2))
    for t in range(10):
        filt(np.array([0]), kp + 5 * t, np.ones((1, K)), t / FPS)
    out = filt(np.array([0]), kp + 100, np.ones((1, K)), 0.0)  # a seek back
    assert np.array_equal(out, kp + 100)


def test_low_confidence_keypoint_does_not_drag_the_estimate():
    filt = OneEuroFilter(keypoint_threshold=0.3)
    ids = np.array([0])
    still = np.full((1, K, 2), 100.0)
    for t in range(30):
        filt(ids, still, np.ones((1, K)), t / FPS)
    # Keypoint 9 wanders off with a low score for 10 frames.
    held = []
    for t in range(30, 40):
        kp = still.copy()
        kp[0, 9] = [400.0 + 20 * t, -50.0]
        scores = np.ones((1, K))
        scores[0, 9] = 0.05
        held.append(filt(ids, kp, scores, t / FPS)[0, 9])
    assert np.allclose(held, 100.0, atol=1e-4)
    # Back with confidence: continues from the held estimate, no jump.
    assert np.allclose(filt(ids, still, np.ones((1, K)), 40 / FPS)[0, 9], 100.0, atol=1e-4)
    # A keypoint never seen with confidence is passed through.
    fresh = OneEuroFilter()
    assert np.array_equal(fresh(ids, still + 7, np.zeros((1, K)), 0.0), still + 7)


def test_state_is_per_track_and_dropped_with_the_track():
    filt = OneEuroFilter()
    a, b = np.zeros((1, K, 2)), np.full((1, K, 2), 500.0)
    for t in range(5):
        out = filt(np.array([3, 8]), np.concatenate([a, b]) + t, np.ones((2, K)), t / FPS)
    assert out[0].max() < 10 and out[1].min() > 490  # no cross-talk
    assert filt.track_ids == {3, 8}
    filt.drop([3])
    assert filt.track_ids == {8}
    # A dropped track starts afresh: its first output is the raw input.
    assert np.array_equal(filt(np.array([3]), a + 50, np.ones((1, K)), 5 / FPS), (a + 50).astype(np.float32))
    # Untracked people (-1) pass through and leave no state.
    assert np.array_equal(filt(np.array([-1]), b + 3, np.ones((1, K)), 6 / FPS), b + 3)
    assert filt.track_ids == {3, 8}
    filt.drop_stale(now_s=6 / FPS + 1.0, max_gap_s=0.5)
    assert len(filt) == 0
    # Slots are recycled: many tracks over time, bounded state.
    for t in range(100):
        filt(np.array([100 + t]), a, np.ones((1, K)), t / FPS)
        filt.drop([100 + t])
    assert filt._position.shape[0] <= 8


def _reference_one_euro_2d(points: np.ndarray, times: np.ndarray, p: OneEuroParams) -> np.ndarray:
    """Straight from the paper, one 2-D point, speed = norm of the filtered velocity."""
    def alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    x_hat, dx_hat = points[0].copy(), np.zeros(2)
    out = [x_hat.copy()]
    for x, t_prev, t in zip(points[1:], times[:-1], times[1:]):
        dt = t - t_prev
        dx = (x - x_hat) / dt
        dx_hat = alpha(p.d_cutoff, dt) * dx + (1 - alpha(p.d_cutoff, dt)) * dx_hat
        a = alpha(p.min_cutoff + p.beta * float(np.hypot(*dx_hat)), dt)
        x_hat = a * x + (1 - a) * x_hat
        out.append(x_hat.copy())
    return np.array(out)


@pytest.mark.parametrize("params", [OneEuroParams(), OneEuroParams(min_cutoff=1.0, beta=0.01, d_cutoff=1.0)])
def test_kernel_matches_paper_reference_and_python_twin(params):
    rng = np.random.default_rng(2)
    times = np.cumsum(rng.uniform(0.01, 0.1, 50))
    points = np.cumsum(rng.normal(0, 5, (50, 2)), axis=0)
    keypoints = np.zeros((50, 2, K, 2))
    keypoints[:] = points[:, None, None, :]
    keypoints[:, 1] += rng.normal(0, 2, (50, K, 2))
    scores = rng.random((50, 2, K))
    scores[:, 0] = 1.0
    nb = _filter_sequence(OneEuroFilter.from_params(params), keypoints, times, scores)
    py = _filter_sequence(OneEuroFilter.from_params(params, use_numba=False), keypoints, times, scores)
    assert np.array_equal(nb, py)
    expected = _reference_one_euro_2d(points, times, params)
    assert np.allclose(nb[:, 0, 0], expected, atol=1e-3)


def test_constructor_and_call_errors():
    with pytest.raises(ValueError, match=r"min_cutoff=0.0 is out of range: allowed 0.0 < min_cutoff ≤ 1000.0"):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(ValueError, match=r"beta=-1"):
        OneEuroFilter(beta=-1)
    with pytest.raises(ValueError, match=r"keypoint_threshold=2"):
        OneEuroFilter(keypoint_threshold=2)
    filt = OneEuroFilter()
    filt(np.array([0]), np.zeros((1, K, 2)), np.ones((1, K)), 0.0)
    with pytest.raises(ValueError, match="earlier frames had 17"):
        filt(np.array([0]), np.zeros((1, 5, 2)), np.ones((1, 5)), 0.1)
    with pytest.raises(ValueError, match="finite"):
        filt(np.array([0]), np.zeros((1, K, 2)), np.ones((1, K)), float("nan"))
    assert filt(np.zeros(0), np.zeros((0, K, 2)), np.zeros((0, K)), 0.2).shape == (0, K, 2)
