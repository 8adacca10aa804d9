"""Credentials in URLs: the one place that masks them.

A stream address may carry a password (``rtsp://user:password@host/path``).
The real address is used only where a connection is made (the source opener,
a sink connecting to a server); everywhere else a URL is shown or written —
log records, error messages, the overlay text, window titles, the
``source.name`` of JSON-lines and CSV rows, run summaries — it goes through
:func:`redact_url` (one URL) or :func:`redact_text` (any text that may
contain URLs), which keep the user name and replace the password with
``***``::

    rtsp://user:password@cam/live  ->  rtsp://user:***@cam/live
    https://token@host/x           ->  https://***@host/x

Any scheme is handled (``rtsp``, ``rtsps``, ``http(s)``, ``mqtt``, ``srt``, …),
so sinks that connect to servers use the same helpers for their messages.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme "://" then the authority (up to the first / ? # or whitespace); the userinfo
# is what precedes the authority's last "@" (an unencoded "@" in a password stays masked).
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s'\"<>]*)")


def _redact_authority(rest: str) -> str:
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1:
            end = min(end, i)
    authority = rest[:end]
    at = authority.rfind("@")
    if at == -1:
        return rest
    userinfo = authority[:at]
    user, colon, _password = userinfo.partition(":")
    # "user:password@" keeps the user; a lone "token@" is all secret.
    masked = f"{user}:{MASK}" if colon else MASK
    return masked + rest[at:]


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo replaced by ``***`` (unchanged without one).

    Not a URL (no ``scheme://``): returned unchanged.
    """
    match = _URL.match(url)
    if match is None:
        return url
    return match.group("scheme") + _redact_authority(url[match.end("scheme"):])


def redact_text(text: str) -> str:
    """Every URL inside ``text`` (a message, a traceback) passed through :func:`redact_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: m.group("scheme") + _redact_authority(m.group("rest")), text)

