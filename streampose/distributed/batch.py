"""The batch driver: a corpus through a pool of Ray actors, with retries, resuming and a summary.

Each actor (:class:`PipelineActor`, ``num_cpus`` / ``num_gpus`` each,
fractions allowed, spread over the nodes) loads the pipeline's models once
and then runs item after item (:class:`~.item_runner.ItemRunner`, inline
runner). The driver hands an item to an idle actor and waits for any result:

- an actor that dies (process killed, node removed) fails its call with a
  ``RayActorError``: the item goes back to the front of the queue for another
  actor (up to ``max_attempts``), the dead actor is replaced, and, since
  outputs are published only by a successful run, no partial file or
  duplicate line can appear;
- a bad item comes back ``failed`` with its one-line reason; the rest go on;
- the manifest (:mod:`.manifest`) is saved after every item, so re-running the
  same command skips what is complete and verified, and runs the rest.

Long videos may be split into chunks (:mod:`.chunks`): each chunk is a job of
its own, and the driver stitches the chunks' results when the last one ends.
The output directory must be visible to every node under the same path
(a shared file system) on a multi-machine cluster.

Ray's API used here (``ray.init``, ``ray.remote(...).options``,
``ray.wait``, ``ray.kill``, ``ray.exceptions``) is described at
https://docs.ray.io/en/latest/ray-core/api/ .
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import PipelineConfig
from ..errors import UserError
from .corpus import Item
from .item_runner import WORK_FOLDER, ItemOutcome, ItemRunner
from .manifest import ItemRecord, RunManifest, file_sha256

log = logging.getLogger(__name__)

CHUNK_FOLDER = ".chunks"
CHUNK_OPENER = "streampose.distributed.chunks:open_chunk_source"
#: a replacement actor that cannot start for this long (no free resources left) stops the batch.
ACTOR_START_TIMEOUT_S = 300.0


@dataclass
class BatchOptions:
    """How a batch runs. actors: pool size (None: as many as the cluster's CPUs/GPUs allow, at most
    one per job); chunks: split each video into this many time chunks (1: no splitting);
    max_attempts: runs of one job before it counts as failed because its workers kept dying."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    actors: int | None = None
    video: bool = False
    chunks: int = 1
    chunk_overlap_s: float = 3.0
    max_attempts: int = 3
    progress: bool | None = None

    def __post_init__(self) -> None:
        if not self.num_cpus >= 0:
            raise ValueError(f"num_cpus must be >= 0, got {self.num_cpus}")
        if not self.num_gpus >= 0:
            raise ValueError(f"num_gpus must be >= 0, got {self.num_gpus}")
        if self.num_gpus > 1 and self.num_gpus != int(self.num_gpus):
            raise ValueError(f"num_gpus above 1 must be a whole number, got {self.num_gpus}")
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"actors must be >= 1, got {self.actors}")
        if self.chunks < 1:
            raise ValueError(f"chunks must be >= 1, got {self.chunks}")
        if self.chunk_overlap_s < 0:
            raise ValueError(f"chunk_overlap_s must be >= 0, got {self.chunk_overlap_s}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.video and self.chunks > 1:
            raise ValueError("an annotated video cannot be stitched from chunks; use chunks = 1 with video")


@dataclass
class Job:
    """One call to an actor: a whole item, or one chunk of it (``part`` >= 0)."""

    item: Item
    spec: str
    name: str
    part: int = -1
    attempts: int = 0


@dataclass
class NodeTally:
    frames: int = 0
    busy_s: float = 0.0
    jobs: int = 0


@dataclass
class BatchResult:
    """The end of a batch: counts of items, frames over the cluster, and each node's share."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    wall_s: float = 0.0
    actors: int = 0
    nodes: dict[str, NodeTally] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when every item is complete, 1 when some failed."""
        return 1 if self.failed else 0

    def summary_lines(self) -> list[str]:
        fps = self.frames / self.wall_s if self.wall_s > 0 else 0.0
        lines = [f"items: {self.done} done, {self.failed} failed, {self.skipped} skipped (complete before); "
                 f"{self.frames} frames in {self.wall_s:.1f} s = {fps:.1f} frames/s over the cluster "
                 f"({self.actors} actor(s))"]
        for node, tally in sorted(self.nodes.items()):
            per_busy = tally.frames / tally.busy_s if tally.busy_s > 0 else 0.0
            lines.append(f"  node {node}: {tally.jobs} job(s), {tally.frames} frames, "
                         f"{tally.frames / self.wall_s if self.wall_s else 0:.1f} frames/s of wall time, "
                         f"{per_busy:.1f} frames/s while busy")
        for name, error in sorted(self.errors.items()):
            lines.append(f"  failed {name}: {error}")
        return lines


class PipelineActor:
    """The Ray actor: one :class:`ItemRunner`, its models loaded by :meth:`warm_up`."""

    def __init__(self, pipeline: PipelineConfig) -> None:
        self.runner = ItemRunner(pipeline)

    def warm_up(self) -> dict[str, Any]:
        """Load the models; returns where the actor runs: ``node`` (label), ``node_id``, ``pid``."""
        self.runner.warm_up()
        self.runner.node = node_label()
        return {"node": self.runner.node, "node_id": node_id(), "pid": self.runner.pid}

    def run(self, name: str, spec: str, output_dir: str, video: bool, opener: str | None) -> ItemOutcome:
        return self.runner.run(name, spec, output_dir, video=video, opener=opener)


def node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def node_label() -> str:
    """``IP/first 6 hex of the node ID``: nodes of a local test cluster share one IP."""
    import ray

    return f"{ray.util.get_node_ip_address()}/{node_id()[:6]}"


def connect(address: str | None, *, num_cpus: int | None = None, object_store_memory: int | None = None) -> bool:
    """Join ``address`` (``auto``, ``HOST:PORT``) or start a local Ray; False when already connected."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "configure_logging": False, "log_to_driver": False}
    if address:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"cannot join the Ray cluster at {address!r} ({' '.join(str(e).split())[:200]}); "
                            "start it with 'ray start --head' or give the head's HOST:PORT") from e
    else:
        ray.init(num_cpus=num_cpus, object_store_memory=object_store_memory, **kwargs)
    return True


def _pool_size(options: BatchOptions, jobs: int) -> int:
    import ray

    if options.actors is not None:
        return max(1, min(options.actors, jobs))
    resources = ray.cluster_resources()
    fits = []
    if options.num_cpus > 0:
        fits.append(int(resources.get("CPU", 0) // options.num_cpus))
    if options.num_gpus > 0:
        fits.append(int(resources.get("GPU", 0) // options.num_gpus))
    return max(1, min([jobs] + fits))


class _Progress:
    """Items and frames on one tqdm bar (stderr)."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        from tqdm import tqdm

        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="item", desc="batch", disable=not enabled, file=sys.stderr)
        self.t0 = time.monotonic()
        self.frames = 0

    def update(self, items: int, frames: int) -> None:
        self.frames += frames
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        self.bar.set_postfix(frames=self.frames, fps=f"{self.frames / elapsed:.1f}", refresh=False)
        self.bar.update(items)

    def close(self) -> None:
        self.bar.close()


