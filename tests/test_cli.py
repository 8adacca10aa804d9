"""run_stream.py end to end: help, one-line bad-input errors (exit 2), a real run to files,
a failing stage (exit 1), SIGINT/SIGTERM finalizing outputs (130/143), SIGKILL of a stage
(exit 1 within 2 s, no process or /dev/shm entry left)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from runtime_helpers import pipeline_toml, read_records
from streampose.cli import main

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "run_stream.py")]
VIDEO = "media/one-by-one-person-detection.mp4"


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """main() configures logging (as the CLI should); undo it for the rest of the test session."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run_cli(args, **kwargs):
    return subprocess.run(RUN + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                          cwd=kwargs.pop("cwd", REPO), **kwargs)


def start_cli(args):
    """The CLI in its own process group (like a terminal job), stderr captured."""
    return subprocess.Popen(RUN + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, start_new_session=True)


def error_lines(stderr: str) -> list[str]:
    """What the user sees besides informational log lines."""
    return [line for line in stderr.splitlines() if not line.startswith("INFO")]


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def shm_mapped(pids) -> set[str]:
    """/dev/shm files (ring segments, semaphores) mapped by these processes."""
    paths = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            if "/dev/shm/" in line:
                paths.add(line[line.index("/dev/shm/"):].replace(" (deleted)", "").strip())
    return paths


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_frames(path: Path, count: int, proc, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()[1]}")
        if path.exists():
            records = read_records(path)
            if sum(r["event"] == "frame" for r in records) >= count:
                return records
        time.sleep(0.02)
    raise TimeoutError(path)


def test_help_shows_examples_and_exit_codes():
    result = run_cli(["--help"])
    assert result.returncode == 0
    assert "examples:" in result.stdout and "--source" in result.stdout and "--det-model" in result.stdout
    assert "130 interrupted" in result.stdout and "143 terminated" in result.stdout


def test_list_pipelines(capsys):
    assert main(["--list-pipelines"]) == 0
    assert "passthrough" in capsys.readouterr().out


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, shared_dir):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty").mkdir()
    (d / "notes.txt").write_text("not a video\n")
    (d / "truncated.mp4").write_bytes((shared_dir / VIDEO).read_bytes()[:3000])
    (d / "unknown_key.toml").write_text('stagez = 1\n[[stages]]\nname = "r"\nsteps = [{ type = "draw" }]\n')
    (d / "bad_value.toml").write_text('[[stages]]\nname = "r"\nsteps = [{ type = "draw", thickness = "2" }]\n')
    return d, shared_dir / VIDEO


BAD = [
    (["--source", "{d}/missing.mp4"], "error: source '{d}/missing.mp4' not found"),
    (["--source", "ftp://example.com/x.mp4"], "error: unknown source form 'ftp://example.com/x.mp4'"),
    (["--source", "{d}/truncated.mp4"], "error: "),
    (["--source", "{d}/notes.txt"], "error: "),
    (["--source", "{d}/empty"], "error: "),
    (["--source", "rtsp://127.0.0.1:9/none", "--reconnect-attempts", "0", "--open-timeout", "2"], "error: "),
    (["--source", "{video}", "--pipeline", "nope"], "error: unknown pipeline 'nope'"),
    (["--source", "{video}", "--pipeline", "{d}/unknown_key.toml"], "error: stagez: unknown key"),
    (["--source", "{video}", "--pipeline", "{d}/bad_value.toml"],
     "error: stages[0].steps[0].thickness: expected an integer, got '2'"),
    (["--source", "{video}", "--output", "/proc/streampose/out.mp4"], "error: cannot write output '/proc/streampose/out.mp4'"),
    (["--source", "{video}", "--output", "{d}/out.xyz"], "error: output '{d}/out.xyz': unknown extension"),
    (["--source", "{video}", "--read-timeout", "-1"], "error: --read-timeout: read_timeout_s must be > 0"),
    (["--source", "{video}", "--det-model", "x.pt"], "error: --det-model: pipeline 'passthrough' has no detector"),
    (["--source", "{video}", "--max-frames", "0"], "error: argument --max-frames: must be at least 1"),
    (["--source", "{video}", "--bogus"], "error: unrecognized arguments: --bogus"),
    ([], "error: no --source given"),
]


