"""On-screen display: one OpenCV window per source; ``q`` or Esc asks for a graceful stop."""

from __future__ import annotations

import numpy as np

from ..errors import SinkError
from .outputs import display_problem
from .urls import redact_url

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27: Esc


class Display:
    """Shows frames in windows named ``<title> [<source id>] <source name>``."""

    def __init__(self, title: str = "streampose") -> None:
        problem = display_problem()
        if problem:
            raise SinkError(f"cannot open a window: {problem}; run without --show (write an --output instead)")
        self.title = title
        self._windows: dict[int, str] = {}

    def show(self, source_id: int, source_name: str, image: np.ndarray) -> bool:
        """Show ``image`` (BGR uint8) in the source's window; True when a quit key was pressed."""
        import cv2

        name = self._windows.get(source_id)
        if name is None:
            name = self._windows[source_id] = f"{self.title} [{source_id}] {redact_url(source_name)}"
            cv2.namedWindow(name, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        cv2.imshow(name, image)
        return (cv2.waitKey(1) & 0xFF) in QUIT_KEYS

    def close(self) -> None:
        import cv2

        if self._windows:
            self._windows.clear()
            cv2.destroyAllWindows()
            cv2.waitKey(1)  # let the GUI thread process the close
