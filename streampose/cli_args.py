"""Argument parsing shared by the command-line tools (run_stream.py, evaluate_coco.py)."""

from __future__ import annotations

import argparse

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
