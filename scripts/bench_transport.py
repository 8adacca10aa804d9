#!/usr/bin/env python3
"""Per-frame cost of handing frames between processes: shared-memory ring vs pickled arrays.

Both variants run side by side in one run (alternating rounds, median per
variant), between a spawned producer process and this process as consumer:

- ring: the producer takes a free slot, copies the frame into it (the one
  copy a capture makes), and sends a FramePacket (slot index + metadata) on a
  multiprocessing.Queue; the consumer views the slot (no copy), reads it,
  and gives the slot back — what the runtime does per frame and edge.
- queue: the producer puts the numpy array itself on a multiprocessing.Queue
  (pickled, written through a pipe, unpickled into a new array).

Cost per frame = wall time of the round / frames. Usage::

    python scripts/bench_transport.py [--frames 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout; spawned workers inherit sys.path
    sys.path.insert(0, str(REPO_ROOT))

from streampose.records import FramePacket  # noqa: E402
from streampose.runtime.ring import FrameRing, RingSpec  # noqa: E402

SIZES = {"640x480": (480, 640, 3), "1920x1080": (1080, 1920, 3)}
SLOTS = 8


def _produce_ring(spec: RingSpec, out, n: int, shape, ready, go) -> None:
    ring = FrameRing.attach(spec)
    frame = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    for slot in range(spec.num_slots):  # steady state: the slots' pages are mapped here already
        ring.view(slot, shape)[:] = 0
    ready.set()
    go.wait()
    for i in range(n):
        slot = spec.free.get()
        np.copyto(ring.view(slot, shape), frame)
        out.put(FramePacket(0, "bench", i, None, shape, time.monotonic(), slot))
    out.put(None)
    ring.close()


def _produce_queue(out, n: int, shape, ready, go) -> None:
    frame = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    ready.set()
    go.wait()
    for i in range(n):
        out.put((i, frame))
    out.put(None)


def ring_round(ctx, n: int, shape) -> float:
    ring = FrameRing.create(SLOTS, shape, free=ctx.Queue())
    for slot in range(SLOTS):
        ring.spec.free.put(slot)
    out, ready, go = ctx.Queue(SLOTS + 1), ctx.Event(), ctx.Event()
    producer = ctx.Process(target=_produce_ring, args=(ring.spec, out, n, shape, ready, go))
    producer.start()
    ready.wait()  # started, attached, slots touched: outside the timed part
    for slot in range(SLOTS):
        int(ring.view(slot, shape).sum(dtype=np.uint64))
    t0 = time.perf_counter()
    go.set()
    checksum = 0
    while (packet := out.get()) is not None:
        image = ring.view(packet.slot, packet.shape)
        checksum += int(image[packet.shape[0] // 2, packet.shape[1] // 2, 0])  # the consumer reads it
        ring.spec.free.put(packet.slot)
    elapsed = time.perf_counter() - t0
    producer.join()
    ring.unlink()
    ring.close()
    return elapsed / n


def queue_round(ctx, n: int, shape) -> float:
    out, ready, go = ctx.Queue(SLOTS), ctx.Event(), ctx.Event()
    producer = ctx.Process(target=_produce_queue, args=(out, n, shape, ready, go))
    producer.start()
    ready.wait()
    t0 = time.perf_counter()
    go.set()
    checksum = 0
    while (item := out.get()) is not None:
        image = item[1]
        checksum += int(image[shape[0] // 2, shape[1] // 2, 0])
    elapsed = time.perf_counter() - t0
    producer.join()
    return elapsed / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200, help="frames per round (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per variant, alternating (default 3)")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    print(f"{'frame size':<12}{'ring ms/frame':>15}{'queue ms/frame':>16}{'ring speed-up':>15}")
    for name, shape in SIZES.items():
        ring_ms, queue_ms = [], []
        for _ in range(args.rounds):
            ring_ms.append(1000 * ring_round(ctx, args.frames, shape))
            queue_ms.append(1000 * queue_round(ctx, args.frames, shape))
        r, q = statistics.median(ring_ms), statistics.median(queue_ms)
        print(f"{name:<12}{r:>15.3f}{q:>16.3f}{q / r:>14.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
