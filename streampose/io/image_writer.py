"""Folders of annotated images, named after the source frames.

For a folder source each image keeps its source file's name (frame i is the
i-th file of the folder in the source's order, :func:`list_images`); for an
image file, its name; for videos and streams ``<source stem>_<frame:06d>.jpg``.
The extension is the source image's (``.pgm``/``.pbm``, which cannot hold
colour, become ``.png``) unless a format is given. Each image is encoded in
memory, written under a hidden partial name and renamed, so the folder never
holds a half-written image.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from ..errors import SinkError
from .atomic import discard, partial_path
from .image_sources import IMAGE_EXTENSIONS, list_images

log = logging.getLogger(__name__)

IMAGE_FORMATS = ("jpg", "png", "bmp", "tiff", "webp")
_COLOURLESS = (".pgm", ".pbm")


def frame_names(source_name: str) -> list[str] | None:
    """The file names of an image source's frames, in frame order; None for videos and streams."""
    path = Path(source_name).expanduser()
    if path.is_dir():
        return [p.name for p in list_images(path)]
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        return [path.name]
    return None


def source_stem(source_name: str) -> str:
    """A file-name-safe stem for a video or stream source (``cam.mp4`` → ``cam``, URLs sanitised)."""
    path = Path(source_name)
    stem = path.stem if path.is_file() else source_name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:60] or "frame"


class ImageFolderWriter:
    """Writes frames of one source into ``folder`` (created if needed).

    image_format: one of ``IMAGE_FORMATS`` or "" (keep the source image's
    extension; ``.jpg`` for video frames); jpeg_quality: 1-100.
    """

    def __init__(self, folder: Path, source_name: str, image_format: str = "", jpeg_quality: int = 95) -> None:
        self.folder = folder
        self.images_written = 0
        source = Path(source_name).expanduser()
        if source.is_dir() and _same_dir(source, folder):
            raise SinkError(f"image output {str(folder)!r} is the source folder: it would overwrite the source "
                            "images; choose another folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"cannot create image folder {str(folder)!r} ({e.strerror}); choose another path") from e
        self._names = frame_names(source_name)
        self._stem = source_stem(source_name)
        self._format = image_format
        self._jpeg_quality = jpeg_quality

    def name_for(self, index: int) -> str:
        """The file name of frame ``index``."""
        if self._names is not None and index < len(self._names):
            name = Path(self._names[index])
            ext = f".{self._format}" if self._format else name.suffix.lower()
            return name.stem + (".png" if ext in _COLOURLESS else ext)
        return f"{self._stem}_{index:06d}.{self._format or 'jpg'}"

    def write(self, image: np.ndarray, index: int) -> Path:
        """Encode and write frame ``index`` (BGR uint8 (H, W, 3)); returns its path."""
        import cv2

        path = self.folder / self.name_for(index)
        params = [cv2.IMWRITE_JPEG_QUALITY, self._jpeg_quality] if path.suffix in (".jpg", ".jpeg") else []
        ok, data = cv2.imencode(path.suffix, image, params)
        if not ok:
            raise SinkError(f"cannot encode {path.name} as {path.suffix}; set the image_writer format to jpg or png")
        partial = partial_path(path)
        try:
            data.tofile(partial)
            os.replace(partial, path)
        except OSError as e:
            discard(partial)
            raise SinkError(f"cannot write {str(path)!r} ({e.strerror}); check the disk and the folder") from e
        self.images_written += 1
        return path


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
