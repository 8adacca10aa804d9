"""Edges between pipeline parts and their policies.

Two policies, chosen per source from ``StreamStart.live``:

- offline (files, folders): blocking, lossless, in order. Back-pressure comes
  from the ring: a capture waits for a free slot.
- live (webcam, RTSP, HTTP): keep the newest frame. A packet waiting at a
  stage is dropped (and counted) as soon as a newer packet of the same live
  source is waiting behind it, so latency stays bounded by one frame per stage.

Events (:class:`StreamStart`, :class:`EndOfStream`) are never dropped and never
reordered with the packets of their source.

Puts on bounded cross-process queues always have a timeout, and every wait
checks a ``should_abort`` callback, so a dead peer can never hang a process (a
``multiprocessing.Queue`` put toward a dead consumer would otherwise block
forever). The unbounded queues (free ring slots, messages to the parent) never
block a put; at most a ring's worth of slot indices or a few messages wait in
them, and a process that stops because of a failure does not wait at exit for
its queues to be read (``cancel_join_thread``).
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import Any, Callable

from ..records import EndOfStream, FramePacket, StreamStart

#: seconds between checks of ``should_abort`` while blocked.
POLL_S = 0.1


class Aborted(Exception):
    """The process must stop now (pipeline aborted or parent gone)."""


def put(q: Any, item: Any, should_abort: Callable[[], bool]) -> float:
    """Put ``item`` on a multiprocessing queue, never blocking forever; returns seconds waited.

    Raises Aborted when ``should_abort()`` turns true while the queue is full.
    """
    t0 = time.monotonic()
    while True:
        try:
            q.put(item, timeout=POLL_S)
            return time.monotonic() - t0
        except queue.Full:
            if should_abort():
                raise Aborted() from None


def get(q: Any, should_abort: Callable[[], bool]) -> tuple[Any, float]:
    """Blocking get from a multiprocessing queue; returns (item, seconds waited). Raises Aborted."""
    t0 = time.monotonic()
    while True:
        if should_abort():
            raise Aborted()
        try:
            item = q.get(timeout=POLL_S)
            return item, time.monotonic() - t0
        except queue.Empty:
            continue


def drain(q: Any, limit: int) -> list[Any]:
    """Up to ``limit`` items already waiting on ``q``, without blocking."""
    items = []
    while len(items) < limit:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            break
    return items


def drop_stale(items: list[Any], live_sources: set[int]) -> tuple[list[Any], list[FramePacket]]:
    """Apply the live policy to a backlog: (kept items in order, dropped packets).

    A packet of a live source is dropped when a newer packet of the same source
    follows it in ``items``; offline packets and all events are kept.
    """
    if not live_sources:
        return items, []
    newest: dict[int, int] = {}
    for i, item in enumerate(items):
        if isinstance(item, FramePacket) and item.source_id in live_sources:
            newest[item.source_id] = i
    kept, dropped = [], []
    for i, item in enumerate(items):
        if (isinstance(item, FramePacket) and item.source_id in live_sources
                and newest[item.source_id] != i):
            dropped.append(item)
        else:
            kept.append(item)
    return kept, dropped


class Handoff:
    """A thread-safe hand-off from one producer thread to one consumer.

    policy "block": up to ``capacity`` items wait, the producer blocks beyond
    (lossless). policy "newest": at most one item waits; a newer one replaces
    it and ``dropped`` counts the replaced ones. :meth:`put_last` always
    appends (for end markers). ``notify`` (optional) is set on every put so a
    consumer can wait on several hand-offs at once.
    """

    def __init__(self, policy: str = "block", capacity: int = 2,
                 notify: threading.Event | None = None) -> None:
        if policy not in ("block", "newest"):
            raise ValueError(f"policy must be 'block' or 'newest', got {policy!r}")
        self.policy = policy
        self.capacity = max(1, capacity) if policy == "block" else 1
        self.dropped = 0
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._notify = notify

    def put(self, item: Any) -> bool:
        """Hand over ``item``; False when the hand-off was closed (the item is discarded)."""
        with self._cond:
            if self.policy == "newest":
                if self._items and not self._closed:
                    self._items.pop()
                    self.dropped += 1
            else:
                while len(self._items) >= self.capacity and not self._closed:
                    self._cond.wait(POLL_S)
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
        if self._notify is not None:
            self._notify.set()
        return True

    def put_last(self, item: Any) -> None:
        """Append an end marker, regardless of capacity or closing."""
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()
        if self._notify is not None:
            self._notify.set()

    def get(self, timeout: float | None = None) -> Any | None:
        """The oldest waiting item, or None after ``timeout`` seconds (0: don't wait)."""
        with self._cond:
            if not self._items and timeout:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Wake and refuse a blocked producer (its frames are no longer wanted)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def is_event(item: Any) -> bool:
    return isinstance(item, (StreamStart, EndOfStream))