@pytest.mark.parametrize("args, expected", BAD, ids=[
    "missing-file", "unknown-form", "truncated-video", "non-video", "empty-folder", "unreachable-rtsp",
    "unknown-pipeline", "unknown-pipeline-key", "bad-option-value", "unwritable-output", "unknown-output",
    "bad-timeout", "no-detector", "bad-max-frames", "unknown-flag", "no-source"])
def test_bad_input_is_one_line_and_exit_2(bad_inputs, capsys, args, expected):
    d, video = bad_inputs
    args = [a.format(d=d, video=video) for a in args] + ["--pipeline", "passthrough"] * ("--pipeline" not in args)
    try:
        code = main(args)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(expected.format(d=d)), err
    assert "Traceback" not in err


def test_bad_input_through_the_script_starts_nothing(tmp_path):
    result = run_cli(["--source", tmp_path / "missing.mp4", "--output", tmp_path / "out.mp4"])
    assert result.returncode == 2
    assert error_lines(result.stderr) == [f"error: source '{tmp_path / 'missing.mp4'}' not found; "
                                          + error_lines(result.stderr)[0].split("; ", 1)[1]]
    assert "Traceback" not in result.stderr and not (tmp_path / "out.mp4").exists()


def test_passthrough_run_writes_every_output(tmp_path, shared_dir):
    import av

    video, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    result = run_cli(["--source", shared_dir / VIDEO, "--pipeline", "passthrough", "--output", video,
                      "--output", jsonl, "--max-frames", 30])
    assert result.returncode == 0, result.stderr
    assert "30 frames from 1 source" in result.stderr and "latency" in result.stderr
    assert len(jsonl.read_text().splitlines()) == 30
    with av.open(str(video)) as out, av.open(str(shared_dir / VIDEO)) as src:
        frames = [f.to_ndarray(format="bgr24") for f in out.decode(video=0)]
        first_src = next(src.decode(video=0)).to_ndarray(format="bgr24")
    assert len(frames) == 30 and frames[0].shape == (432, 768, 3)
    # the overlay (dark box with the frame index) is in the top-left corner, the rest is the source
    corner = np.abs(frames[0][4:20, 4:120].astype(int) - first_src[4:20, 4:120]).mean()
    rest = np.abs(frames[0][200:, 200:].astype(int) - first_src[200:, 200:]).mean()
    assert corner > 20 and rest < 6


def test_inline_run(tmp_path, shared_dir, capsys):
    jsonl = tmp_path / "out.jsonl"
    code = main(["--source", str(shared_dir / VIDEO), "--inline", "--max-frames", "5", "--output", str(jsonl),
                 "--pipeline", "passthrough"])
    assert code == 0
    assert [json.loads(line)["frame"] for line in jsonl.read_text().splitlines()] == [0, 1, 2, 3, 4]
    assert "5 frames from 1 source" in capsys.readouterr().err


def test_failing_stage_exit_1_names_it_with_traceback(tmp_path, shared_dir):
    toml = pipeline_toml(tmp_path / "p.toml", [("faulty", ['{ type = "test_raise", at_index = 3 }'])])
    result = run_cli(["--source", shared_dir / VIDEO, "--pipeline", toml, "--max-frames", 50])
    assert result.returncode == 1
    assert "error: stage 'faulty' failed:" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: boom from test_raise at frame 3" in result.stderr


