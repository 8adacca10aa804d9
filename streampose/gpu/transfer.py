"""Frames (host uint8 arrays, e.g. shared-memory ring views) → device tensors.

On CUDA a copy from pageable memory is synchronous and goes through a driver
bounce buffer; :class:`FrameUploader` copies each frame once into a pinned
(page-locked) staging buffer and issues a non-blocking host→device copy from
it, so the copy engine overlaps with whatever the GPU is doing. Staging
buffers are reused round-robin; before one is refilled the CUDA event
recorded after its previous copy is waited on, so a buffer is never
overwritten while the GPU still reads it. On the CPU the array is wrapped
without a copy (``torch.from_numpy``): the caller keeps the frame alive while
it uses the tensor (a step's frames live until ``process()`` returns).
"""

from __future__ import annotations

import numpy as np

#: Staging buffers kept per uploader: enough for a stage's batch of frames in flight.
DEFAULT_STAGING_BUFFERS = 8


class FrameUploader:
    """Upload uint8 arrays to ``device``; pinned staging + non-blocking copies on CUDA.

    device: torch device (or name); num_buffers: staging buffers reused
    round-robin (each grows to the largest array it has held).
    """

    def __init__(self, device, *, num_buffers: int = DEFAULT_STAGING_BUFFERS) -> None:
        import torch

        if num_buffers < 1:
            raise ValueError(f"num_buffers must be >= 1, got {num_buffers}")
        self.device = torch.device(device)
        self.pinned = self.device.type == "cuda"
        self._buffers: list = [None] * num_buffers
        self._events: list = [None] * num_buffers
        self._next = 0

    def upload(self, array: np.ndarray):
        """``array`` (any shape, uint8 or other numeric dtype) → tensor of the same shape/dtype on the device.

        On CUDA the returned tensor is filled asynchronously on the current
        stream; work queued on that stream afterwards sees the data.
        """
        import torch

        array = np.ascontiguousarray(array)
        if not self.pinned:
            return torch.from_numpy(array).to(self.device)
        slot = self._next
        self._next = (slot + 1) % len(self._buffers)
        event = self._events[slot]
        if event is not None:
            event.synchronize()  # the previous copy out of this buffer is done
        buffer = self._buffers[slot]
        dtype = torch.from_numpy(array[:0].reshape(-1)).dtype
        if buffer is None or buffer.numel() < array.size or buffer.dtype != dtype:
            buffer = self._buffers[slot] = torch.empty(array.size, dtype=dtype, pin_memory=True)
        staged = buffer[:array.size].view(array.shape)
        staged.numpy()[...] = array
        out = staged.to(self.device, non_blocking=True)
        if event is None:
            event = self._events[slot] = torch.cuda.Event()
        event.record()
        return out

    def upload_many(self, arrays) -> list:
        """:meth:`upload` each array, in order."""
        return [self.upload(a) for a in arrays]


def to_device(array: np.ndarray, device, uploader: FrameUploader | None = None):
    """One array to ``device``: through ``uploader`` when given, else a plain (synchronous) copy."""
    import torch

    if uploader is not None:
        return uploader.upload(array)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)
