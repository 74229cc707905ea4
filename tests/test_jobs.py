"""JobManager: queue, stop, resume, crash recovery, failures and history, with a fake trainer.

The fake `train` behaves like engine.train as the interface spec describes it: it sets `running`
itself, streams metrics/progress through the sink, checks the stop event after every step, saves a
complete checkpoint when stopped, resumes from the newest complete checkpoint, and ends
`completed` or `stopped`.
"""

from __future__ import annotations

import errno
import json
import threading
import time
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from core.config import RunConfig
from core.errors import ConfigError, DataError, RunError, TrainingError, describe_failure
from core.run.folder import RunFolder
from core.service.jobs import INTERRUPTED_RUNNING, JobManager, RunSummary
from tests.support import STEPS, FakeTrainer, save_checkpoint


def _cfg(name: str = "") -> RunConfig:
    cfg = RunConfig(name=name)
    cfg.training.max_steps = STEPS
    return cfg


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def _wait_status(manager: JobManager, run_id: str, *statuses: str, timeout: float = 10.0) -> None:
    """Wait until the run reached one of these statuses and the worker has let go of it."""

    def settled() -> bool:
        return not manager.is_busy(run_id) and manager.snapshot(run_id).status in statuses

    _wait(settled, timeout)


def _wait_idle(manager: JobManager) -> None:
    _wait(lambda: not manager.is_busy())


@pytest.fixture
def make_manager(tmp_path):
    managers: list[JobManager] = []

    def make(train_fn=None, preflight_fn=None, root: Path | None = None) -> JobManager:
        manager = JobManager(root or tmp_path / "runs", train_fn=train_fn or FakeTrainer(),
                             preflight_fn=preflight_fn or (lambda cfg: None))
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.shutdown(timeout=10)


@pytest.fixture
def manager(make_manager, trainer) -> JobManager:
    return make_manager(trainer)


# ---- queue ----------------------------------------------------------------------------------

def test_second_run_waits_in_the_queue_then_runs(manager, trainer):
    trainer.gate = threading.Event()
    first = manager.submit(_cfg("first"))
    _wait(trainer.started.is_set)
    second = manager.submit(_cfg("second"))
    assert manager.active_run_id() == first
    assert manager.queued() == [second]
    assert manager.snapshot(second).status == "queued"
    assert manager.snapshot(first).status == "running"
    trainer.gate.set()
    _wait_status(manager, second, "completed")
    assert manager.snapshot(first).status == "completed"
    assert [call[0] for call in trainer.calls] == [first, second]
    info = manager.snapshot(second).info
    assert info["finished_at"] and info["elapsed_s"] > 0


def test_submit_copies_the_config(manager, trainer):
    trainer.gate = threading.Event()
    cfg = _cfg("before")
    run_id = manager.submit(cfg)
    cfg.name = "changed in the UI"
    assert manager.config(run_id).name == "before"
    trainer.gate.set()


# ---- stop / cancel --------------------------------------------------------------------------

def test_stop_mid_run_ends_stopped_within_one_step(make_manager):
    trainer = FakeTrainer(steps=400, step_s=0.005)
    manager = make_manager(trainer)
    run_id = manager.submit(_cfg())
    _wait(lambda: manager.snapshot(run_id).step >= 3)
    requested_at = manager.snapshot(run_id).step
    assert manager.stop(run_id) is True
    _wait_status(manager, run_id, "stopped")
    snap = manager.snapshot(run_id)
    assert requested_at <= snap.step <= requested_at + 2  # the step in flight, plus the one being read
    assert RunFolder(manager.runs_root / run_id).last_complete_checkpoint() is not None
    assert any(e["event"] == "stop" for e in snap.events)
    assert manager.stop(run_id) is False  # nothing left to stop


