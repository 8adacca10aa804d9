"""Which waiting items a stage works on next: live frames first, offline frames in turns.

Every stage keeps what arrived on its input queue in one FIFO per source
(so each source's packets and events stay in order) and takes work in
*rounds*, checking its input queue between rounds. A round is either

- a live round: every waiting item of every live source (the stage's live
  policy then keeps only the newest packet of each), sources in rotating
  order; or
- an offline round: at most one batch (``batch_size`` packets, plus the
  events between them) of one offline source, the offline sources taking
  turns.

Live rounds come first, except that after a live round an offline round is
owed and served next; an owed round takes one frame of each offline source.
So a live frame never waits behind an offline source's backlog: at most one
offline batch already being worked on when it arrives, at each stage. When
the stage is saturated, sources share it frame by frame (each live source its
newest frame, each offline source one frame, per pair of rounds); in the
stage's spare time offline sources get whole batches. Offline sources keep
their lossless policy against their own frames (nothing of theirs is ever
dropped, only postponed) and are never starved. A batch may mix sources.

The policy is "priority to live frames, with a guaranteed per-source share";
it knows nothing about processes (the process runtime and tests drive it).
"""

from __future__ import annotations

import collections
from typing import Any

from ..records import FramePacket, StreamStart


class FairScheduler:
    """Per-source FIFOs of waiting stage input; :meth:`next_round` picks the next work."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = max(1, batch_size)
        self._queues: dict[int, collections.deque] = {}
        self._live: set[int] = set()
        self._turn = 0  # rotates the starting source so no source is always served first
        self._offline_turn = 0
        self._offline_owed = False  # a live round was served: the next round is an offline one

    def add(self, items: list[Any]) -> None:
        """Queue items (packets and events, each with a ``source_id``) as they arrived."""
        for item in items:
            if isinstance(item, StreamStart) and item.live:
                self._live.add(item.source_id)
            self._queues.setdefault(item.source_id, collections.deque()).append(item)

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def empty(self) -> bool:
        return not any(self._queues.values())

    def next_round(self) -> list[Any]:
        """The items of one round (see the module docstring); [] when nothing waits."""
        live = [sid for sid, q in self._queues.items() if q and sid in self._live]
        offline = sorted(sid for sid, q in self._queues.items() if q and sid not in self._live)
        items: list[Any] = []
        if live and not (self._offline_owed and offline):
            live.sort()
            start = self._turn % len(live)
            self._turn += 1
            for sid in live[start:] + live[:start]:
                items.extend(self._queues[sid])
                self._queues[sid].clear()
            self._offline_owed = True
        elif offline and self._offline_owed:
            for sid in offline:  # the share owed after a live round: one frame of each offline source
                items.extend(self._take_batch(self._queues[sid], limit=1))
            self._offline_owed = False
        elif offline:
            sid = offline[self._offline_turn % len(offline)]
            self._offline_turn += 1
            items = self._take_batch(self._queues[sid], limit=self.batch_size)
        for sid in [sid for sid, q in self._queues.items() if not q]:
            del self._queues[sid]  # an ended source's id may come back (a source that rejoins)
        return items

    @staticmethod
    def _take_batch(queue: collections.deque, limit: int) -> list[Any]:
        """Events and up to ``limit`` packets from the front of one offline source's FIFO."""
        taken: list[Any] = []
        packets = 0
        while queue:
            item = queue[0]
            if isinstance(item, FramePacket):
                if packets >= limit:
                    break
                packets += 1
            taken.append(queue.popleft())
        return taken
