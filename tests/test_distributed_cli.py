"""``python run_stream.py batch ...`` end to end: a local Ray instance, a corrupt item, the summary and exit code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_batch_command_reports_failed_items_in_the_summary_and_exit_code(tmp_path, shared_dir):
    media = shared_dir / "media"
    corpus = tmp_path / "corpus"
    (corpus / "photos").mkdir(parents=True)
    shutil.copy(media / "zidane.jpg", corpus / "photos" / "zidane.jpg")
    shutil.copy(media / "face-demographics-walking.gif", corpus / "walking.gif")
    (corpus / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "run_stream.py", "batch", str(corpus), "--output-dir", str(out),
         "--pipeline", "tests/pipelines/detect_light.toml", "--local-cpus", "2", "--object-store-mb", "100",
         "--num-cpus", "1", "--no-progress"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "items: 2 done, 1 failed, 0 skipped" in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.strip().startswith("failed broken.mp4-")]
    assert len(failed) == 1 and "broken.mp4" in failed[0]
    manifest = json.loads((out / "manifest.json").read_text())["items"]
    assert sorted(r["status"] for r in manifest.values()) == ["done", "done", "failed"]
    walking = next(name for name, r in manifest.items() if r["source"].endswith("walking.gif"))
    assert len((out / f"{walking}.jsonl").read_text().splitlines()) == manifest[walking]["frames"] == 35
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{name}.jsonl" for name, r in manifest.items()
                                                            if r["status"] == "done"] + ["manifest.json"])