def test_cancel_and_stop_of_queued_runs(manager, trainer):
    trainer.gate = threading.Event()
    first = manager.submit(_cfg())
    _wait(trainer.started.is_set)
    second, third = manager.submit(_cfg()), manager.submit(_cfg())
    manager.cancel(second)
    assert manager.stop(third) is True  # stopping a queued run cancels it
    assert manager.queued() == []
    for run_id in (second, third):
        assert manager.snapshot(run_id).status == "cancelled"
    with pytest.raises(RunError, match="already running"):
        manager.cancel(first)
    trainer.gate.set()
    _wait_status(manager, first, "completed")
    assert [call[0] for call in trainer.calls] == [first]
    with pytest.raises(RunError, match="not queued"):
        manager.cancel(first)
    manager.cancel(second)  # cancelling twice is harmless


def test_cancelling_a_queued_resume_keeps_the_run_resumable(make_manager):
    trainer = FakeTrainer(steps=400, step_s=0.005)
    manager = make_manager(trainer)
    stopped = manager.submit(_cfg())
    _wait(lambda: manager.snapshot(stopped).step >= 2)
    manager.stop(stopped)
    _wait_status(manager, stopped, "stopped")
    trainer.gate = threading.Event()
    trainer.started.clear()
    blocker = manager.submit(_cfg())
    _wait(trainer.started.is_set)
    manager.resume(stopped)
    assert manager.snapshot(stopped).status == "queued"
    manager.cancel(stopped)
    assert manager.snapshot(stopped).status == "stopped"
    assert next(r for r in manager.list_runs() if r.run_id == stopped).resumable
    trainer.gate.set()
    manager.stop(blocker)


# ---- resume ---------------------------------------------------------------------------------

def test_resume_continues_the_same_run_without_restarting_steps(make_manager):
    trainer = FakeTrainer(steps=60, step_s=0.005)
    manager = make_manager(trainer)
    run_id = manager.submit(_cfg())
    _wait(lambda: manager.snapshot(run_id).step >= 5)
    manager.stop(run_id)
    _wait_status(manager, run_id, "stopped")
    stopped_at = manager.snapshot(run_id).step
    first_elapsed = manager.snapshot(run_id).elapsed_s
    assert manager.resume(run_id) == run_id
    _wait_status(manager, run_id, "completed")
    snap = manager.snapshot(run_id)
    steps = [m["step"] for m in snap.metrics]
    assert steps == list(range(1, 61))  # continued at stopped_at + 1, reached max, no restart at 0
    assert stopped_at < 60
    assert trainer.calls == [(run_id, False), (run_id, True)]
    assert any(e["event"] == "resume" for e in snap.events)
    assert snap.elapsed_s >= first_elapsed  # elapsed time adds up across attempts
    on_disk = [m["step"] for m in RunFolder(manager.runs_root / run_id).metrics() if "loss" in m]
    assert on_disk == steps
    assert len(list(manager.runs_root.iterdir())) == 1  # same folder, no new run


def test_resume_refuses_missing_completed_and_bad_ids(manager):
    run_id = manager.submit(_cfg())
    _wait_status(manager, run_id, "completed")
    with pytest.raises(RunError, match="completed; start a new run from its config"):
        manager.resume(run_id)
    with pytest.raises(RunError, match="There is no run"):
        manager.resume("20240101-000000-mlm-dead")
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(RunError, match="not a valid run id"):
            manager.resume(bad)
        with pytest.raises(RunError, match="not a valid run id"):
            manager.snapshot(bad)


def test_resume_of_a_running_run_is_refused(manager, trainer):
    trainer.gate = threading.Event()
    run_id = manager.submit(_cfg())
    _wait(trainer.started.is_set)
    with pytest.raises(RunError, match="already running"):
        manager.resume(run_id)
    trainer.gate.set()


