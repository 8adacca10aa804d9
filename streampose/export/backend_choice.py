"""The default inference backend: whichever a table measured on this machine says is fastest.

``streampose backends --measure`` times each model family's network on every
backend installed here, prepared as the steps prepare it (torch in its
``precision = "auto"``, channels-last with batch norms folded on the CPU; the
others an ONNX export in fp32), and writes the table to the user's cache
(``$XDG_CACHE_HOME/streampose/backends.json``, or the file
``$STREAMPOSE_BACKEND_TABLE`` names). A model step whose ``backend`` is
``"auto"`` (the default) runs its network on the table's fastest backend for
its model family and device type. Without a table, with one measured on another
machine (CPU model, cores, GPUs and torch version differ), or for a family the
table lacks, it is torch: the fastest measured on the development machine
(BENCHMARKS.md "Speed where it counts" (d)).

A step whose options only torch can honour (a precision other than auto/fp32,
MoveNet's ``quantized``, YOLOv5's ``half``, ``compile``) always resolves
``"auto"`` to torch.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError

log = logging.getLogger(__name__)

TABLE_ENV = "STREAMPOSE_BACKEND_TABLE"
TABLE_VERSION = 1


@dataclass(frozen=True)
class Probe:
    """What is timed for one model family: a registry entry's network at the input its step usually runs."""

    entry: str
    input_shape: tuple[int, int, int, int]
    bf16_default_on_cpu: bool


def table_path() -> Path:
    """Where the measured table lives (``$STREAMPOSE_BACKEND_TABLE``, else the user's cache)."""
    if os.environ.get(TABLE_ENV):
        return Path(os.environ[TABLE_ENV]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "streampose" / "backends.json"


def machine_id() -> str:
    """What a measured table is valid for: CPU model, logical cores, CUDA devices, torch version."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return f"{cpu} x{os.cpu_count()}; gpus: {', '.join(gpus) or 'none'}; torch {torch.__version__}"


def read_table(path: Path | None = None) -> dict | None:
    """The measured table, or None when there is none. UserError (one line) for a file that is not one."""
    path = path or table_path()
    if not path.is_file():
        return None
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a backend table ({e}); delete it or re-measure with "
                        "`streampose backends --measure`") from e
    if not (isinstance(table, dict) and table.get("version") == TABLE_VERSION and isinstance(table.get("machine"), str)
            and isinstance(table.get("models"), dict)):
        raise UserError(f"{path}: not a backend table of version {TABLE_VERSION}; delete it or re-measure with "
                        "`streampose backends --measure`")
    return table


def fastest_backend(model_name: str, device, path: Path | None = None) -> str:
    """The measured fastest backend for ``model_name`` on ``device`` here; torch without a table for this machine."""
    from ..device import device_type
    from .backends import check_backend

    table = read_table(path)
    if table is None or table["machine"] != machine_id():
        return "torch"
    row = table["models"].get(model_name, {}).get(device_type(device))
    backend = row.get("fastest") if isinstance(row, dict) else None
    if not backend or backend == "torch":
        return "torch"
    try:
        check_backend(backend, device)
    except ConfigError as e:  # measured with a package since removed: torch still runs
        log.warning("%s: the measured fastest backend %s cannot run now (%s); using torch", model_name, backend, e)
        return "torch"
    return backend


def resolve_backend(backend: str, model_name: str, device, *, torch_only: bool = False) -> str:
    """A step's ``backend`` option made concrete: ``"auto"`` → :func:`fastest_backend` (torch when
    ``torch_only``: the step has options only torch honours); any other name as given."""
    if backend != "auto":
        return backend
    if torch_only:
        return "torch"
    chosen = fastest_backend(model_name, device)
    if chosen != "torch":
        log.info("%s: backend %s (measured fastest here, %s)", model_name, chosen, table_path())
    return chosen


# --- measuring ----------------------------------------------------------------------------------------

def installed_backends(device) -> list[str]:
    """The backends that can run on ``device`` here, torch first."""
    from .backends import BACKENDS, check_backend

    found = []
    for backend in BACKENDS:
        try:
            check_backend(backend, device)
        except ConfigError:
            continue
        found.append(backend)
    return found


def time_backend(network: Any, probe: Probe, backend: str, device, rounds: int) -> float:
    """Items (crops or frames) per second of ``network`` prepared for ``backend`` as a step prepares it."""
    import torch

    from .backends import prepare_network

    prepared = prepare_network(copy.deepcopy(network).to(device), backend=backend, precision="auto", device=device,
                               bf16_default_on_cpu=probe.bf16_default_on_cpu, model_name=probe.entry,
                               input_shape_chw=probe.input_shape[1:] if backend != "torch" else None)
    x = torch.randn(*probe.input_shape, device=device)
    seconds = []
    with torch.inference_mode():
        for _ in range(2):  # warm-up: kernels picked, sessions compiled
            prepared(x)
        for _ in range(rounds):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            prepared(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
    return probe.input_shape[0] / statistics.median(seconds)


def measure(probes: dict[str, Probe], device, *, families: list[str] | None = None, rounds: int = 5) -> dict:
    """A table for this machine: items/s per backend and the fastest, per model family (``probes``: family →
    what to time) and ``device`` type. UserError for a family not in ``probes``."""
    from ..models import registry

    unknown = sorted(set(families or []) - set(probes))
    if unknown:
        raise UserError(f"unknown model family {', '.join(unknown)}; choose from {', '.join(probes)}")
    backends = installed_backends(device)
    models: dict[str, dict] = {}
    for family, probe in probes.items():
        if families and family not in families:
            continue
        built = registry.build_random(probe.entry)
        network = (getattr(built, "network", None) or getattr(built, "net", None) or built).eval()
        rates = {b: time_backend(network, probe, b, device, rounds) for b in backends}
        models[family] = {device.type: {"items_per_s": {b: round(r, 2) for b, r in rates.items()},
                                        "fastest": max(rates, key=rates.get),
                                        "input_shape": list(probe.input_shape)}}
        log.info("%s on %s: %s", family, device.type, models[family][device.type])
    return {"version": TABLE_VERSION, "machine": machine_id(), "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
            "rounds": rounds, "models": models}


def merge_into(table: dict, old: dict | None) -> dict:
    """``table`` with the rows of ``old`` it did not measure kept (same machine only)."""
    if old is None or old.get("machine") != table["machine"]:
        return table
    models = {family: dict(rows) for family, rows in old["models"].items()}
    for family, rows in table["models"].items():
        models.setdefault(family, {}).update(rows)
    return table | {"models": models}


def write_table(table: dict, path: Path | None = None) -> Path:
    """Write the table atomically (a half-written file is never left where a step reads it)."""
    path = path or table_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    partial.replace(path)
    return path
