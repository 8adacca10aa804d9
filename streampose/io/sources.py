"""Opening a ``--source``: the spec forms, the options and the :class:`Source` contract.

Spec forms (``open_source`` decides in this order):

- ``0``, ``1``, … or ``webcam:0`` — a webcam by index (Linux: ``/dev/videoN``
  through FFmpeg's v4l2 device; macOS: avfoundation), a live source;
- ``rtsp://``, ``rtsps://``, ``http://``, ``https://`` — a network stream through
  PyAV (RTSP over TCP by default), with open/read timeouts and reconnection
  (see :mod:`streampose.io.stream_source`); an HTTP(S) address of a finite
  media file (one with a known duration) is read like a video file instead;
- ``lavfi:<filtergraph>`` — FFmpeg's lavfi device, e.g.
  ``lavfi:testsrc2=size=640x480:rate=30,realtime``, a paced live test source;
- a folder — its images, in natural sort order (``img2`` before ``img10``);
- an image file (``.jpg .jpeg .png .bmp .tif .tiff .webp .ppm .pgm .pbm .pnm``);
- any other file — a video through PyAV: any container/codec FFmpeg reads, GIF
  included, timestamps from the container.

Heavy imports (``av``, ``cv2``) happen inside the functions that need them, so
importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SourceError
from ..records import StreamStart
from .urls import redact_url

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
SOURCE_FORMS_HINT = ("give an image, a folder of images, a video file, a webcam index (0 or webcam:0), "
                     "an rtsp://, rtsps://, http:// or https:// URL, or lavfi:<filtergraph>")

_WEBCAM = re.compile(r"^(?:webcam:)?(\d+)$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


#: Default limit on pixels per frame: 50 megapixels (8K UHD is 33 MP); one such BGR frame is 150 MB,
#: and the runtime keeps several per source in shared memory.
DEFAULT_MAX_PIXELS = 50_000_000


def check_frame_size(name: str, width: int, height: int, max_pixels: int, what: str = "image") -> None:
    """SourceError when a frame of ``width`` x ``height`` (as claimed by a header) exceeds ``max_pixels``."""
    if width < 0 or height < 0 or width * height > max_pixels:
        raise SourceError(f"{what} {name!r} claims {width}x{height} pixels ({width * height / 1e6:.0f} MP), over the "
                          f"limit of {max_pixels / 1e6:g} MP per frame; raise --max-pixels if it is genuine, "
                          "or remove it")


_FIELD_KINDS = {"float": ((int, float), "a number"), "int": ((int,), "an integer"), "str": ((str,), "a string"),
                "int | float": ((int, float), "an integer or inf")}


@dataclass
class SourceOptions:
    """How sources are opened and kept alive; every field is range-checked.

    open_timeout_s: longest wait to connect and receive the first frame of a
    network stream; read_timeout_s: longest wait for data once streaming (a
    hung server is detected after this); reconnect_attempts: connection
    attempts after a failure before giving up (0: fail at once), counted
    afresh after each successful reconnect, ``math.inf`` for unlimited
    (``--reconnect-attempts inf``); backoff_initial_s / backoff_max_s:
    the wait before retry k is ``min(initial * 2**(k-1), max)``;
    analyzeduration_s: how long FFmpeg probes a network stream before the
    first frame (short = fast start); rtsp_transport: ``tcp`` or ``udp``;
    webcam_size: ``WIDTHxHEIGHT`` asked from a webcam ("" = its default);
    webcam_fps: frame rate asked from a webcam (0 = its default);
    max_pixels: the most pixels (width x height) one frame may have; an
    image, video or stream that claims more in its header is refused before
    anything is decoded (a hostile header would make the decoder allocate it).
    """

    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    reconnect_attempts: int | float = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    analyzeduration_s: float = 0.1
    rtsp_transport: str = "tcp"
    webcam_size: str = ""
    webcam_fps: float = 0.0
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            types, what = _FIELD_KINDS[str(f.type)]
            if isinstance(value, bool) or not isinstance(value, types):
                raise ValueError(f"{f.name} must be {what}, got {value!r}")
            if str(f.type) == "float":
                setattr(self, f.name, float(value))
        _positive("open_timeout_s", self.open_timeout_s)
        _positive("read_timeout_s", self.read_timeout_s)
        _positive("backoff_initial_s", self.backoff_initial_s)
        if isinstance(self.reconnect_attempts, float) and self.reconnect_attempts != math.inf:
            raise ValueError(f"reconnect_attempts must be an integer or inf, got {self.reconnect_attempts}")
        if self.reconnect_attempts < 0:
            raise ValueError(f"reconnect_attempts must be >= 0, got {self.reconnect_attempts}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(f"backoff_max_s must be >= backoff_initial_s ({self.backoff_initial_s}), "
                             f"got {self.backoff_max_s}")
        if not 0 <= self.analyzeduration_s <= 60:
            raise ValueError(f"analyzeduration_s must be in [0, 60], got {self.analyzeduration_s}")
        if self.rtsp_transport not in ("tcp", "udp"):
            raise ValueError(f"rtsp_transport must be 'tcp' or 'udp', got {self.rtsp_transport!r}")
        if self.webcam_size and not re.fullmatch(r"[1-9]\d*x[1-9]\d*", self.webcam_size):
            raise ValueError(f"webcam_size must look like 640x480, got {self.webcam_size!r}")
        if self.webcam_fps < 0:
            raise ValueError(f"webcam_fps must be >= 0, got {self.webcam_fps}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(self.backoff_initial_s * 2.0 ** (attempt - 1), self.backoff_max_s)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


class Source:
    """One opened source.

    ``start_event`` is ready as soon as the source is open (it is built from
    the first decoded frame, so an undecodable source fails in ``open_source``).
    ``frames()`` yields ``(image, pts_s)``: ``image`` BGR uint8 (H, W, 3)
    C-contiguous, ``pts_s`` seconds from the container (files), from the
    source's capture clock (live sources), or None (images). It can be
    iterated once. Live sources reconnect inside ``frames()`` and raise
    :class:`SourceError` when their attempts are exhausted. ``stats`` counts
    ``frames_decoded``, ``reconnects`` (successful), ``connect_failures`` and
    ``decode_errors`` (packets or images that failed and were skipped).
    """

    live: bool = False

    def __init__(self, start_event: StreamStart) -> None:
        self._start_event = start_event
        self._stats = {"frames_decoded": 0, "reconnects": 0, "connect_failures": 0, "decode_errors": 0}

    @property
    def start_event(self) -> StreamStart:
        return self._start_event

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file or connection; safe to call more than once."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_live_form(spec: str) -> bool:
    """Whether ``spec`` names a camera or stream (webcam index, rtsp/http address): a source that
    may be unreachable for a while rather than bad input."""
    if not isinstance(spec, str):
        return False
    if _WEBCAM.match(spec):
        return True
    scheme = _SCHEME.match(spec)
    return bool(scheme) and scheme.group(1).lower() in NETWORK_SCHEMES


def open_source(spec: str, source_id: int, options: SourceOptions | None = None) -> Source:
    """Open ``spec`` (one of the forms in the module docstring) as source ``source_id``.

    Raises :class:`SourceError` with a one-line message naming the problem and
    the fix: missing file, corrupt/truncated video, non-video file, empty
    folder, unknown source form, no webcam, unreachable stream after its retries.
    """
    options = options or SourceOptions()
    if not isinstance(spec, str) or not spec.strip():
        raise SourceError(f"empty source {spec!r}; {SOURCE_FORMS_HINT}")
    webcam = _WEBCAM.match(spec)
    if webcam:
        from .stream_source import open_webcam
        return open_webcam(spec, int(webcam.group(1)), source_id, options)
    scheme = _SCHEME.match(spec)
    if scheme:
        if scheme.group(1).lower() not in NETWORK_SCHEMES:
            raise SourceError(f"unknown source form {redact_url(spec)!r} (scheme {scheme.group(1)!r}); {SOURCE_FORMS_HINT}")
        from .stream_source import open_network_stream
        return open_network_stream(spec, source_id, options)
    if spec.startswith("lavfi:"):
        from .stream_source import open_lavfi
        return open_lavfi(spec, source_id, options)
    if spec.startswith("webcam:"):
        raise SourceError(f"bad webcam source {spec!r}: expected webcam:<index>, e.g. webcam:0")
    path = Path(spec).expanduser()
    if path.is_dir():
        from .image_sources import ImageFolderSource
        return ImageFolderSource(spec, path, source_id, options.max_pixels)
    if not path.exists():
        raise SourceError(f"source {spec!r} not found; {SOURCE_FORMS_HINT}")
    if not path.is_file():
        raise SourceError(f"source {spec!r} is not a regular file; {SOURCE_FORMS_HINT}")
    from .image_sources import IMAGE_EXTENSIONS, ImageFileSource
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFileSource(spec, path, source_id, options.max_pixels)
    from .video_source import VideoFileSource
    return VideoFileSource(spec, path, source_id, options.max_pixels)