def _slow_pipeline(tmp_path: Path) -> tuple[Path, Path]:
    rec = tmp_path / "rec.jsonl"
    toml = pipeline_toml(tmp_path / "p.toml", [("render", [
        '{ type = "draw" }', '{ type = "test_sleep", seconds = 0.02 }',
        f'{{ type = "test_record", path = {json.dumps(str(rec))} }}'])])
    return toml, rec


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_to_the_process_group_finalizes_outputs(tmp_path, shared_dir, signum, code):
    import av

    toml, rec = _slow_pipeline(tmp_path)
    video, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    proc = start_cli(["--source", shared_dir / VIDEO, "--pipeline", toml, "--output", video, "--output", jsonl])
    wait_for_frames(rec, 15, proc)
    os.killpg(proc.pid, signum)  # like Ctrl-C in a terminal: every process of the job gets it
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    frames_seen = len([r for r in read_records(rec) if r["event"] == "frame"])
    assert 15 <= frames_seen < 1394
    with av.open(str(video)) as out:
        assert sum(1 for _ in out.decode(video=0)) == frames_seen  # playable, every frame so far
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]  # complete JSON lines
    assert len(lines) == frames_seen


def test_sigkill_of_a_stage_exits_within_2s_leaving_nothing(tmp_path, shared_dir):
    toml, rec = _slow_pipeline(tmp_path)
    proc = start_cli(["--source", shared_dir / VIDEO, "--pipeline", toml, "--output", tmp_path / "out.mp4"])
    records = wait_for_frames(rec, 5, proc)
    family = descendants(proc.pid)
    shm = shm_mapped(family | {proc.pid})
    stage_pid = records[0]["pid"]
    assert stage_pid in family and any("/streampose_" in p for p in shm)
    assert not any(os.path.exists(p) for p in shm if "/streampose_" in p)  # rings unlinked while running
    killed = time.monotonic()
    os.kill(stage_pid, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - killed < 2.0
    assert proc.returncode == 1
    assert "error: stage 'render' failed:" in stderr and "SIGKILL" in stderr
    deadline = time.monotonic() + 1.0
    while any(alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in family if alive(p)]
    assert not [p for p in shm if os.path.exists(p)]
    assert not (tmp_path / "out.mp4").exists()  # the unfinished video was not published


def test_killing_the_whole_group_leaks_no_ring(tmp_path, shared_dir):
    toml, rec = _slow_pipeline(tmp_path)
    proc = start_cli(["--source", shared_dir / VIDEO, "--pipeline", toml])
    wait_for_frames(rec, 5, proc)
    rings = {p for p in shm_mapped(descendants(proc.pid) | {proc.pid}) if "/streampose_" in p}
    assert rings
    os.killpg(proc.pid, signal.SIGKILL)  # parent, stages and resource tracker die together
    proc.communicate(timeout=30)
    assert not [p for p in rings if os.path.exists(p)]


def test_ctrl_c_while_the_stages_start_is_still_a_clean_130(tmp_path, shared_dir):
    video = tmp_path / "out.mp4"
    proc = start_cli(["--source", shared_dir / VIDEO, "--pipeline", "passthrough", "--output", video, "-v"])
    seen = []
    for line in proc.stderr:  # children are being spawned: some have not started ignoring signals yet
        seen.append(line)
        if "started capture[0]" in line:
            break
    os.killpg(proc.pid, signal.SIGINT)
    _, rest = proc.communicate(timeout=30)
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr
    assert "error: stage" not in stderr


def test_default_pipeline_falls_back_to_passthrough_only_while_missing(tmp_path, monkeypatch, caplog):
    import streampose.cli as cli

    monkeypatch.setattr(cli, "PIPELINES_DIR", tmp_path)
    with caplog.at_level(logging.INFO, logger="streampose"):
        assert cli.resolve_pipeline_name("default") == "passthrough"
    assert "default.toml does not exist yet" in caplog.text
    assert cli.resolve_pipeline_name("topdown_hrnet_w32") == "topdown_hrnet_w32"
    (tmp_path / "default.toml").write_text("")
    assert cli.resolve_pipeline_name("default") == "default"
