"""Defect class 4 of issue 14: a full disk or a final rename that fails is an output error.

One ``error:`` line naming the file and the cause, exit 2, and no partial file
left. A full disk is a real 1 MiB tmpfs filled to the brim (needs root /
CAP_SYS_ADMIN, skipped otherwise); an unwritable final name is a file made
immutable with ``chattr +i`` (skipped where the file system has no such flag).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from iohelpers import make_video
from streampose.errors import SinkError
from streampose.io.atomic import AtomicTextFile

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs mounted for the test (unmounted after)."""
    mount = Path(f"/tmp/streampose-tmpfs-{uuid.uuid4().hex[:8]}")
    mount.mkdir()
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                capture_output=True, text=True)
        problem = None if result.returncode == 0 else (result.stderr.strip() or f"exit {result.returncode}")
    except FileNotFoundError:
        problem = "no mount command"
    if problem:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({problem}); needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of ``folder`` until only about ``leave_bytes`` are free."""
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as f:
        try:
            f.write(b"\0" * max(0, free - leave_bytes))
            f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def noisy_video(path: Path, frames: int = 40) -> Path:
    """A video whose annotated copy is large (noise does not compress)."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "10"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run_stream.py"), *map(str, args), "--pipeline", "passthrough",
                           "--no-progress"], capture_output=True, text=True, timeout=180, cwd=REPO)


def assert_one_output_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("name, leave", [("poses.jsonl", 0), ("poses.jsonl", 2048), ("people.csv", 0),
                                         ("annotated.mp4", 0), ("annotated.mp4", 200_000), ("annotated.mkv", 60_000)])
@pytest.mark.parametrize("inline", [False, True])
def test_disk_full_is_one_line_and_leaves_nothing(tiny_disk, tmp_path, name, leave, inline):
    source = noisy_video(tmp_path / "noise.mp4")
    fill(tiny_disk, leave)
    before = listing(tiny_disk)
    args = ["--source", source, "--output", tiny_disk / name] + ["--inline"] * inline
    if name.endswith(".csv"):  # a CSV row needs a person: the test step gives every frame one
        from runtime_helpers import STEPS_FILE

        pipeline = tmp_path / "p.toml"
        pipeline.write_text(f'step_modules = ["{STEPS_FILE}"]\n[[stages]]\nname = "s"\n'
                            'steps = [ { type = "test_one_person" } ]\n')
        result = subprocess.run([sys.executable, str(REPO / "run_stream.py"), *map(str, args), "--pipeline",
                                 str(pipeline), "--no-progress"], capture_output=True, text=True, timeout=180)
    else:
        result = run_script(*args)
    assert_one_output_error(result, str(tiny_disk / name), "No space left on device")
    assert listing(tiny_disk) == before  # no .partial file, no probe file, no output


def test_immutable_target_rename_fails_cleanly(tmp_path):
    source = make_video(tmp_path / "in.mp4", frames=6)
    for name in ("out.jsonl", "out.mp4"):
        target = tmp_path / name
        target.write_bytes(b"keep me")
        try:
            immutable = subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode == 0
        except FileNotFoundError:
            immutable = False
        if not immutable:
            pytest.skip("chattr +i is not supported here (needs root and e2fsprogs)")
        try:
            before = listing(tmp_path)
            result = run_script("--source", source, "--output", target, "--overwrite")
            assert_one_output_error(result, str(target), "Operation not permitted", "could not be put in place")
            assert listing(tmp_path) == before and target.read_bytes() == b"keep me"
        finally:
            subprocess.run(["chattr", "-i", str(target)], check=False)


def test_atomic_text_file_abort_after_a_failed_flush_discards(tiny_disk):
    """The class's unit: abort() after ENOSPC must not retry-and-raise before deleting the partial file."""
    fill(tiny_disk, 0)
    out = AtomicTextFile(tiny_disk / "x.jsonl", "JSON-lines file")
    with pytest.raises(SinkError, match="No space left on device"):
        out.write("x" * 100_000)
    out.abort()
    assert listing(tiny_disk) == ["filler"]


def test_dev_full_final_close_fails_cleanly(tmp_path, monkeypatch):
    """A publish onto /dev/full's folder is impossible; a partial file that is /dev/full fails its close."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    out = AtomicTextFile(tmp_path / "y.jsonl", "JSON-lines file")
    out.file.close()
    out.file = open("/dev/full", "w")  # buffered: the write lands, the flush at close() hits ENOSPC
    out.file.write("z" * 10)
    with pytest.raises(SinkError, match=r"y\.jsonl.*No space left on device"):
        out.finish()
    assert listing(tmp_path) == []
