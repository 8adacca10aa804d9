"""Stage processes share the CPU cores instead of each taking all of them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = ("import os, torch; from streampose.runtime.worker import share_cpu_threads; "
         "share_cpu_threads({n}); print(os.environ.get('OMP_NUM_THREADS'), torch.get_num_threads())")


def _run(n: int, env_extra: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | env_extra
    out = subprocess.run([sys.executable, "-c", CHECK.format(n=n)], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    return out.stdout.split()


@pytest.mark.parametrize("n", [1, 3])
def test_share_sets_the_thread_count_torch_uses(n):
    assert _run(n, {}) == [str(n), str(n)]


def test_the_users_choice_wins():
    assert _run(1, {"OMP_NUM_THREADS": "2"}) == ["2", "2"]


# --- threads given by measured cost (streampose.runtime.threads) ---

from runtime_helpers import OPENER, STEPS_FILE, frames_of, read_records  # noqa: E402
from streampose.config import parse_pipeline  # noqa: E402
from streampose.runtime import run_pipeline  # noqa: E402
from streampose.runtime.threads import ThreadBalancer, allocate_threads  # noqa: E402


@pytest.mark.parametrize("costs, cores, math, pinned, expected", [
    ([0.0, 0.0, 0.0], 2, [True, True, False], [None, None, None], [1, 1, 1]),  # nothing measured: equal
    ([0.0, 0.0], 8, [True, True], [None, None], [4, 4]),
    ([0.1, 0.9, 0.01], 2, [True, True, False], [None, None, None], [1, 2, 1]),  # the busy stage gets the machine
    ([1.0, 1.0], 2, [True, True], [None, None], [1, 1]),
    ([0.3, 0.7], 8, [True, True], [None, None], [2, 6]),
    ([0.5, 0.5], 3, [True, True], [None, None], [2, 1]),  # 2 + 2 would oversubscribe
    ([0.3, 0.7], 2, [True, True], [None, None], [1, 1]),
    ([0.05, 0.05, 0.9], 4, [True, True, True], [None, None, None], [1, 1, 4]),
    ([0.1, 0.9], 2, [True, True], [None, 1], [1, 1]),  # an explicit threads option wins
    ([0.0, 5.0], 4, [True, False], [None, None], [1, 1]),  # a stage without math keeps 1
])
def test_allocation_by_cost(costs, cores, math, pinned, expected):
    plan = allocate_threads(costs, cores, math, pinned)
    assert plan == expected
    total = sum(costs)
    heavy = [t for t, c, m in zip(plan, costs, math) if m and (not total or c / total * cores >= 0.5)]
    assert sum(heavy) <= cores  # only the light stages' sleeping threads come on top


def test_balancer_follows_a_changing_load():
    ctx = __import__("multiprocessing").get_context("spawn")
    specs = [[{"type": "test_work", "threads": 0}], [{"type": "test_work"}], [{"type": "draw"}]]
    __import__("streampose.config").config.import_step_modules([STEPS_FILE])
    balancer = ThreadBalancer(ctx, specs, [[0], [1, 2], [3]], cores=4)
    assert list(balancer.threads) == [2, 1, 1, 1]  # equal shares of 4 cores; the replicas split theirs
    now = 100.0
    for _ in range(4):  # stage 1 (two replicas) does most of the work; every stage passes on 10 frames a look
        balancer.busy[0] += 0.1
        balancer.busy[1] += 0.9
        balancer.busy[2] += 0.9
        for slot, frames in ((0, 10), (1, 5), (2, 5), (3, 10)):
            balancer.frames[slot] += frames
        now += 1.0
        balancer.rebalance(now)
    assert balancer.plan == [1, 4, 1] and list(balancer.threads) == [1, 2, 2, 1]
    for _ in range(8):  # the load moves to stage 0
        balancer.busy[0] += 3.0
        balancer.busy[1] += 0.1
        balancer.busy[2] += 0.1
        for slot, frames in ((0, 10), (1, 5), (2, 5), (3, 10)):
            balancer.frames[slot] += frames
        now += 1.0
        balancer.rebalance(now)
    assert balancer.plan == [4, 1, 1]


def test_a_stage_running_ahead_while_the_queues_fill_keeps_its_per_frame_share():
    """Measured in issue 17: in the first look the detector had spent 0.29 of the busy time (it ran
    ahead, filling the queue) but 0.07 of a frame's cost; by time it took a core from the pose stage."""
    ctx = __import__("multiprocessing").get_context("spawn")
    __import__("streampose.config").config.import_step_modules([STEPS_FILE])
    specs = [[{"type": "test_work"}], [{"type": "test_work"}], [{"type": "draw"}]]
    balancer = ThreadBalancer(ctx, specs, [[0], [1], [2]], cores=2)
    now = 100.0
    balancer.busy[0], balancer.frames[0] = 24 * 0.16, 24  # detector: 24 frames ahead, 0.16 s each (0.29 of the time)
    balancer.busy[1], balancer.frames[1] = 4 * 2 * 1.2, 4  # pose: its first batch of 4, 1.2 s each on 2 threads
    balancer.busy[2], balancer.frames[2] = 0.01, 4
    balancer.rebalance(now)
    now += 1.0
    balancer.rebalance(now)
    assert balancer.plan == [1, 2, 1]
    shares = [c / sum(balancer.costs) for c in balancer.costs]
    assert shares[0] < 0.1 < 0.9 < shares[1]
    balancer.busy[0] += 0.5  # a window in which the pose stage passed nothing on: its estimate stays
    balancer.frames[0] += 3
    now += 1.0
    balancer.rebalance(now)
    assert balancer.plan == [1, 2, 1] and shares[1] == pytest.approx(balancer.costs[1] / sum(balancer.costs), rel=0.2)


def _two_model_stages(out, heavy_threads=0):
    return parse_pipeline({"step_modules": [STEPS_FILE], "stages": [
        {"name": "light", "steps": [{"type": "test_work", "seconds": 0.0, "label": "light"}]},
        {"name": "heavy", "steps": [{"type": "test_work", "seconds": 0.01, "label": "heavy",
                                     "threads": heavy_threads}]},
        {"name": "sink", "steps": [{"type": "test_record", "path": str(out)}]}]}, name="threads")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores to give one stage more than one")
def test_the_busy_stage_gets_the_cores_during_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = tmp_path / "rec.jsonl"
    run_pipeline(_two_model_stages(out), ["gen?n=250"], opener=OPENER, progress=False)
    frames = frames_of(read_records(out), 0)
    assert frames[0]["test_heavy_threads"] == frames[0]["test_light_threads"]  # equal before any look
    last = frames[-1]
    assert int(last["test_heavy_threads"]) >= 2 and last["test_light_threads"] == "1"


@pytest.mark.parametrize("env, heavy_threads, expected", [({"OMP_NUM_THREADS": "1"}, 0, "1"), ({}, 1, "1")],
                         ids=["OMP_NUM_THREADS", "threads option"])
def test_the_users_thread_count_wins_over_the_balancer(tmp_path, monkeypatch, env, heavy_threads, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "rec.jsonl"
    run_pipeline(_two_model_stages(out, heavy_threads), ["gen?n=150"], opener=OPENER, progress=False)
    assert {f["test_heavy_threads"] for f in frames_of(read_records(out), 0)} == {expected}
