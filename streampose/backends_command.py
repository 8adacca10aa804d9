"""``streampose backends [--measure]``: the table that picks each model step's default backend on this machine.

Without ``--measure``: prints the table measured here (items/s per backend per
model family) and what a step with ``backend = "auto"`` runs. With it: times
every model family (or ``--family``) on every installed backend and writes the
table (see :mod:`streampose.export.backend_choice`), keeping the rows it did
not re-measure.
"""

from __future__ import annotations

import sys
from typing import Sequence

from .errors import UserError
from .export.backend_choice import Probe


def probes() -> dict[str, Probe]:
    """Model family (the ``model_name`` each step passes) → what to time: a registry entry's network at the
    input its step usually runs, in the step's ``precision = "auto"``."""
    from .builtin_steps import movenet, yolov5, yolox

    return {"hrnet": Probe("pose_hrnet_w32_256x192", (8, 3, 256, 192), False),
            "higherhrnet": Probe("pose_higher_hrnet_w32_512", (1, 3, 512, 512), False),
            "movenet": Probe("movenet_lightning", (8, 3, 192, 192), movenet.BF16_DEFAULT_ON_CPU),
            "movenet_multipose": Probe("movenet_multipose_lightning", (1, 3, 256, 256), False),
            "yolov5": Probe("yolov5n", (1, 3, 384, 640), yolov5.BF16_DEFAULT_ON_CPU),
            "yolox": Probe("light_person_detector_192", (1, 3, 320, 320), yolox.BF16_DEFAULT_ON_CPU)}


def build_parser():
    from .cli_args import OneLineErrorParser, name_list, positive_int

    parser = OneLineErrorParser(prog="streampose backends", description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", action="store_true", help="time every backend here and write the table")
    parser.add_argument("--family", type=name_list, metavar="NAMES",
                        help="with --measure: only these model families, comma-separated (e.g. hrnet,movenet)")
    parser.add_argument("--rounds", type=positive_int, default=5, help="timed forwards per backend (median; default 5)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    return parser


def table_lines(table: dict | None, machine: str) -> list[str]:
    """The table as text: one row per model family and device type."""
    from .export.backend_choice import table_path

    if table is None:
        return [f"no backend table at {table_path()}: every step with backend = \"auto\" runs torch; "
                "measure one with `streampose backends --measure`"]
    lines = [f"{table_path()} (measured {table.get('measured', '?')})"]
    if table["machine"] != machine:
        lines.append(f"measured on another machine ({table['machine']}): ignored, steps run torch")
    for family, rows in sorted(table["models"].items()):
        for device_type, row in sorted(rows.items()):
            rates = ", ".join(f"{b} {r:g}/s" for b, r in row.get("items_per_s", {}).items())
            lines.append(f"{family:<18} {device_type:<5} fastest {row.get('fastest', '?'):<12} ({rates})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    import torch

    from .export.backend_choice import machine_id, measure, merge_into, read_table, write_table

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        if args.measure:
            try:
                device = torch.device(args.device)
            except RuntimeError as e:
                print(f"error: --device: {e} (use cpu or cuda[:N])", file=sys.stderr)
                return 2
            if device.type == "cuda" and not torch.cuda.is_available():
                print("error: --device cuda: no CUDA device here; use --device cpu", file=sys.stderr)
                return 2
            table = merge_into(measure(probes(), device, families=args.family, rounds=args.rounds), read_table())
            print(f"wrote {write_table(table)}")
        print("\n".join(table_lines(read_table(), machine_id())))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
