"""Range checks for tracker and filter arguments, with errors that say what is allowed."""

from __future__ import annotations

import math


def check_range(name: str, value: float, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise ValueError naming the argument, its value and the allowed range.

    ``low``/``high`` None means unbounded on that side; ``*_open`` excludes the bound.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name}={value!r} is not a number")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "" if low is None else f"{low} {'<' if low_open else '≤'} "
        right = "" if high is None else f" {'<' if high_open else '≤'} {high}"
        raise ValueError(f"{name}={value!r} is out of range: allowed {left}{name}{right}")


def check_int(name: str, value: int, low: int, high: int | None = None) -> None:
    """Like :func:`check_range` for an integer argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} must be an integer")
    check_range(name, value, low, high)
