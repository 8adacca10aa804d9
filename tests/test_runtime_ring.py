"""The shared-memory frame ring: views without copies, cross-process pixels, unlink semantics."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest

from streampose.runtime.ring import SEGMENT_PREFIX, FrameRing


def _child_fill(spec, slot, shape, value, done):
    ring = FrameRing.attach(spec)
    ring.view(slot, shape)[:] = value
    spec.free.put(slot)
    done.wait(10)
    ring.close()


def test_view_is_a_window_on_the_slot_without_copy():
    ring = FrameRing.create(3, (4, 6, 3))
    try:
        a = ring.view(1, (4, 6, 3))
        a[:] = 9
        b = ring.view(1, (4, 6, 3))
        assert b.base is not None and np.shares_memory(a, b)
        assert (b == 9).all()
        assert (ring.view(0, (4, 6, 3)) == 0).all() and (ring.view(2, (4, 6, 3)) == 0).all()
        small = ring.view(1, (2, 3, 3))  # a smaller frame uses the start of the slot
        assert small.shape == (2, 3, 3) and small.flags.c_contiguous and small.flags.writeable
        assert ring.fits((4, 6, 3)) and ring.fits((2, 6, 3)) and not ring.fits((5, 6, 3))
        assert not ring.fits((4, 7, 3)) and not ring.fits((4, 6, 4))
        with pytest.raises(ValueError):
            ring.view(0, (5, 6, 3))
        with pytest.raises(IndexError):
            ring.view(3, (4, 6, 3))
    finally:
        ring.unlink()
        ring.close()


def test_pixels_cross_processes_and_unlinked_name_leaves_dev_shm():
    ctx = mp.get_context("spawn")
    ring = FrameRing.create(2, (48, 64, 3), free=ctx.Queue())
    done = ctx.Event()
    path = f"/dev/shm/{ring.spec.name}"
    assert os.path.basename(path).startswith(SEGMENT_PREFIX) and os.path.exists(path)
    child = ctx.Process(target=_child_fill, args=(ring.spec, 1, (48, 64, 3), 77, done))
    child.start()
    try:
        assert ring.spec.free.get(timeout=30) == 1  # the child attached and wrote
        ring.unlink()  # every process has it mapped: the name can go
        assert not os.path.exists(path)
        assert (ring.view(1, (48, 64, 3)) == 77).all()  # the mapping outlives the name
        ring.view(0, (48, 64, 3))[:] = 5
        assert (ring.view(0, (48, 64, 3)) == 5).all()
    finally:
        done.set()
        child.join(10)
        ring.unlink()
        ring.close()
    assert child.exitcode == 0
    assert not os.path.exists(path)


def test_attach_after_unlink_fails():
    ring = FrameRing.create(1, (2, 2, 3))
    ring.unlink()
    with pytest.raises(FileNotFoundError):
        FrameRing.attach(ring.spec)
    ring.close()


@pytest.mark.parametrize("slots, shape", [(0, (2, 2, 3)), (1, (0, 2, 3)), (1, (2, 2, 4))])
def test_create_rejects_bad_geometry(slots, shape):
    with pytest.raises(ValueError):
        FrameRing.create(slots, shape)