def plan_jobs(items: list[Item], options: BatchOptions) -> tuple[list[Job], dict[str, Any]]:
    """The jobs of ``items``; chunked items also get their plan ``{name: (index, chunks)}``."""
    from .chunks import index_video, plan_chunks

    jobs: list[Job] = []
    plans: dict[str, Any] = {}
    for item in items:
        path = Path(item.spec)
        if options.chunks > 1 and path.is_file() and "://" not in item.spec:
            try:
                index = index_video(item.spec)
            except UserError:
                jobs.append(Job(item, item.spec, item.name))  # the run reports why it cannot be read
                continue
            chunks = plan_chunks(index, options.chunks, options.chunk_overlap_s)
            if len(chunks) > 1:
                plans[item.name] = (index, chunks)
                jobs += [Job(item, chunk.spec(item.spec), f"{item.name}.part{k}", k) for k, chunk in enumerate(chunks)]
                continue
        jobs.append(Job(item, item.spec, item.name))
    return jobs, plans


def run_batch(items: list[Item], pipeline: PipelineConfig, output_dir: Path, options: BatchOptions,
              on_start: Callable[[dict[str, Any]], None] | None = None) -> BatchResult:
    """Process ``items`` on the connected Ray cluster (see :func:`connect`) into ``output_dir``.

    Complete items (manifest + verified files) are skipped. on_start: called
    with each actor's ``{"node", "pid"}`` once its models are loaded.
    Raises UserError when the pipeline cannot start on an actor (bad weights
    path...), with that error's message.
    """
    import ray

    t0 = time.monotonic()
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        manifest = RunManifest.load(output_dir)
    except ValueError as e:
        raise UserError(str(e)) from e
    manifest.pipeline = pipeline.name
    shutil.rmtree(output_dir / WORK_FOLDER, ignore_errors=True)  # left by workers killed in an earlier run
    result = BatchResult()
    todo = []
    for item in items:
        if manifest.is_complete(item.name):
            result.skipped += 1
        else:
            todo.append(item)
    jobs, plans = plan_jobs(todo, options)
    if plans:
        (output_dir / CHUNK_FOLDER).mkdir(exist_ok=True)
    parts_left = {name: len(chunks) for name, (_, chunks) in plans.items()}
    part_outcomes: dict[str, list[ItemOutcome]] = {name: [] for name in plans}
    progress = _Progress(len(items), options.progress)
    progress.update(result.skipped, 0)

    def finish_item(item: Item, record: ItemRecord) -> None:
        manifest.record(item.name, record)
        if record.status == "done":
            result.done += 1
            result.frames += record.frames
        else:
            result.failed += 1
            result.errors[item.name] = record.error or "failed"
        progress.update(1, record.frames)

    def tally(outcome: ItemOutcome) -> None:
        node = result.nodes.setdefault(outcome.node or "?", NodeTally())
        node.jobs += 1
        node.frames += outcome.frames
        node.busy_s += outcome.seconds

    def job_ended(job: Job, outcome: ItemOutcome) -> None:
        tally(outcome)
        if job.part < 0:
            finish_item(job.item, ItemRecord(job.item.spec, outcome.status, outcome.frames, round(outcome.seconds, 3),
                                             outcome.error, outcome.node, job.attempts, outcome.outputs))
            return
        name = job.item.name
        part_outcomes[name].append(outcome)
        parts_left[name] -= 1
        if parts_left[name]:
            return
        finish_item(job.item, _stitched(job.item, plans[name], part_outcomes[name], output_dir, job.attempts))

    actor_class = ray.remote(PipelineActor)
    size = _pool_size(options, len(jobs)) if jobs else 0
    result.actors = size
    starting: dict[Any, tuple[Any, float]] = {}
    busy: dict[Any, tuple[Any, Job]] = {}
    idle: list[Any] = []
    pending = deque(jobs)
    spawned = 0

    def spawn() -> None:
        nonlocal spawned
        if spawned >= size + options.max_attempts * len(jobs):
            raise UserError(f"{spawned} actors died; stopping (see the Ray logs, e.g. "
                            "/tmp/ray/session_latest/logs, for why: out of memory?)")
        actor = actor_class.options(num_cpus=options.num_cpus, num_gpus=options.num_gpus,
                                    scheduling_strategy="SPREAD").remote(pipeline)
        starting[actor.warm_up.remote()] = (actor, time.monotonic())
        spawned += 1

    def discard(actor: Any) -> None:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - the actor is gone already; nothing to release
            pass

    for _ in range(size):
        spawn()
    try:
        while pending or busy:
            while idle and pending:
                actor, job = idle.pop(), pending.popleft()
                job.attempts += 1
                out = output_dir / CHUNK_FOLDER if job.part >= 0 else output_dir
                ref = actor.run.remote(job.name, job.spec, str(out), options.video,
                                       CHUNK_OPENER if job.part >= 0 else None)
                busy[ref] = (actor, job)
            if not busy and not idle and starting and \
                    all(time.monotonic() - since > ACTOR_START_TIMEOUT_S for _, since in starting.values()):
                raise UserError(f"no actor could start in {ACTOR_START_TIMEOUT_S:.0f} s: the cluster has no free "
                                f"num_cpus={options.num_cpus:g} num_gpus={options.num_gpus:g}; add nodes or ask "
                                "for less per actor")
            ready, _ = ray.wait(list(starting) + list(busy), num_returns=1, timeout=0.5)
            for ref in ready:
                if ref in starting:
                    actor, _since = starting.pop(ref)
                    try:
                        where = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        raise UserError(f"the pipeline cannot start on an actor: {last_line(e)}") from e
                    except ray.exceptions.RayError as e:
                        log.warning("an actor died while loading its models (%s); starting another", last_line(e))
                        discard(actor)
                        spawn()
                        continue
                    if on_start is not None:
                        on_start(where)
                    idle.append(actor)
                    continue
                actor, job = busy.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    outcome = ItemOutcome(job.name, "failed", error=f"worker error: {last_line(e)}")
                except ray.exceptions.RayError as e:
                    discard(actor)
                    spawn()
                    if job.attempts < options.max_attempts:
                        log.warning("%s: its worker died (%s); retrying on another", job.name, last_line(e))
                        pending.appendleft(job)
                    else:
                        job_ended(job, ItemOutcome(job.name, "failed", error=f"its worker died {job.attempts} "
                                                   f"times; last: {last_line(e)}"))
                    continue
                idle.append(actor)
                job_ended(job, outcome)
    finally:
        progress.close()
        for actor in idle + [a for a, _ in busy.values()] + [a for a, _ in starting.values()]:
            discard(actor)
        shutil.rmtree(output_dir / WORK_FOLDER, ignore_errors=True)
        chunk_folder = output_dir / CHUNK_FOLDER
        shutil.rmtree(chunk_folder / WORK_FOLDER, ignore_errors=True)
        if chunk_folder.is_dir() and not any(chunk_folder.iterdir()):
            chunk_folder.rmdir()
    result.wall_s = time.monotonic() - t0
    return result


