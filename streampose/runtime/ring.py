"""A shared-memory ring of fixed-size frame slots.

Pixels cross process boundaries through one POSIX shared-memory segment cut
into ``num_slots`` equal slots; only a slot index travels through queues.
Which slots are free is kept in a ``multiprocessing.Queue`` of indices that
travels with the :class:`RingSpec`: the capture process takes a slot from it,
the last stage (or a stage that drops a stale frame) gives it back.

Lifetime (Linux facts that shape it): the parent creates the segment; every
stage process attaches to it at startup; once all have attached the parent
unlinks the name. The mappings stay valid in every process, and nothing can
leak from ``/dev/shm`` afterwards, even if the whole process group is killed.
Attaching processes are the parent's spawned children and share its resource
tracker, so their attach/exit does not unlink the segment early.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: every ring segment name starts with this, so tests can find stray ones.
SEGMENT_PREFIX = "streampose_"


@dataclass
class RingSpec:
    """What a process needs to attach to a ring (picklable at spawn time).

    slot_shape: the largest frame (H, W, 3) a slot holds; free: queue of free
    slot indices (None where a process never takes or returns slots).
    """

    name: str
    num_slots: int
    slot_shape: tuple[int, int, int]
    free: Any = None

    @property
    def slot_nbytes(self) -> int:
        h, w, c = self.slot_shape
        return h * w * c


class FrameRing:
    """Fixed slots of uint8 pixels in one shared-memory segment.

    Create with :meth:`create` (the owner, which later calls :meth:`unlink`)
    or :meth:`attach` (any other process). :meth:`view` gives a writable
    (H, W, 3) uint8 array over a slot without copying.
    """

    def __init__(self, spec: RingSpec, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self.spec = spec
        self._shm = shm
        self._owner = owner
        self._unlinked = False
        self._array = np.ndarray((spec.num_slots, spec.slot_nbytes), dtype=np.uint8, buffer=shm.buf)

    @classmethod
    def create(cls, num_slots: int, slot_shape: tuple[int, int, int], free: Any = None) -> "FrameRing":
        """A new segment of ``num_slots`` slots, each holding a frame up to ``slot_shape``."""
        if num_slots < 1:
            raise ValueError(f"num_slots must be >= 1, got {num_slots}")
        h, w, c = (int(v) for v in slot_shape)
        if h < 1 or w < 1 or c != 3:
            raise ValueError(f"slot_shape must be (H, W, 3) with H, W >= 1, got {slot_shape}")
        name = f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        spec = RingSpec(name, num_slots, (h, w, c), free)
        shm = shared_memory.SharedMemory(name=name, create=True, size=num_slots * spec.slot_nbytes)
        log.debug("created ring %s: %d slots of %s", name, num_slots, spec.slot_shape)
        return cls(spec, shm, owner=True)

    @classmethod
    def attach(cls, spec: RingSpec) -> "FrameRing":
        """Map an existing ring (in a stage process); raises FileNotFoundError if unlinked."""
        shm = shared_memory.SharedMemory(name=spec.name, create=False)
        if shm.size < spec.num_slots * spec.slot_nbytes:
            shm.close()
            raise ValueError(f"ring {spec.name} is {shm.size} bytes, expected "
                             f"{spec.num_slots * spec.slot_nbytes}")
        return cls(spec, shm, owner=False)

    def view(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        """A writable (H, W, 3) uint8 view of the first H*W*3 bytes of ``slot`` (no copy)."""
        if not 0 <= slot < self.spec.num_slots:
            raise IndexError(f"slot {slot} out of range 0..{self.spec.num_slots - 1}")
        h, w, c = shape
        n = h * w * c
        if c != 3 or n > self.spec.slot_nbytes:
            raise ValueError(f"frame shape {tuple(shape)} does not fit a slot of {self.spec.slot_shape}")
        return self._array[slot, :n].reshape(h, w, c)

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Whether a frame of ``shape`` fits a slot (same H*W*3 budget, 3 channels, no larger side)."""
        return (len(shape) == 3 and shape[2] == 3 and shape[0] <= self.spec.slot_shape[0]
                and shape[1] <= self.spec.slot_shape[1])

    def unlink(self) -> None:
        """Remove the name from /dev/shm (owner only, once); mappings stay valid."""
        if self._owner and not self._unlinked:
            self._unlinked = True
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Unmap this process's view (views obtained earlier must not be used after)."""
        self._array = None  # type: ignore[assignment]
        try:
            self._shm.close()
        except BufferError:
            # A numpy view still references the buffer (e.g. held by a step);
            # the mapping goes away with the process.
            log.debug("ring %s still referenced at close", self.spec.name)
