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


def fraction(text: str) -> float:
    """argparse type: a number between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value:g}")
    return value


def name_list(text: str) -> list[str]:
    """argparse type: comma-separated names (``person,car``)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def positive_int_list(text: str) -> list[int]:
    """argparse type: comma-separated whole numbers ≥ 1 (``4,8,16``)."""
    return [positive_int(part.strip()) for part in name_list(text)]
