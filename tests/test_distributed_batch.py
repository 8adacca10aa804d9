"""``streampose batch`` on a real 3-node local Ray cluster (``ray.cluster_utils.Cluster``).

One cluster serves the module (started once: it takes seconds on 2 cores),
and every test starts on its 3 live nodes: the node-removal test shrinks it,
so the ``cluster`` fixture adds a node back for the next test, whatever the
order. The single-machine results they compare with are plain inline runs of
the same pipeline on the same source strings.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from distributed_helpers import LONG_VIDEO, OBJECT_STORE_BYTES, make_corpus, single_machine_run, detect_pipeline

ray = pytest.importorskip("ray")

from streampose.distributed.batch import BatchOptions, run_batch  # noqa: E402
from streampose.distributed.chunks import index_video  # noqa: E402
from streampose.distributed.corpus import discover_items  # noqa: E402
from streampose.distributed.manifest import RunManifest  # noqa: E402

BROKEN = "broken/truncated.mp4"


NODES = 3
NODE_ARGS = {"num_cpus": 2, "object_store_memory": OBJECT_STORE_BYTES}


@pytest.fixture(scope="module")
def module_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=dict(NODE_ARGS, include_dashboard=False))
    try:
        for _ in range(NODES - 1):
            cluster.add_node(**NODE_ARGS)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def cluster(module_cluster):
    """The module's cluster with all its 3 nodes live: a node a test removed is replaced before the next one.

    Without this the node-removal test left 2 nodes behind, and the corpus test (work spread over
    3 nodes) failed whenever it ran after it.
    """
    missing = NODES - len(module_cluster.list_all_nodes())
    for _ in range(missing):
        module_cluster.add_node(**NODE_ARGS)
    if missing:
        module_cluster.wait_for_nodes()
    return module_cluster


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_dir):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root, shared_dir / "media")


@pytest.fixture(scope="module")
def pipeline():
    return detect_pipeline()


@pytest.fixture(scope="module")
def reference(corpus, pipeline, tmp_path_factory):
    """``{item name: JSONL bytes}`` of the single-machine run of every good item."""
    root, _ = corpus
    out = tmp_path_factory.mktemp("reference")
    return {item.name: single_machine_run(pipeline, item.spec, out / f"{item.name}.jsonl").read_bytes()
            for item in discover_items(str(root)) if not item.spec.endswith(BROKEN)}


def _assert_complete_and_equal(out: Path, reference: dict[str, bytes], names: list[str]) -> None:
    for name in names:
        data = (out / f"{name}.jsonl").read_bytes()
        frames = [json.loads(line)["frame"] for line in data.splitlines()]
        assert frames == list(range(len(frames))), f"{name}: frames out of order or duplicated"
        assert data == reference[name], f"{name}: differs from the single-machine run"
    assert not (out / ".work").exists(), "work files left behind"
    assert not list(out.glob(".*partial*")), "partial files left behind"


def test_corpus_on_three_nodes_equals_single_machine_run_and_resumes(cluster, corpus, pipeline, reference,
                                                                     tmp_path):
    root, _ = corpus
    items = discover_items(str(root))
    assert len(items) == 13
    out = tmp_path / "out"
    result = run_batch(items, pipeline, out, BatchOptions(actors=3, progress=False))

    # 12 items equal byte for byte; the corrupt one is failed with a one-line reason, and the exit code says so.
    assert (result.done, result.failed, result.skipped) == (12, 1, 0)
    assert result.exit_code == 1
    _assert_complete_and_equal(out, reference, list(reference))
    assert len(result.nodes) == 3, f"work did not spread over the 3 nodes: {result.nodes}"
    manifest = RunManifest.load(out)
    broken = next(r for r in manifest.items.values() if r.source.endswith(BROKEN))
    assert broken.status == "failed" and "truncated.mp4" in broken.error and "\n" not in broken.error
    assert not list(out.glob("truncated*"))
    assert sum(r.frames for r in manifest.items.values()) == result.frames > 0

    # A re-run skips everything complete and only retries the failed item.
    again = run_batch(items, pipeline, out, BatchOptions(actors=3, progress=False))
    assert (again.done, again.failed, again.skipped) == (0, 1, 12)

    # A published file that changed since is not trusted: that item (only) runs again.
    victim = next(name for name in reference if name.startswith("cut1"))
    (out / f"{victim}.jsonl").write_bytes(reference[victim][:-200])
    third = run_batch(items, pipeline, out, BatchOptions(actors=2, progress=False))
    assert (third.done, third.failed, third.skipped) == (1, 1, 11)
    _assert_complete_and_equal(out, reference, list(reference))


class _KillMidItem:
    """Watches the work folder and, once an item of ``prefix`` has ``lines`` lines written, calls ``kill(pid)``."""

    def __init__(self, out: Path, prefix: str, kill, lines: int = 15) -> None:
        self.out, self.prefix, self.kill, self.lines = out, prefix, kill, lines
        self.killed: tuple[str, int] | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stop.is_set() and self.killed is None:
            for partial in (self.out / ".work").glob(f"{self.prefix}*/.*.partial.jsonl"):
                try:
                    count = partial.read_bytes().count(b"\n")
                except FileNotFoundError:
                    continue
                if count >= self.lines:
                    name, pid, _ = partial.parent.name.rsplit(".", 2)
                    if self.kill(int(pid)):
                        self.killed = (name, int(pid))
                        return
            time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def _manifest_file(tmp_path: Path, corpus_paths: dict[str, Path], labels: list[str]) -> Path:
    listing = tmp_path / "items.txt"
    listing.write_text("# the fault tests' items\n" + "".join(f"{corpus_paths[label]}\n" for label in labels))
    return listing


FAULT_ITEMS = ["long/a/clip.mp4", "long/b/clip.mp4", "cuts/cut0.mp4", "cuts/cut2.mp4", "gifs/walking.gif"]


def _run_with_a_fault(corpus, pipeline, reference, tmp_path, fault, on_start=None) -> tuple[str, RunManifest]:
    """Run the fault items (from a manifest file) while ``fault(pid)`` hits a worker mid-item; check the
    results are complete and equal to the single-machine run. Returns the hit item and the manifest."""
    _, paths = corpus
    items = discover_items(str(_manifest_file(tmp_path, paths, FAULT_ITEMS)))
    out = tmp_path / "out"
    watcher = _KillMidItem(out, "clip.mp4-", fault)
    try:
        result = run_batch(items, pipeline, out, BatchOptions(actors=3, progress=False), on_start=on_start)
    finally:
        watcher.close()
    assert watcher.killed is not None, "no worker was hit mid-item"
    assert (result.done, result.failed) == (5, 0)
    _assert_complete_and_equal(out, reference, [item.name for item in items])
    manifest = RunManifest.load(out)
    assert manifest.items[watcher.killed[0]].attempts == 2
    return watcher.killed[0], manifest


def test_killed_actor_mid_item_is_retried_elsewhere_with_identical_results(cluster, corpus, pipeline, reference,
                                                                          tmp_path):
    def sigkill(pid: int) -> bool:
        os.kill(pid, signal.SIGKILL)
        return True

    killed, manifest = _run_with_a_fault(corpus, pipeline, reference, tmp_path, sigkill)
    assert all(r.attempts == 1 for name, r in manifest.items.items() if name != killed)


def test_long_video_in_four_chunks_matches_the_single_run(cluster, shared_dir, pipeline, tmp_path):
    video = str(shared_dir / "media" / LONG_VIDEO)
    single = [json.loads(line) for line in single_machine_run(pipeline, video, tmp_path / "single.jsonl")
              .read_text().splitlines()]
    items = discover_items(video)
    out = tmp_path / "out"
    result = run_batch(items, pipeline, out, BatchOptions(actors=3, chunks=4, chunk_overlap_s=3.0, progress=False))
    assert (result.done, result.failed) == (1, 0)
    stitched = [json.loads(line) for line in (out / f"{items[0].name}.jsonl").read_text().splitlines()]

    assert len(index_video(video).pts) == len(single) == len(stitched) == 1394
    assert [line["frame"] for line in stitched] == list(range(1394))
    assert [line["pts"] for line in stitched] == [line["pts"] for line in single]

    def boxes(lines):
        return [[(d["box"], d["score"]) for d in line["detections"]] for line in lines]

    def track_ids(lines):
        return {d["track_id"] for line in lines for d in line["detections"] if d["track_id"] >= 0}

    assert boxes(stitched) == boxes(single)
    assert len(track_ids(stitched)) == len(track_ids(single)) > 1
    assert not (out / ".chunks").exists()
    assert RunManifest.load(out).items[items[0].name].frames == 1394


def test_node_removed_mid_run_items_complete_elsewhere(cluster, corpus, pipeline, reference, tmp_path):
    """The cluster loses a worker node for good (the ``cluster`` fixture replaces it for later tests)."""
    pid_node: dict[int, str] = {}
    head_id = cluster.head_node.node_id
    removed: list[str] = []

    def remove_node_of(pid: int) -> bool:
        node_id = pid_node.get(pid)
        if node_id is None or node_id == head_id:
            return False  # the head holds the cluster's control store; remove a worker node only
        node = next(n for n in cluster.list_all_nodes() if n.node_id == node_id)
        cluster.remove_node(node)
        removed.append(node_id)
        return True

    killed, manifest = _run_with_a_fault(corpus, pipeline, reference, tmp_path, remove_node_of,
                                         on_start=lambda where: pid_node.__setitem__(where["pid"], where["node_id"]))
    assert removed[0][:6] not in manifest.items[killed].node
