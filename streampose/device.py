"""Choosing the torch device and CPU threads from configuration."""

from __future__ import annotations

from .errors import ConfigError


def resolve_device(name: str = "auto"):
    """``"auto"`` → CUDA when present, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given.

    Raises ConfigError for an unknown name or CUDA asked for where there is none.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for but CUDA is not available here; use --device cpu")
    return device


#: The one half-precision rule, for every model step (``precision = "fp16"``, yolov5 ``half = true``):
#: fp16 runs on CUDA only; asking for it on a CPU is an error, never a silent fallback to fp32.
FP16_NEEDS_CUDA = "fp16 needs a CUDA device; use fp32 (or bf16 where the step offers it) on the CPU"


def check_fp16_device(device, option: str) -> None:
    """ValueError ``"<option>: fp16 needs a CUDA device; ..."`` unless ``device`` (torch.device) is CUDA."""
    if getattr(device, "type", str(device)) != "cuda":
        raise ValueError(f"{option}: {FP16_NEEDS_CUDA} (device is {device})")


def check_threads(threads: int) -> None:
    """Validate a ``threads`` step option (ValueError naming it)."""
    if threads < 0:
        raise ValueError(f"threads: must be 0 (the process default) or more, got {threads}")


def set_torch_threads(threads: int) -> None:
    """Use ``threads`` torch CPU threads in this process; 0 keeps the default.

    The default is the stage process's share of the cores (see
    ``streampose.runtime.worker.share_cpu_threads``).
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
