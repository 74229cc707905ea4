"""Run folders and the sink: atomic files, torn lines, checkpoints, snapshots."""

from __future__ import annotations

import json
import threading

import pytest

from core.config import RunConfig
from core.errors import RunError
from core.run.folder import RunFolder, append_jsonl, list_runs, read_jsonl, validate_run_id
from core.run.sink import RunSink


def test_create_writes_config_and_queued_status(tmp_path):
    folder = RunFolder.create(tmp_path, "r1", RunConfig())
    assert folder.config() == RunConfig()
    assert folder.status()["status"] == "queued"
    with pytest.raises(RunError, match="already exists"):
        RunFolder.create(tmp_path, "r1", RunConfig())


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x" * 200, "a\\b", "..", "run\n"])
def test_run_ids_cannot_escape(bad):
    with pytest.raises(RunError):
        validate_run_id(bad)


def test_open_missing_run(tmp_path):
    with pytest.raises(RunError, match="no run"):
        RunFolder.open(tmp_path, "missing")


def test_torn_last_line_is_tolerated(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1, "loss": 2.0})
    append_jsonl(path, {"step": 2, "loss": 1.5})
    with open(path, "a") as handle:
        handle.write('{"step": 3, "lo')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]


def test_checkpoint_completeness(tmp_path):
    folder = RunFolder.create(tmp_path, "r", RunConfig())
    good = folder.path / "checkpoint-10"
    good.mkdir()
    for name in ("trainer_state.json", "optimizer.pt", "scheduler.pt", "model.safetensors"):
        (good / name).write_text("{}")
    torn = folder.path / "checkpoint-20"
    torn.mkdir()
    (torn / "model.safetensors").write_text("x")
    assert [c.name for c in folder.checkpoints()] == ["checkpoint-10", "checkpoint-20"]
    assert folder.last_complete_checkpoint() == good


def test_list_runs_newest_first(tmp_path):
    import os
    import time

    a = RunFolder.create(tmp_path, "a", RunConfig())
    RunFolder.create(tmp_path, "b", RunConfig())
    now = time.time()
    os.utime(a.config_path, (now - 100, now - 100))
    assert [f.run_id for f in list_runs(tmp_path)] == ["b", "a"]


def test_sink_snapshot_is_immutable_and_cached(tmp_path):
    folder = RunFolder.create(tmp_path, "r", RunConfig())
    sink = RunSink(folder)
    sink.set_status(status="running", started_at="2026-01-01T00:00:00+00:00")
    sink.metric({"step": 1, "loss": float("nan")})
    sink.probe(0, "base", "t", [{"token": "x", "score": 0.5}])
    sink.event("checkpoint", 1, "saved")
    first = sink.snapshot()
    assert first is sink.snapshot()
    assert first.metrics[0]["loss"] is None  # NaN is stored as null: files stay valid JSON
    with pytest.raises(TypeError):
        first.metrics[0]["loss"] = 1.0  # type: ignore[index]
    sink.metric({"step": 2, "loss": 1.0})
    assert len(sink.snapshot().metrics) == 2 and len(first.metrics) == 1
    # The files hold the same history, so a new sink (e.g. after a restart) sees it all.
    again = RunSink(folder).snapshot()
    assert len(again.metrics) == 2 and len(again.events) == 1 and len(again.probes) == 1
    assert json.loads(folder.status_path.read_text())["status"] == "running"


def test_sink_progress_gives_rate_and_eta(tmp_path):
    import time

    folder = RunFolder.create(tmp_path, "r", RunConfig())
    sink = RunSink(folder)
    sink.set_status(status="running")
    sink.set_samples_per_step(8)
    sink.progress(0, 100, 0.0)
    time.sleep(0.05)
    sink.progress(5, 100, 0.1)
    snap = sink.snapshot()
    assert snap.step == 5 and snap.progress == pytest.approx(0.05)
    assert snap.samples_per_s and snap.samples_per_s > 0
    assert snap.eta_s and snap.eta_s > 0


def test_sink_is_safe_under_concurrent_readers(tmp_path):
    folder = RunFolder.create(tmp_path, "r", RunConfig())
    sink = RunSink(folder)
    errors = []

    def read():
        try:
            for _ in range(200):
                snap = sink.snapshot()
                assert all("step" in m for m in snap.metrics)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    for step in range(200):
        sink.metric({"step": step, "loss": 1.0})
    for reader in readers:
        reader.join()
    assert not errors
    assert len(sink.snapshot().metrics) == 200


def test_list_runs_keeps_broken_run_folders_and_skips_the_rest(tmp_path):
    RunFolder.create(tmp_path, "whole", RunConfig())
    (tmp_path / "no-config").mkdir()
    (tmp_path / "no-config" / "status.json").write_text("{}")  # a run whose config is lost: still listed
    (tmp_path / "empty").mkdir()                                # no config, no status: not a run
    (tmp_path / "stray.txt").write_text("x")
    assert sorted(f.run_id for f in list_runs(tmp_path)) == ["no-config", "whole"]
    assert list_runs(tmp_path / "missing") == []
