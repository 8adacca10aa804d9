"""Inference settings of a pose or detection network on the GPU, chosen by step options.

- :func:`configure_cudnn`: ``torch.backends.cudnn.benchmark`` (autotuning of
  convolution algorithms per input shape), called from a step's ``start()``,
  never at import.
- :class:`AcceleratedNetwork`: wraps a network so its forward runs under
  ``torch.autocast`` (fp16 or bf16; BatchNorm and softmax stay fp32 as
  autocast keeps them) and/or with channels-last inputs and weights, and
  returns float32 outputs so decoders see the same dtype as on the fp32 path.
  The wrapped network's ``spec`` stays reachable as ``wrapper.spec``.
- ``compile``: ``torch.compile`` of the wrapped forward (``mode=
  "reduce-overhead"`` uses CUDA graphs on CUDA); shapes should be fixed (a new
  batch size recompiles), so it is off by default and only worth it where a
  benchmark shows a gain.

Tolerance (stated, see tests/test_gpu_path_precision.py): fp16/bf16 keypoints
equal the fp32 ones within 0.5 px at the 256x192 crop scale (heatmap argmax
may move one heatmap cell at a near-tie; such joints are counted, not hidden).
"""

from __future__ import annotations

import logging

import torch

from ..device import check_fp16_device

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")


def configure_cudnn(benchmark: bool) -> None:
    """Set cuDNN autotuning for this process (a step option; no effect without CUDA)."""
    torch.backends.cudnn.benchmark = bool(benchmark)


def _autocast_dtype(precision: str):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def _float32(outputs):
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_float32(o) for o in outputs)
    return outputs.float() if outputs.is_floating_point() else outputs


class AcceleratedNetwork(torch.nn.Module):
    """``network`` run in ``precision`` (fp32/fp16/bf16 autocast) and optionally channels-last.

    Outputs (tensor or tuple of tensors) come back float32. fp16 on the CPU
    is refused (CPU autocast is bf16); bf16 works on both.
    """

    def __init__(self, network, *, precision: str = "fp32", channels_last: bool = False) -> None:
        super().__init__()
        self.dtype = _autocast_dtype(precision)
        self.precision = precision
        self.inner = network
        self.spec = getattr(network, "spec", None)
        device = next(network.parameters()).device
        self.device_type = device.type
        if precision == "fp16":
            check_fp16_device(device, "precision")
        self.channels_last = bool(channels_last)
        if self.channels_last:
            network.to(memory_format=torch.channels_last)

    def __getattr__(self, name: str):
        # The wrapped network's own attributes (e.g. MoveNet's decode_rounding) stay reachable.
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward(self, x):
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype is None:
            return self.inner(x)
        with torch.autocast(self.device_type, dtype=self.dtype):
            return _float32(self.inner(x))


def default_channels_last(device) -> bool:
    """Whether a step runs its convolutions channels-last when its options do not say.

    On the CPU, yes: oneDNN's NHWC convolutions measured 1.06-1.15x (HRNet-w32) to
    1.2-3.8x (YOLOv5n, YOLOX, MoveNet) the speed of NCHW in fp32 here (BENCHMARKS.md
    "Channels-last on the CPU", ``scripts/bench_channels_last.py``). On CUDA it is
    not measured, so the NCHW default stays.
    """
    from ..device import device_type

    return device_type(device) == "cpu"


def default_fold_batchnorm(device) -> bool:
    """Whether a step folds its batch norms into the convolutions before them (:mod:`.batchnorm_folding`).

    On the CPU, yes: it removes one pass over the activations per layer (HRNet-w32
    and HigherHRNet-w32 1.08x on top of channels-last, BENCHMARKS.md "Batch norm folding"). On CUDA it is not
    measured, so the networks run as loaded.
    """
    from ..device import device_type

    return device_type(device) == "cpu"


def network_in_precision(network, precision: str, device, bf16_default_on_cpu: bool = False,
                         channels_last: bool | None = None, compile: bool = False,
                         fold_batchnorm: bool | None = None):
    """``network`` run as a step's options say: ``precision`` resolved for ``device``
    (:func:`streampose.device.resolve_precision`: ConfigError where the device lacks it),
    channels-last where ``channels_last`` says (None: :func:`default_channels_last`), its batch
    norms folded (in place) where ``fold_batchnorm`` says (None: :func:`default_fold_batchnorm`),
    compiled on request."""
    from ..device import resolve_precision
    from .batchnorm_folding import fold_batchnorm as fold

    resolved = resolve_precision(precision, device, bf16_default_on_cpu)  # refuse before changing the network
    if channels_last is None:
        channels_last = default_channels_last(device)
    if fold_batchnorm if fold_batchnorm is not None else default_fold_batchnorm(device):
        log.debug("%s: %d batch norms folded", type(network).__name__, fold(network.eval()))
    return accelerate_network(network, precision=resolved, channels_last=channels_last, compile=compile)


def accelerate_network(network, *, precision: str = "fp32", channels_last: bool = False,
                       compile: bool = False):
    """The network to run: ``network`` itself for fp32 without extras, else an :class:`AcceleratedNetwork`.

    compile: wrap the forward with ``torch.compile`` (mode ``reduce-overhead``
    on CUDA: CUDA graphs for fixed shapes; ``default`` elsewhere).
    """
    _autocast_dtype(precision)
    if precision == "fp32" and not channels_last and not compile:
        return network
    wrapped = AcceleratedNetwork(network, precision=precision, channels_last=channels_last).eval()
    if compile:
        mode = "reduce-overhead" if wrapped.device_type == "cuda" else "default"
        log.info("torch.compile(mode=%s) of %s", mode, type(network).__name__)
        wrapped.forward = torch.compile(wrapped.forward, mode=mode, dynamic=False)
    return wrapped
