"""Loads checkpoint files under an address-space cap and prints one JSON line per (file, loader).

Run by tests/test_hardening_checkpoints.py in a subprocess:

    python tests/checkpoint_probe.py CAP_MB FILE...

The cap is ``resource.setrlimit(RLIMIT_AS)`` at the interpreter's virtual size
after importing torch and the loaders, plus CAP_MB. Each line: file, loader
(``yolov5``: the restricted yolov5 reader; ``state_dict``: the torch
weights-only reader; ``sniff``: the CLI's recogniser, as a family name), outcome (``ok`` /
``refused`` / ``crash``), the message, and the growth of peak RSS in MB.
"""

from __future__ import annotations

import json
import os
import resource
import sys


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def main() -> int:
    cap_mb, files = int(sys.argv[1]), sys.argv[2:]
    import torch

    torch.set_num_threads(1)
    torch.ones(8).sum()
    from streampose.errors import CheckpointError
    from streampose.models.checkpoint import load_state_dict_file
    from streampose.models.yolov5.checkpoint import load_yolov5_checkpoint
    from streampose.models.recognise import recognise

    loaders = {"yolov5": load_yolov5_checkpoint,
               "state_dict": lambda path: load_state_dict_file(path, "weights"),
               "sniff": lambda path: getattr(recognise(path), "family", None)}
    baseline = status_kb("VmSize") * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (baseline + (cap_mb << 20), hard))
    for path in files:
        for name, load in loaders.items():
            peak_before = status_kb("VmHWM")
            try:
                result = load(path)
                outcome, message = "ok", repr(result)[:200]
            except CheckpointError as e:
                outcome, message = "refused", str(e)
            except BaseException as e:  # noqa: BLE001 - what the test must never see
                outcome, message = "crash", f"{type(e).__name__}: {e}"[:500]
            growth_mb = (status_kb("VmHWM") - peak_before) / 1024
            print(json.dumps({"file": os.path.basename(path), "loader": name, "outcome": outcome,
                              "message": message, "growth_mb": growth_mb}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