def test_two_resumes_at_once_only_one_wins(make_manager):
    trainer = FakeTrainer(steps=30, step_s=0.002)

    def slow_preflight(cfg):
        time.sleep(0.05)  # widens the window in which both requests are in flight

    manager = make_manager(trainer, slow_preflight)
    run_id = manager.submit(_cfg())
    _wait(lambda: manager.snapshot(run_id).step >= 1)
    manager.stop(run_id)
    _wait_status(manager, run_id, "stopped")
    barrier = threading.Barrier(2)
    results: list[str] = []

    def resume():
        barrier.wait()
        try:
            manager.resume(run_id)
            results.append("ok")
        except RunError as err:
            results.append(str(err))

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 1, results
    assert any("already" in r for r in results if r != "ok")
    _wait_status(manager, run_id, "completed")
    assert sum(1 for rid, resumed in trainer.calls if rid == run_id and resumed) == 1


# ---- crash recovery ----------------------------------------------------------------------------

def _crashed_run(root: Path, *, status: str = "running", step: int = 4) -> str:
    """A folder exactly as a kill -9 mid-run leaves it: status running, metrics, a checkpoint."""
    folder = RunFolder.create(root, "20240101-000000-mlm-beef", _cfg())
    folder.update_status(status=status, started_at="2024-01-01T00:00:00+00:00", max_steps=STEPS, step=step)
    for s in range(1, step + 1):
        with open(folder.metrics_path, "a") as handle:
            handle.write(json.dumps({"step": s, "loss": 1.0 / s}) + "\n")
    with open(folder.metrics_path, "a") as handle:
        handle.write('{"step": 5, "lo')  # torn last line
    save_checkpoint(folder, step)
    return folder.run_id


def test_crash_leaves_running_status_new_manager_marks_interrupted_then_resume(make_manager, tmp_path):
    root = tmp_path / "runs"
    run_id = _crashed_run(root)
    trainer = FakeTrainer()
    manager = make_manager(trainer, root=root)
    snap = manager.snapshot(run_id)
    assert snap.status == "interrupted"
    assert snap.error == INTERRUPTED_RUNNING
    assert [m["step"] for m in snap.metrics] == [1, 2, 3, 4]  # torn line skipped, rest intact
    row = manager.list_runs()[0]
    assert row.status == "interrupted" and row.resumable
    manager.resume(run_id)
    _wait_status(manager, run_id, "completed")
    steps = [m["step"] for m in manager.snapshot(run_id).metrics]
    assert steps == list(range(1, STEPS + 1))
    assert manager.snapshot(run_id).error is None


def test_resume_without_a_checkpoint_sets_the_first_attempt_aside(make_manager, tmp_path):
    import shutil

    root = tmp_path / "runs"
    run_id = _crashed_run(root)
    shutil.rmtree(root / run_id / "checkpoint-4")  # cut off before its first save
    manager = make_manager(FakeTrainer(), root=root)
    manager.resume(run_id)
    _wait_status(manager, run_id, "completed")
    steps = [m["step"] for m in manager.snapshot(run_id).metrics]
    assert steps == list(range(1, STEPS + 1))  # one attempt on the chart, not two overlapping ones
    assert [m["step"] for m in RunFolder(root / run_id).metrics()] == steps  # same on disk
    kept = list((root / run_id / "previous-attempts").glob("*/metrics.jsonl"))
    assert len(kept) == 1 and kept[0].read_text().count('"step"') == 5  # kept, torn line and all
    assert any("starts again from step 0" in line for line in manager.snapshot(run_id).log_tail)


def test_a_failed_run_with_a_complete_checkpoint_resumes(make_manager, tmp_path):
    root = tmp_path / "runs"
    run_id = _crashed_run(root, status="failed")  # e.g. the disk filled up after checkpoint-4
    RunFolder(root / run_id).update_status(error="The disk is full.")
    trainer = FakeTrainer()
    manager = make_manager(trainer, root=root)
    assert manager.is_resumable(run_id) and manager.list_runs()[0].resumable
    manager.resume(run_id)
    _wait_status(manager, run_id, "completed")
    assert trainer.calls == [(run_id, True)]  # from the checkpoint, not from step 0
    assert [m["step"] for m in manager.snapshot(run_id).metrics] == list(range(1, STEPS + 1))
    assert manager.snapshot(run_id).error is None
    assert not manager.is_resumable(run_id)  # completed now


