"""Stage replicas: frames dealt to N processes of one stage, and re-ordered after them.

A stage with ``replicas = N`` (or ``devices = [...]``, one replica per
device) runs as N processes with the same steps, each with its own input
queue. Whoever feeds the stage (the captures, or the previous stage's
processes) holds a :class:`Dealer`: a frame goes to replica ``seq % N``
(``seq`` is the capture's running count of the source's packets, so the
choice does not depend on which upstream process sends it), and every event
(StreamStart, EndOfStream) goes to all of them.

The stage after a replicated one reads what N processes wrote onto its queue
through a :class:`Reorderer`:

- offline sources: lossless and in order. Packets wait until every earlier
  one of their source has arrived; nothing is ever dropped, and the wait is
  bounded because each replica handles its own frames in order.
- live sources keep the latest-frame policy: a packet older than one already
  passed on is dropped (its ring slot released), so nothing waits for a
  frame that a replica dropped as stale.
- events: the first StreamStart of a source goes on, its copies are
  swallowed; EndOfStream goes on once every upstream process has sent it
  (then all of that source's frames have arrived).

A replica that dies is a dead stage process like any other: the parent
aborts the run (see :mod:`streampose.runtime.process_runner`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable

from ..records import EndOfStream, FramePacket, StreamStart
from .edges import put


@dataclass
class Dealer:
    """The producer's end of a stage's input: one queue per replica of that stage."""

    queues: list[Any]

    def send(self, item: Any, should_abort: Callable[[], bool]) -> float:
        """Deal a packet, or broadcast an event; returns the seconds spent blocked."""
        if isinstance(item, FramePacket) and len(self.queues) > 1:
            if item.seq < 0:
                raise ValueError("a packet dealt to replicas needs its capture's seq")
            return put(self.queues[item.seq % len(self.queues)], item, should_abort)
        return sum(put(q, item, should_abort) for q in self.queues)

    def cancel_join_thread(self) -> None:
        for q in self.queues:
            q.cancel_join_thread()


@dataclass
class _SourceOrder:
    next_seq: int
    live: bool = False
    starts_seen: int = 0
    ends_seen: int = 0
    waiting: list = field(default_factory=list)  # heap of (seq, arrival number, packet)


class Reorderer:
    """Restores each source's frame order after ``upstream`` processes wrote to one queue.

    replica / replicas: which of its stage's replicas reads (the packets it
    gets have ``seq % replicas == replica``). release(packet) frees a dropped
    packet's pixels. :meth:`feed` takes items in arrival order and returns
    those that may go on, in order.
    """

    def __init__(self, upstream: int, release: Callable[[FramePacket], None], replica: int = 0,
                 replicas: int = 1) -> None:
        self.upstream = upstream
        self.release = release
        self.replica = replica
        self.step = replicas
        self.dropped = 0
        self._sources: dict[int, _SourceOrder] = {}
        self._arrivals = 0

    def _source(self, source_id: int) -> _SourceOrder:
        order = self._sources.get(source_id)
        if order is None:
            order = self._sources[source_id] = _SourceOrder(next_seq=self.replica)
        return order

    def feed(self, items: list[Any]) -> list[Any]:
        if self.upstream <= 1:
            return items
        out: list[Any] = []
        for item in items:
            if isinstance(item, FramePacket):
                self._packet(item, out)
            elif isinstance(item, StreamStart):
                order = self._source(item.source_id)
                order.live = item.live
                order.starts_seen += 1
                if order.starts_seen == 1:
                    out.append(item)
            elif isinstance(item, EndOfStream):
                order = self._source(item.source_id)
                order.ends_seen += 1
                if order.ends_seen == self.upstream:
                    while order.waiting:  # only after a stop: every frame sent has arrived by now
                        out.append(heapq.heappop(order.waiting)[2])
                    out.append(item)
            else:
                out.append(item)
        return out

    def _packet(self, packet: FramePacket, out: list[Any]) -> None:
        order = self._source(packet.source_id)
        if order.live:
            if packet.seq < order.next_seq:
                self.dropped += 1
                self.release(packet)  # older than a frame already passed on: stale
                return
            order.next_seq = packet.seq + self.step
            out.append(packet)
            return
        self._arrivals += 1
        heapq.heappush(order.waiting, (packet.seq, self._arrivals, packet))
        while order.waiting and order.waiting[0][0] == order.next_seq:
            out.append(heapq.heappop(order.waiting)[2])
            order.next_seq += self.step
