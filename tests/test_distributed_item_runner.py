"""ItemRunner without Ray: models load once for many items, results equal the plain run, failures publish nothing."""

from __future__ import annotations

import shutil

from distributed_helpers import detect_pipeline, single_machine_run

from streampose.distributed.item_runner import ItemRunner


def test_models_load_once_and_every_item_equals_the_plain_run(tmp_path, shared_dir, monkeypatch):
    media = shared_dir / "media"
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(media / "zidane.jpg", photos / "zidane.jpg")
    shutil.copy(media / "bus.jpg", photos / "bus.jpg")
    specs = [str(media / "face-demographics-walking.gif"), str(photos), str(media / "street-demo.mp4")]
    pipeline = detect_pipeline()
    runner = ItemRunner(pipeline)
    runner.warm_up()
    (kept_step, _), = runner._kept.values()
    starts = []
    monkeypatch.setattr(kept_step, "start", lambda: starts.append(1))  # this instance only
    out = tmp_path / "out"
    out.mkdir()
    for k, spec in enumerate(specs):
        outcome = runner.run(f"item{k}", spec, str(out))
        assert outcome.status == "done", outcome.error
        plain = single_machine_run(pipeline, spec, tmp_path / f"plain{k}.jsonl").read_bytes()
        assert (out / f"item{k}.jsonl").read_bytes() == plain
        assert outcome.frames == plain.count(b"\n") > 0
    assert starts == []  # the loaded detector served every item without starting again
    assert list(runner._kept.values())[0][0] is kept_step

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    outcome = runner.run("broken", str(broken), str(out))
    assert outcome.status == "failed" and "broken.mp4" in outcome.error and "\n" not in outcome.error
    assert sorted(p.name for p in out.iterdir()) == [".work", "item0.jsonl", "item1.jsonl", "item2.jsonl"]
    assert not any((out / ".work").iterdir())  # each run removed its work folder (the batch driver removes .work)
    runner.close()