def _stitched(item: Item, plan: Any, outcomes: list[ItemOutcome], output_dir: Path, attempts: int) -> ItemRecord:
    """The manifest record of a chunked item once all its parts ended (stitching them when all succeeded)."""
    from .chunks import stitch_chunks

    index, chunks = plan
    seconds = round(sum(o.seconds for o in outcomes), 3)
    nodes = ",".join(sorted({o.node for o in outcomes if o.node}))
    failures = [o for o in outcomes if o.status != "done"]
    part_files = [output_dir / CHUNK_FOLDER / f"{item.name}.part{k}.jsonl" for k in range(len(chunks))]
    try:
        if failures:
            return ItemRecord(item.spec, "failed", 0, seconds, failures[0].error, nodes, attempts)
        final = output_dir / f"{item.name}.jsonl"
        try:
            frames = stitch_chunks(chunks, part_files, index, final)
        except UserError as e:
            return ItemRecord(item.spec, "failed", 0, seconds, str(e), nodes, attempts)
        return ItemRecord(item.spec, "done", frames, seconds, None, nodes, attempts,
                          {final.name: file_sha256(final)})
    finally:
        for path in part_files:
            path.unlink(missing_ok=True)


def last_line(error: BaseException) -> str:
    """The last non-empty line of an error's text (Ray errors carry the remote traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(error).__name__
