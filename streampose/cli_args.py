"""Argument parsing shared by the command-line tools (run_stream.py, evaluate_coco.py)."""

from __future__ import annotations

import argparse
import math

from .runtime.outcome import EXIT_USER_ERROR


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USER_ERROR, f"error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    """argparse type: a whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def attempts_count(text: str) -> int | float:
    """argparse type: a whole number >= 0, or ``inf`` (``math.inf``: no limit)."""
    if text.strip().lower() in ("inf", "infinite", "unlimited"):
        return math.inf
    if text.strip() == "0":
        return 0
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 or inf, got {text!r}") from None
