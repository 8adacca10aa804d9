"""GPU fast path helpers: host→device transfer and network acceleration settings.

- :mod:`.transfer`: pinned host staging buffers and non-blocking uploads of
  uint8 frames (shared-memory ring views) to the device.
- :mod:`.acceleration`: cuDNN autotuning set from step options, fp16/bf16
  autocast and channels-last wrappers, optional ``torch.compile``.

Importing this package (not its modules) imports no torch; nothing is set at import.
"""
