"""Bottom-up multi-person pose: HigherHRNet maps grouped by associative embedding.

Modules: ``resize`` (official input geometry), ``aggregate`` (network outputs →
heatmaps and tags), ``grouping`` (Numba parser kernels) and
``grouping_reference`` (their plain-Python twins), ``estimator``
(:class:`HigherHRNetEstimator`, the Python API). Importing this package loads
nothing heavy; ``HigherHRNetEstimator`` is resolved on first access.
"""

from __future__ import annotations

__all__ = ["HigherHRNetEstimator"]


def __getattr__(name: str):
    if name == "HigherHRNetEstimator":
        from .estimator import HigherHRNetEstimator

        return HigherHRNetEstimator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