def test_a_failed_run_without_a_checkpoint_is_not_resumable(make_manager, tmp_path):
    import shutil

    root = tmp_path / "runs"
    run_id = _crashed_run(root, status="failed")
    shutil.rmtree(root / run_id / "checkpoint-4")
    manager = make_manager(FakeTrainer(), root=root)
    assert not manager.is_resumable(run_id) and not manager.list_runs()[0].resumable
    with pytest.raises(RunError, match="before its first complete checkpoint"):
        manager.resume(run_id)


def test_queued_run_left_by_a_crash_becomes_interrupted_and_starts_on_resume(make_manager, tmp_path):
    root = tmp_path / "runs"
    folder = RunFolder.create(root, "20240101-000000-mlm-cafe", _cfg())  # status queued, never ran
    trainer = FakeTrainer()
    manager = make_manager(trainer, root=root)
    assert manager.snapshot(folder.run_id).status == "interrupted"
    manager.resume(folder.run_id)
    _wait_status(manager, folder.run_id, "completed")
    assert trainer.calls == [(folder.run_id, False)]  # no checkpoint: a fresh start, not a failure


def test_second_manager_in_the_process_leaves_live_runs_alone(make_manager, tmp_path, trainer):
    trainer.gate = threading.Event()
    first = make_manager(trainer)
    running = first.submit(_cfg())
    _wait(trainer.started.is_set)
    queued = first.submit(_cfg())
    second = make_manager(FakeTrainer())  # e.g. Streamlit re-created the cached manager
    assert second.snapshot(running).status == "running"
    assert second.snapshot(queued).status == "queued"
    with pytest.raises(RunError, match="already running"):
        second.resume(running)
    with pytest.raises(RunError, match="stop or cancel it"):
        second.delete(queued)
    assert second.stop(running) is True  # forwarded to the owner
    trainer.gate.set()
    _wait_status(second, running, "stopped")
    _wait_status(second, queued, "completed")


def test_lock_held_by_another_process_is_respected(make_manager, tmp_path):
    pytest.importorskip("fcntl")
    import subprocess
    import sys

    root = tmp_path / "runs"
    run_id = _crashed_run(root)
    lock = root / run_id / ".lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import fcntl,sys,time; h=open({str(lock)!r},'a'); fcntl.flock(h, fcntl.LOCK_EX); "
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        manager = make_manager(root=root)
        assert manager.snapshot(run_id).status == "running"  # e.g. the CLI is training it
        with pytest.raises(RunError, match="another Tuneboard process"):
            manager.delete(run_id)
    finally:
        holder.kill()  # like kill -9: the kernel drops the lock
        holder.wait()
    manager = make_manager(root=root)
    assert manager.snapshot(run_id).status == "interrupted"


# ---- failures ---------------------------------------------------------------------------------

def test_exception_in_training_fails_with_message_and_traceback(manager, trainer):
    trainer.raise_at = (3, ValueError("tensor shapes do not match"))
    run_id = manager.submit(_cfg())
    _wait_status(manager, run_id, "failed")
    snap = manager.snapshot(run_id)
    assert snap.error == "Training crashed: ValueError: tensor shapes do not match. The traceback is in run.log."
    log = (manager.runs_root / run_id / "run.log").read_text()
    assert "Traceback (most recent call last)" in log and "tensor shapes do not match" in log
    # ... and only there: the Train page shows the log's tail, live or rebuilt from the folder.
    assert not any("Traceback" in line for line in snap.log_tail)
    assert not any("Traceback" in line for line in RunFolder(manager.runs_root / run_id).log_tail(200))
    assert snap.info["finished_at"] and snap.info["elapsed_s"] >= 0
    assert manager.active_run_id() is None
    # the worker survives: the next run trains normally
    trainer.raise_at = None
    after = manager.submit(_cfg())
    _wait_status(manager, after, "completed")


