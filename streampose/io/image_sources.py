"""Image sources: one image file, or a folder of images.

A folder is read in natural sort order (``img2.jpg`` before ``img10.jpg``,
case-insensitive); files whose extension is not in ``IMAGE_EXTENSIONS`` are
ignored. Folders of mixed sizes are handled explicitly: the start event's
width/height are the largest width and the largest height over the folder
(read from the file headers, EXIF orientation applied, without decoding), and
every frame is yielded at its own size. Images are decoded by OpenCV as BGR,
8 bits, EXIF orientation applied. A file that cannot be decoded is a
:class:`SourceError` naming it (skipping it would shift the frame numbers the
image sink names its outputs after). Image frames have no timestamp (pts None).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import SourceError
from ..records import StreamStart
from .sources import DEFAULT_MAX_PIXELS, Source, check_frame_size

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm")

# EXIF orientations 5-8 rotate by 90 degrees: width and height swap.
_EXIF_ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: ``a2`` < ``a10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in natural order (the folder source's frame order)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: Path) -> np.ndarray | None:
    """Decode ``path`` to BGR uint8 (H, W, 3), EXIF orientation applied; None when undecodable."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)  # cv2.imread cannot open non-ASCII paths on Windows
    except OSError:
        return None
    if data.size == 0:
        return None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:  # e.g. OpenCV's own pixel limit: the caller reports the file
        return None
    return None if image is None else np.ascontiguousarray(image)


def image_size(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image as :func:`read_image` returns it, from its header when possible.

    The size the header claims is checked against ``max_pixels`` before
    anything else of the file is read (Pillow reads a PNG's trailing chunks
    for its EXIF data, and a decoder allocates the claimed size). Pillow's own
    decompression-bomb check is off here: this one names the file and the limit.
    Raises SourceError for a size over the limit or a file that cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            width, height = im.size
            check_frame_size(str(path), width, height, max_pixels)
            try:
                orientation = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
            except (OSError, ValueError, SyntaxError):  # damaged metadata: decoding will tell
                orientation = 1
            if orientation in _SWAPPING_ORIENTATIONS:
                width, height = height, width
            return width, height
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass  # a format Pillow does not parse: decode it instead
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    image = read_image(path)
    if image is None:
        raise SourceError(f"image {str(path)!r} cannot be decoded; fix or remove it")
    check_frame_size(str(path), image.shape[1], image.shape[0], max_pixels)
    return image.shape[1], image.shape[0]


class ImageFileSource(Source):
    """A single image: one frame, pts None."""

    live = False

    def __init__(self, spec: str, path: Path, source_id: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        image_size(path, max_pixels)  # the header's claim is checked before decoding
        image = read_image(path)
        if image is None:
            raise SourceError(f"image {spec!r} cannot be decoded; is it a valid image file?")
        self._image: np.ndarray | None = image
        super().__init__(StreamStart(source_id=source_id, source_name=spec, width=image.shape[1],
                                     height=image.shape[0], fps=None, frame_count=1, live=False))

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        if self._image is None:
            return
        image, self._image = self._image, None
        self._stats["frames_decoded"] += 1
        yield image, None

    def close(self) -> None:
        self._image = None


class ImageFolderSource(Source):
    """The images of a folder in natural order, each at its own size, pts None."""

    live = False

    def __init__(self, spec: str, folder: Path, source_id: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        try:
            self._paths = list_images(folder)
        except OSError as e:
            raise SourceError(f"folder {spec!r} cannot be listed ({e.strerror}); check its permissions") from e
        if not self._paths:
            raise SourceError(f"folder {spec!r} has no images ({' '.join(IMAGE_EXTENSIONS)}); "
                              "put images in it or give another source")
        sizes = [image_size(p, max_pixels) for p in self._paths]  # every header checked before decoding
        width = max(w for w, _ in sizes)
        height = max(h for _, h in sizes)
        if len(set(sizes)) > 1:
            log.info("folder %s: images of %d sizes; frames keep their own size, stream size is the largest "
                     "(%dx%d)", spec, len(set(sizes)), width, height)
        self._closed = False
        super().__init__(StreamStart(source_id=source_id, source_name=spec, width=width, height=height,
                                     fps=None, frame_count=len(self._paths), live=False))

    @property
    def paths(self) -> list[Path]:
        """The image files, in frame order."""
        return list(self._paths)

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        for path in self._paths:
            if self._closed:
                return
            image = read_image(path)
            if image is None:
                self._stats["decode_errors"] += 1
                raise SourceError(f"image {str(path)!r} cannot be decoded; fix or remove it")
            self._stats["frames_decoded"] += 1
            yield image, None

    def close(self) -> None:
        self._closed = True
