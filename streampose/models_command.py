"""``streampose models``: the model registry as a table, one model per line starting with its name."""

from __future__ import annotations

import argparse
from typing import Sequence

from .cli_args import OneLineErrorParser


def main(argv: Sequence[str]) -> int:
    parser = OneLineErrorParser(prog="streampose models",
                                description="List every model streampose knows and whether it runs here now.")
    parser.add_argument("--role", choices=("detector", "topdown", "bottomup", "pose"),
                        help="only models of this role (pose: top-down and bottom-up)")
    args: argparse.Namespace = parser.parse_args(list(argv))
    from .catalog import models_table

    print("\n".join(models_table(args.role)))
    return 0