def test_tuneboard_error_fails_with_its_own_message(manager, trainer):
    message = "The loss became NaN at step 2; lower training.learning_rate and start again."
    trainer.raise_at = (2, TrainingError(message, field="training.learning_rate"))
    run_id = manager.submit(_cfg())
    _wait_status(manager, run_id, "failed")
    snap = manager.snapshot(run_id)
    assert snap.error == message
    assert snap.info["error_field"] == "training.learning_rate"
    assert not next(r for r in manager.list_runs() if r.run_id == run_id).resumable
    with pytest.raises(RunError, match="failed"):
        manager.resume(run_id)


def test_status_never_stays_running_after_the_thread_ends(manager, trainer):
    trainer.finish_status = False
    run_id = manager.submit(_cfg())
    _wait_status(manager, run_id, "failed")
    assert "without reporting a result" in manager.snapshot(run_id).error


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, without importing torch."""


def test_resource_failures_get_actionable_messages(manager, trainer):
    assert "GPU ran out of memory" in describe_failure(OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert "batch_size" in describe_failure(RuntimeError("CUDA error: out of memory"))
    assert "RAM" in describe_failure(MemoryError())
    disk = OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoint-5/optimizer.pt")
    assert describe_failure(disk).startswith("The disk is full while writing /runs/x/checkpoint-5/optimizer.pt")
    try:  # OOM wrapped by a library is still recognised
        try:
            raise OutOfMemoryError("CUDA out of memory")
        except OutOfMemoryError as inner:
            raise RuntimeError("step failed") from inner
    except RuntimeError as outer:
        assert "GPU ran out of memory" in describe_failure(outer)
    trainer.raise_at = (2, disk)
    run_id = manager.submit(_cfg())
    _wait_status(manager, run_id, "failed")
    assert "disk is full" in manager.snapshot(run_id).error


# ---- submit validation ------------------------------------------------------------------------

def test_invalid_config_raises_and_creates_no_folder(make_manager, tmp_path):
    def preflight(cfg):
        if cfg.data.source == "file":
            raise DataError("The file /nope.csv does not exist; choose a file on the Data page.", field="data.path")

    manager = make_manager(preflight_fn=preflight)
    cfg = _cfg()
    cfg.training.learning_rate = -1
    with pytest.raises(ConfigError, match="learning_rate"):
        manager.submit(cfg)
    cfg = _cfg()
    cfg.data.source, cfg.data.path = "file", "/nope.csv"
    with pytest.raises(DataError) as caught:
        manager.submit(cfg)
    assert caught.value.field == "data.path"
    assert list(manager.runs_root.iterdir()) == []
    assert manager.list_runs() == []


# ---- history ----------------------------------------------------------------------------------

def test_list_runs_newest_first_with_summaries_and_corrupt_folders(manager, tmp_path):
    ids = []
    for name in ("one", "two", "three"):
        ids.append(manager.submit(_cfg(name)))
        _wait_status(manager, ids[-1], "completed")
    root = manager.runs_root
    garbled_status = RunFolder.create(root, "20240101-000000-mlm-0001", _cfg())
    garbled_status.status_path.write_text("{ not json")
    garbled_config = RunFolder.create(root, "20240101-000000-mlm-0002", _cfg())
    garbled_config.config_path.write_text("task: [unclosed")
    garbled_config.update_status(status="completed")
    (root / "not-a-run").mkdir()          # no config, no status: ignored
    (root / "stray.txt").write_text("x")  # files are ignored

    rows = manager.list_runs()
    assert all(isinstance(row, RunSummary) for row in rows)
    by_id = {row.run_id: row for row in rows}
    assert [r.run_id for r in rows if r.run_id in ids] == ids[::-1]  # newest first
    assert "not-a-run" not in by_id
    assert by_id[garbled_status.run_id].status == "failed"
    assert "status.json" in by_id[garbled_status.run_id].error
    assert by_id[garbled_config.run_id].status == "failed"
    assert "config.yaml" in by_id[garbled_config.run_id].error
    done = by_id[ids[0]]
    assert (done.name, done.task, done.model, done.strategy) == ("one", "mlm", "bundled", "full")
    assert done.summary.startswith("mlm · bundled · full")
    assert dict(done.final_metrics) == {"loss": pytest.approx(1.0 / STEPS)}
    assert done.disk_bytes > 0 and done.duration_s is not None and not done.resumable
    assert done.step == STEPS and done.max_steps == STEPS
    with pytest.raises(FrozenInstanceError):
        done.status = "running"
    with pytest.raises(TypeError):
        done.final_metrics["loss"] = 0  # type: ignore[index]
    assert manager.list_runs() == rows  # cached rows are equal and stable


def test_disk_usage_follows_new_files(manager):
    run_id = manager.submit(_cfg())
    _wait_status(manager, run_id, "completed")
    before = next(r for r in manager.list_runs() if r.run_id == run_id).disk_bytes
    save_checkpoint(RunFolder(manager.runs_root / run_id), 99)
    after = next(r for r in manager.list_runs() if r.run_id == run_id).disk_bytes
    assert after >= before + 40


def test_delete_refuses_active_runs_and_removes_finished_ones(manager, trainer):
    trainer.gate = threading.Event()
    active = manager.submit(_cfg())
    _wait(trainer.started.is_set)
    queued = manager.submit(_cfg())
    for run_id in (active, queued):
        with pytest.raises(RunError, match="stop or cancel it before deleting"):
            manager.delete(run_id)
    trainer.gate.set()
    _wait_idle(manager)
    manager.delete(active)
    assert not (manager.runs_root / active).exists()
    assert [r.run_id for r in manager.list_runs()] == [queued]
    with pytest.raises(RunError, match="There is no run"):
        manager.snapshot(active)
    with pytest.raises(RunError, match="There is no run"):
        manager.delete(active)
    with pytest.raises(RunError, match="not a valid run id"):
        manager.delete("..")


def test_config_round_trips_from_the_run_folder(manager):
    run_id = manager.submit(_cfg("named"))
    cfg = manager.config(run_id)
    assert cfg.name == "named" and cfg.training.max_steps == STEPS
    cfg.name = "edited by a page"
    assert manager.config(run_id).name == "named"  # callers get copies
    with pytest.raises(RunError, match="There is no run"):
        manager.config("20240101-000000-mlm-dead")


# ---- snapshots --------------------------------------------------------------------------------

def test_snapshots_of_finished_runs_are_cached_until_the_folder_changes(manager):
    run_id = manager.submit(_cfg())
    _wait_status(manager, run_id, "completed")
    _wait_idle(manager)
    first = manager.snapshot(run_id)
    assert manager.snapshot(run_id) is first  # no file re-read, no rebuild
    RunFolder(manager.runs_root / run_id).update_status(note="edited elsewhere")
    changed = manager.snapshot(run_id)
    assert changed is not first and changed.info["note"] == "edited elsewhere"
    other = JobManager(manager.runs_root, train_fn=FakeTrainer(), preflight_fn=lambda cfg: None)
    try:
        assert other.snapshot(run_id).status == "completed"  # built from the folder
        assert len(other.snapshot(run_id).metrics) == STEPS
    finally:
        other.shutdown()


def test_four_threads_polling_at_20hz_see_consistent_immutable_snapshots(make_manager):
    trainer = FakeTrainer(steps=60, step_s=0.01)
    manager = make_manager(trainer)
    run_id = manager.submit(_cfg())
    errors: list[BaseException] = []
    counts = [0] * 4
    done = threading.Event()

    def poll(index: int) -> None:
        last_step, last_metrics = 0, 0
        try:
            while not done.is_set():
                snap = manager.snapshot(run_id)
                assert snap.step >= last_step
                assert len(snap.metrics) >= last_metrics
                assert isinstance(snap.metrics, tuple) and isinstance(snap.log_tail, tuple)
                if snap.metrics:
                    assert snap.metrics[-1]["step"] == len(snap.metrics)
                    with pytest.raises(TypeError):
                        snap.metrics[-1]["step"] = -1  # type: ignore[index]
                with pytest.raises(FrozenInstanceError):
                    snap.step = 0  # type: ignore[misc]
                assert 0.0 <= snap.progress <= 1.0
                last_step, last_metrics = snap.step, len(snap.metrics)
                counts[index] += 1
                time.sleep(0.05)
        except BaseException as err:  # surfaced by the main thread
            errors.append(err)

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    _wait_status(manager, run_id, "completed")
    done.set()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert all(count >= 3 for count in counts), counts
    final = manager.snapshot(run_id)
    assert [m["step"] for m in final.metrics] == list(range(1, 61))
    assert final.samples_per_s is None or final.samples_per_s > 0


def test_shutdown_stops_the_run_and_leaves_queued_runs_resumable(make_manager):
    trainer = FakeTrainer(steps=400, step_s=0.005)
    manager = make_manager(trainer)
    running = manager.submit(_cfg())
    queued = manager.submit(_cfg())
    _wait(lambda: manager.snapshot(running).step >= 2)
    manager.shutdown(timeout=10)
    assert manager.snapshot(running).status == "stopped"
    assert manager.snapshot(queued).status == "interrupted"
    with pytest.raises(RunError, match="shutting down"):
        manager.submit(_cfg())
    fresh = make_manager(FakeTrainer(steps=5))
    fresh.resume(queued)
    _wait_status(fresh, queued, "completed")


@pytest.mark.parametrize("space_comes_back", [False, True])
def test_full_disk_that_refuses_the_final_status_still_ends_the_run(manager, trainer, monkeypatch, space_comes_back):
    from core.run.sink import RunSink

    real_set_status = RunSink.set_status
    refused: list[dict] = []

    def set_status(self, **changes):
        if not (space_comes_back and refused) and (changes.get("status") == "failed" or "finished_at" in changes):
            refused.append(changes)
            raise OSError(errno.ENOSPC, "No space left on device", str(self.folder.status_path))
        return real_set_status(self, **changes)

    monkeypatch.setattr(RunSink, "set_status", set_status)
    trainer.raise_at = (2, OSError(errno.ENOSPC, "No space left on device", "/runs/x/optimizer.pt"))
    run_id = manager.submit(_cfg())
    _wait_idle(manager)
    snap = manager.snapshot(run_id)
    assert snap.status == "failed" and "disk is full" in snap.error  # kept in memory
    assert next(r for r in manager.list_runs() if r.run_id == run_id).status == "failed"
    monkeypatch.setattr(RunSink, "set_status", real_set_status)
    on_disk = RunFolder(manager.runs_root / run_id).status()
    if space_comes_back:  # the refused "failed" went along with the next write that succeeded
        assert on_disk["status"] == "failed" and "disk is full" in on_disk["error"]
    else:  # status.json still says running: the next start-up makes it interrupted (resumable)
        assert on_disk["status"] == "running"
        assert JobManager(manager.runs_root, train_fn=trainer).snapshot(run_id).status == "interrupted"


def test_list_runs_shows_live_progress_of_the_running_run(manager, trainer):
    trainer.gate = threading.Event()
    run_id = manager.submit(_cfg())
    _wait(trainer.started.is_set)
    row = manager.list_runs()[0]
    assert (row.run_id, row.status, row.resumable, row.max_steps) == (run_id, "running", False, STEPS)
    trainer.gate.set()
    _wait_status(manager, run_id, "completed")
    row = manager.list_runs()[0]
    assert row.status == "completed" and row.step == STEPS


def test_is_busy_sees_a_job_moving_from_the_queue_to_the_worker(manager, trainer):
    trainer.gate = threading.Event()
    run_id = manager.submit(_cfg())
    assert manager.is_busy() and manager.is_busy(run_id)  # queued or already training: busy either way
    assert not manager.is_busy("20990101-000000-mlm-00000000")
    _wait(trainer.started.is_set)
    assert manager.is_busy(run_id)
    trainer.gate.set()
    _wait(lambda: not manager.is_busy())
    assert manager.snapshot(run_id).status == "completed"
