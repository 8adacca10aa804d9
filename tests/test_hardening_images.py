"""Defect class 6 of issue 14: a frame size claimed by a header is checked before anything is decoded.

Hostile headers are made here byte by byte (a valid header, almost no data):
PNG 100000x100000, JPEG 65000x65000, BMP 50000x50000, also inside a folder
of good images, plus a real image and a real video over a small
``--max-pixels``. Each: exit 2, one ``error:`` line naming the file and its
claimed size, no traceback, no new file.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import pytest

from iohelpers import make_video, pattern
from streampose.cli import main
from streampose.errors import SourceError
from streampose.io import SourceOptions, open_source
from streampose.io.sources import DEFAULT_MAX_PIXELS


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_header(width: int, height: int) -> bytes:
    def segment(marker: bytes, data: bytes) -> bytes:
        return b"\xff" + marker + struct.pack(">H", len(data) + 2) + data

    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    sos = b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return b"\xff\xd8" + segment(b"\xc0", sof) + segment(b"\xda", sos) + b"\0" * 64 + b"\xff\xd9"


def bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + info + b"\0" * 16


HOSTILE = [("huge.png", png_header, 100000, 100000), ("huge.jpg", jpeg_header, 65000, 65000),
           ("huge.bmp", bmp_header, 50000, 50000), ("wide.png", png_header, 2_000_000, 30)]


@pytest.fixture(autouse=True)
def _restore_root_logger(restore_root_logger):
    yield


def refused(tmp_path: Path, args: list, capsys) -> str:
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code = main([str(a) for a in args] + ["--pipeline", "passthrough", "--output", str(tmp_path / "out.jsonl"),
                                          "--no-progress"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("INFO")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "DecompressionBomb" not in err and "cv2.error" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    return lines[0]


@pytest.mark.parametrize("name, make, width, height", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_image_header(tmp_path, capsys, name, make, width, height):
    path = tmp_path / name
    path.write_bytes(make(width, height))
    line = refused(tmp_path, ["--source", path], capsys)
    assert name in line and f"claims {width}x{height} pixels" in line and "--max-pixels" in line


@pytest.mark.parametrize("name, make, width, height", HOSTILE[:2], ids=[h[0] for h in HOSTILE[:2]])
def test_hostile_image_in_a_folder(tmp_path, capsys, name, make, width, height):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"ok{i}.jpg"), pattern(i, 32, 24))
    (folder / f"z_{name}").write_bytes(make(width, height))  # last in frame order: refused up front all the same
    line = refused(tmp_path, ["--source", folder], capsys)
    assert f"z_{name}" in line and f"claims {width}x{height} pixels" in line


def test_pixel_limit_is_an_option(tmp_path, capsys):
    image = tmp_path / "small.png"
    cv2.imwrite(str(image), pattern(0, 64, 48))
    line = refused(tmp_path, ["--source", image, "--max-pixels", "3000"], capsys)
    assert "claims 64x48 pixels" in line and "limit of 0.003 MP" in line
    video = make_video(tmp_path / "v.mp4", frames=3, width=64, height=48)
    line = refused(tmp_path, ["--source", video, "--max-pixels", "3000"], capsys)
    assert line.startswith("error: video") and "claims 64x48 pixels" in line
    code = main(["--source", str(image), "--max-pixels", "3072", "--pipeline", "passthrough", "--no-progress",
                 "--inline"])
    assert code == 0  # exactly at the limit is allowed


def test_default_limit_is_sane():
    assert 33_177_600 <= DEFAULT_MAX_PIXELS <= 100_000_000  # 8K UHD passes; a decompression bomb does not
    with pytest.raises(ValueError, match="max_pixels"):
        SourceOptions(max_pixels=0)


def test_lavfi_stream_over_the_limit():
    with pytest.raises(SourceError, match=r"claims 320x240 pixels"):
        open_source("lavfi:testsrc2=size=320x240:rate=5", 0, SourceOptions(max_pixels=1000))
