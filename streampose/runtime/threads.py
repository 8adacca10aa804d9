"""CPU math threads for stage processes, given by each stage's measured cost.

Stages run side by side, so each stage process's math libraries (torch's
intra-op pool, OpenMP) must not each take every core: on a small CPU they
spin against each other and every forward pass gets many times slower.
Splitting the cores evenly is no better: the pose stage of a top-down
pipeline does about 90 % of the work, and with 1 of 2 cores it leaves the
other idle (issue 17 measured 1.64x from giving it both).

The rule (:func:`allocate_threads`):

- a stage's *cost* is the thread-seconds it spends busy per frame (busy
  wall time x threads it had, over the frames it passed on), a running
  estimate per stage, smoothed between looks. Per frame, not per second:
  while the queues fill, the detector runs ahead of the pose stage, and its
  share of the busy time then says nothing about its share of each frame's
  work (measured: 0.29 of the busy time in the first look, 0.07 of a frame's
  cost; by time it took a core from the pose stage for seconds);
- a stage without math steps (no step with a ``threads`` option), or a
  light one (its share of the cost is under half a core), gets 1 thread:
  it only does Python/numpy, or it sleeps most of the time;
- the other stages share what is left of the cores (cores minus the part
  the light stages use) in proportion to their cost, by largest remainder,
  at least 1 each. Their threads add up to the cores, never more, which is
  what "never oversubscribe" means here: the only extra threads are the
  light stages' mostly sleeping ones (2 cores, detect 10 % / pose 90 %:
  pose 2 threads, detect 1);
- before every model stage has finished a batch (the warm-up) the costs are
  a prior by step role (:data:`PRIOR_COST`: a pose step 4, a detector 1);
  from then on the plan is re-made every :data:`REBALANCE_S` from the measured costs,
  so it follows the load when it changes (more people per frame, a second source);
- ``OMP_NUM_THREADS`` in the environment, or a step's explicit ``threads``
  option, wins: such a stage is pinned and never re-balanced.

A replicated stage's threads are split between its replicas.

The parent owns a :class:`ThreadBalancer` and calls :meth:`ThreadBalancer.rebalance`
from its supervision loop; each stage process reports its busy seconds and
picks up its thread count through :class:`StageThreads` (two shared arrays,
no messages).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: seconds between looks at the stages' costs.
REBALANCE_S = 0.5
#: weight of the newest look in the running cost estimate.
SMOOTHING = 0.5


def allocate_threads(costs: list[float], cores: int, math_stages: list[bool],
                     pinned: list[int | None]) -> list[int]:
    """Threads per stage for the given cost estimates (see the module docstring).

    costs: thread-seconds per stage (any scale; all zero: nothing measured
    yet, equal shares between the math stages); math_stages: whether each
    stage runs math steps; pinned: a fixed thread count per stage, or None.
    The free math stages whose fair part of the cores (``cores x share``)
    is at least half a core share what the others leave, by largest
    remainder, so their threads add up to the cores exactly.
    """
    cores = max(1, cores)
    n = len(costs)
    total = sum(max(0.0, c) for c in costs)
    if total <= 0.0:
        n_math = sum(1 for m in math_stages if m) or 1
        shares = [(1.0 / n_math if m else 0.0) for m in math_stages]
    else:
        shares = [max(0.0, c) / total for c in costs]
    ideal = [cores * s for s in shares]
    threads = [1] * n
    heavy = []
    budget = float(cores)
    for i in range(n):
        if pinned[i] is not None:
            threads[i] = pinned[i]
            budget -= min(pinned[i], ideal[i])
        elif math_stages[i] and ideal[i] >= 0.5:
            heavy.append(i)
        else:
            budget -= min(1.0, ideal[i])  # one thread, asleep for most of the run
    if not heavy:
        return threads
    weight = sum(shares[i] for i in heavy)
    seats = max(len(heavy), round(budget))
    exact = {i: seats * shares[i] / weight for i in heavy}
    for i in heavy:
        threads[i] = max(1, int(exact[i]))
    left = seats - sum(threads[i] for i in heavy)
    for i in sorted(heavy, key=lambda i: exact[i] - int(exact[i]), reverse=True)[:max(0, left)]:
        threads[i] += 1
    while left < 0:  # the minimum of one each took more than the seats: take back from the largest
        i = max(heavy, key=lambda i: threads[i])
        threads[i] -= 1
        left += 1
    return [min(t, cores) if pinned[i] is None else t for i, t in enumerate(threads)]


#: relative cost per frame, by step role, before anything is measured.
PRIOR_COST = {"pose": 4.0, "detector": 1.0}


def prior_costs(stage_specs: list[list[dict[str, Any]]]) -> list[float]:
    """Each stage's cost before measuring: the sum of its steps' :data:`PRIOR_COST` by role."""
    from ..config import step_class

    return [sum(PRIOR_COST.get(getattr(step_class(spec), "role", ""), 0.0) for spec in specs)
            for specs in stage_specs]


def step_pins_threads(spec: dict[str, Any]) -> int | None:
    """A step spec's explicit ``threads`` (None when unset or 0, the runtime's choice)."""
    value = spec.get("threads", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def stage_uses_math(specs: list[dict[str, Any]]) -> bool:
    """Whether a stage has a step with a ``threads`` option (a model step)."""
    import dataclasses

    from ..config import step_class

    for spec in specs:
        cls = step_class(spec)
        if cls is not None and "threads" in {f.name for f in dataclasses.fields(cls.Options)}:
            return True
    return False


@dataclass
class StageThreads:
    """One stage process's end of the shared arrays (picklable to the child).

    busy: cumulative busy seconds x threads per process slot, frames: frames
    passed on per process slot (both written by the child); threads: the
    count each process slot should use (written by the parent; 0 means leave
    it alone).
    """

    busy: Any
    frames: Any
    threads: Any
    slot: int

    def report(self, busy_s: float, current_threads: int, frames: int) -> None:
        """Add ``busy_s`` seconds spent with ``current_threads`` threads on ``frames`` frames passed on."""
        self.busy[self.slot] += busy_s * max(1, current_threads)
        self.frames[self.slot] += frames

    def wanted(self) -> int:
        return int(self.threads[self.slot])


class ThreadBalancer:
    """Parent side: shared arrays, the running cost estimate, re-balancing.

    stage_slots: for each stage, the process slots of its replicas.
    """

    def __init__(self, ctx: Any, stage_specs: list[list[dict[str, Any]]], stage_slots: list[list[int]],
                 cores: int | None = None) -> None:
        n_slots = sum(len(s) for s in stage_slots)
        self.busy = ctx.Array("d", n_slots, lock=False)
        self.frames = ctx.Array("d", n_slots, lock=False)
        self.threads = ctx.Array("i", n_slots, lock=False)
        self.stage_slots = stage_slots
        self.cores = cores or os.cpu_count() or 1
        self.math = [stage_uses_math(specs) for specs in stage_specs]
        self.user_omp = "OMP_NUM_THREADS" in os.environ
        pins = [[p for p in map(step_pins_threads, specs) if p is not None] for specs in stage_specs]
        self.pinned: list[int | None] = [max(p) if p else None for p in pins]
        self.costs = [0.0] * len(stage_specs)
        self._last_busy = [0.0] * len(stage_specs)
        self._last_frames = [0.0] * len(stage_specs)
        self._next_look: float | None = None  # set at the first call (the run's start)
        # Until every model stage has run a batch: a prior by role (pose models cost more per frame
        # than detectors: ~90 % of a top-down pipeline's work), so the first batches get threads too.
        self.plan = allocate_threads(prior_costs(stage_specs), self.cores, self.math, self.pinned)
        self._write(self.plan)

    @property
    def enabled(self) -> bool:
        """False when the user fixed every thread count (OMP_NUM_THREADS)."""
        return not self.user_omp

    def for_slot(self, slot: int) -> StageThreads:
        return StageThreads(self.busy, self.frames, self.threads, slot)

    def rebalance(self, now: float | None = None) -> list[int] | None:
        """Look at the costs if it is time; returns the new plan when it changed."""
        now = time.monotonic() if now is None else now
        if self._next_look is None:
            self._next_look = now + REBALANCE_S
        if not self.enabled or now < self._next_look:
            return None
        self._next_look = now + REBALANCE_S
        busy = [sum(self.busy[s] for s in slots) for slots in self.stage_slots]
        if any(m and p is None and b <= 0.0 for m, p, b in zip(self.math, self.pinned, busy)):
            return None  # warm-up: a model stage has not finished a batch yet, its cost is unknown
        frames = [sum(self.frames[s] for s in slots) for slots in self.stage_slots]
        updated = False
        for i, (b, f) in enumerate(zip(busy, frames)):
            if f <= self._last_frames[i]:
                continue  # no frame passed on since the last look (a batch still running): its time waits
            per_frame = (b - self._last_busy[i]) / (f - self._last_frames[i])
            self.costs[i] = per_frame if self.costs[i] <= 0.0 else (1 - SMOOTHING) * self.costs[i] + SMOOTHING * per_frame
            self._last_busy[i], self._last_frames[i] = b, f
            updated = True
        if not updated or sum(self.costs) <= 0.0:
            return None  # nothing passed on since the last look (models loading, or idle)
        plan = allocate_threads(self.costs, self.cores, self.math, self.pinned)
        if plan == self.plan:
            return None
        log.debug("stage threads %s -> %s (cost shares %s)", self.plan, plan,
                  [round(c / sum(self.costs), 2) for c in self.costs])
        self.plan = plan
        self._write(plan)
        return plan

    def _write(self, plan: list[int]) -> None:
        for stage, slots in enumerate(self.stage_slots):
            per_replica = 0 if self.user_omp else max(1, round(plan[stage] / len(slots)))
            for s in slots:
                self.threads[s] = per_replica


def set_process_threads(threads: int) -> None:
    """Use ``threads`` math threads in this process from now on (0: leave as is).

    Sets ``OMP_NUM_THREADS`` too, for libraries that read it when first
    imported (torch, onnxruntime); torch, once imported, is told directly.
    """
    if threads < 1:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
