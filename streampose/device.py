"""Choosing the torch device and CPU threads from configuration."""

from __future__ import annotations

from .errors import ConfigError


def device_type(device) -> str:
    """``"cpu"``, ``"cuda"``, ...: the type of a torch.device or of a device name such as ``"cuda:1"``."""
    return getattr(device, "type", str(device).split(":")[0])


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

    The default is the runtime's choice by measured stage cost (see
    ``streampose.runtime.threads``).
    """
    if threads:
        import torch

        torch.set_num_threads(threads)


#: CPU flags (Linux /proc/cpuinfo names) of native bfloat16 math, best first.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_support() -> str | None:
    """The CPU's native bf16 instruction set (``"amx_bf16"`` or ``"avx512_bf16"``), None without one.

    Without native support oneDNN emulates bf16, which is slower than fp32,
    so bf16 is refused there. Read from /proc/cpuinfo (Linux); elsewhere None.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return next((flag for flag in BF16_CPU_FLAGS if flag in flags), None)
    except OSError:
        return None
    return None


def resolve_precision(precision: str, device, bf16_default_on_cpu: bool = False) -> str:
    """The precision a model step runs in: ``fp32``, ``fp16`` (CUDA) or ``bf16``.

    ``"auto"``: bf16 on a CPU with native bf16 when the step's model lost no
    accuracy in bf16 (``bf16_default_on_cpu``, from the measured table in
    BENCHMARKS.md "CPU precision"), else fp32. Raises ConfigError for fp16
    on a CPU, and for bf16 on a CPU without native bf16 (AMX or AVX512-BF16).
    """
    kind = device_type(device)
    if precision == "auto":
        return "bf16" if kind == "cpu" and bf16_default_on_cpu and cpu_bf16_support() else "fp32"
    if precision == "fp16" and kind != "cuda":
        raise ConfigError("precision: fp16 needs a CUDA device; use bf16 (CPUs with AMX or AVX512-BF16) or fp32")
    if precision == "bf16" and kind == "cpu" and cpu_bf16_support() is None:
        raise ConfigError("precision: bf16 needs a CPU with AMX or AVX512-BF16 (this one has neither, so it "
                          "would be emulated and slower); use fp32")
    return precision
