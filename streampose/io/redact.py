"""Hiding stream passwords in anything shown or written.

``rtsp://admin:secret@cam/stream`` is shown as ``rtsp://admin:***@cam/stream``
in logs, summaries, status pages, metrics labels and result records: the
password of a camera must never reach a file, a screen or a scraper.
"""

from __future__ import annotations

import functools
import re

# scheme://user:password@ — the password is anything up to the last '@' before the host part.
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*):(?P<password>[^/\s]*)@")


@functools.lru_cache(maxsize=1024)
def mask_url(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` turned into ``scheme://user:***@``."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('head')}:***@", text)
