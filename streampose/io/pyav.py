"""PyAV, always loaded after OpenCV.

The PyAV wheels bundle a private libxcb; when ``av`` is loaded before
``cv2``, OpenCV's Qt windows hang forever at the first ``imshow`` (PyAV-Org/PyAV
issues 978 and 1050; reproduced here with av 18 and opencv-python 5.0). Every
module of streampose that needs PyAV gets it through :func:`load_av`, so a
display window works whatever was opened first.
"""

from __future__ import annotations

from types import ModuleType


def load_av() -> ModuleType:
    """The ``av`` module, with ``cv2`` imported first."""
    import cv2  # noqa: F401 - load order matters, see the module docstring

    import av

    return av
