"""Crashes and restarts: kill -9 mid-run, torn writes, incomplete checkpoints, concurrent submits, tabs.

The kill test is real: a child process runs a JobManager (what the Streamlit server holds) training
a tiny model, and is SIGKILLed after its first checkpoint. A new JobManager on the same runs folder
then plays the restarted server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.config import RunConfig
from core.run.folder import (
    RunFolder,
    append_jsonl,
    atomic_write_json,
    is_complete_checkpoint,
    now_iso,
    read_jsonl,
)
from core.service.jobs import INTERRUPTED_RUNNING, JobManager
from tests.support import (
    app,
    open_page,
    texts,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
SAVE_STEPS = 4
MAX_STEPS = 12

# The "server": a JobManager training one run, each step slowed so that the kill lands mid-run on
# any machine. Everything else (engine, Trainer, checkpoints, sink) is the real thing.
SERVER = r"""
import sys, threading, time
from core.training.trainer import TuneboardTrainer
from core.config import RunConfig
from core.service.jobs import JobManager, train_in_this_process

root, config = sys.argv[1], sys.argv[2]
original = TuneboardTrainer.training_step

def slow_step(self, *args, **kwargs):
    time.sleep(0.3)
    return original(self, *args, **kwargs)

TuneboardTrainer.training_step = slow_step
manager = JobManager(root, train_fn=train_in_this_process)  # the slowed steps are patched in here
print(manager.submit(RunConfig.load(config)), flush=True)
threading.Event().wait()  # serve until killed
"""


def _config(model: str) -> RunConfig:
    cfg = RunConfig(task="mlm", name="killed")
    cfg.model.source, cfg.model.max_length = model, 32
    cfg.data.synthetic.rows = 120
    cfg.training.max_steps = MAX_STEPS
    cfg.training.batch_size = 4
    cfg.training.logging_steps = 1
    cfg.training.eval_steps = MAX_STEPS
    cfg.training.save_steps = SAVE_STEPS
    cfg.training.save_total_limit = 2
    # Checkpoints every SAVE_STEPS, between evaluations: keeping the best model would save at
    # evaluations only (the Trainer restores no other), and here the only one is the last step.
    cfg.training.keep_model = "last"
    return cfg.validate()


def _wait(predicate, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited early ({process.returncode}): {process.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _settled(manager: JobManager, run_id: str, timeout: float = 120.0):
    _wait(lambda: not manager.is_busy()
          and manager.snapshot(run_id).status not in ("queued", "running"), timeout, f"run {run_id} to end")
    return manager.snapshot(run_id)


@pytest.mark.slow  # ~20 s: a child process imports torch and trains before it is killed
def test_kill_9_mid_run_then_restart_and_resume(tiny_bert, tmp_path):
    root = tmp_path / "runs"
    cfg = _config(tiny_bert)
    cfg_path = tmp_path / "run.yaml"
    cfg.save(cfg_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(cfg_path)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: root.is_dir() and any(root.iterdir()), 120, "the run folder", server)
        folder = RunFolder(next(p for p in root.iterdir() if p.is_dir()))
        _wait(lambda: folder.last_complete_checkpoint() is not None, 180, "the first checkpoint", server)
        time.sleep(0.5)  # a little past the checkpoint, so there is something to lose
        assert server.poll() is None, "the run finished before it could be killed"
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)
    assert server.returncode == -signal.SIGKILL

    # What the kill left: status still says running; metrics end wherever the process stopped.
    assert folder.status()["status"] == "running"
    with open(folder.metrics_path, "a", encoding="utf-8") as handle:
        handle.write('{"step": 999, "loss": 0.12')  # and a line torn mid-write, as a kill can leave
    complete_lines = [json.loads(line) for line in folder.metrics_path.read_text().splitlines()[:-1]]
    last_step = max(m["step"] for m in complete_lines if "loss" in m)
    checkpoint = folder.last_complete_checkpoint()
    checkpoint_step = int(checkpoint.name.split("-")[1])
    assert checkpoint_step >= SAVE_STEPS
    assert last_step - checkpoint_step <= SAVE_STEPS  # at most one save interval is lost

    # A newer checkpoint whose writer was killed before optimizer.pt: it must be skipped.
    broken = folder.path / f"checkpoint-{checkpoint_step + SAVE_STEPS}"
    if not broken.exists():
        shutil.copytree(checkpoint, broken)
    (broken / "optimizer.pt").unlink(missing_ok=True)
    assert not is_complete_checkpoint(broken)
    assert folder.last_complete_checkpoint() == checkpoint

    # The restarted server.
    manager = JobManager(root)
    try:
        run_id = folder.run_id
        snap = manager.snapshot(run_id)
        assert snap.status == "interrupted" and snap.error == INTERRUPTED_RUNNING
        assert [dict(m) for m in snap.metrics] + [dict(e) for e in snap.events] != []
        assert len(snap.metrics) + len(snap.events) == len(complete_lines)  # the torn line is skipped
        assert folder.config().to_dict() == cfg.to_dict()  # config intact
        row = next(r for r in manager.list_runs() if r.run_id == run_id)
        assert row.status == "interrupted" and row.resumable

        manager.resume(run_id)
        snap = _settled(manager, run_id)
    finally:
        manager.shutdown(timeout=60)
    assert snap.status == "completed", snap.error
    records = folder.metrics()
    assert records[: len(complete_lines)] == complete_lines  # history before the kill is untouched
    resumed = [e for e in records if e.get("event") == "resume"]
    assert len(resumed) == 1 and checkpoint.name in resumed[0]["message"]
    after = [m["step"] for m in records[len(complete_lines):] if "loss" in m]
    assert after[0] == checkpoint_step + 1 and after[-1] == MAX_STEPS  # continued, not restarted
    assert folder.status()["step"] == MAX_STEPS
    assert folder.final_path.is_dir()
    assert len(folder.checkpoints()) <= cfg.training.save_total_limit


def test_a_record_appended_after_a_torn_line_is_not_lost(tmp_path):
    """The first event after a restart (e.g. 'resume') must not be glued to the torn line."""
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    append_jsonl(path, {"step": 2, "event": "resume", "message": "Resuming from checkpoint-1."})
    append_jsonl(path, {"step": 3, "loss": 1.5})
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3]


def test_status_and_config_survive_a_crash_mid_write(tmp_path, monkeypatch):
    """A kill between writing the temp file and renaming it leaves the previous file whole."""
    folder = RunFolder.create(tmp_path, "20240101-000000-mlm-cafe", RunConfig(name="atomic"))
    folder.update_status(status="running", step=7)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands in for the process dying inside the write

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        folder.update_status(status="completed", step=8)
    with pytest.raises(KeyboardInterrupt):
        RunConfig(name="half-written").save(folder.config_path)
    monkeypatch.undo()
    assert folder.status()["status"] == "running" and folder.status()["step"] == 7
    assert folder.config().name == "atomic"
    assert not [p.name for p in folder.path.iterdir() if p.name.startswith(".")], "temp files are cleaned up"


def test_many_threads_and_two_managers_submitting_lose_and_duplicate_nothing(tmp_path):
    root = tmp_path / "runs"
    trained: list[tuple[str, str]] = []
    lock = threading.Lock()

    def train(cfg, folder, sink, stop_event, *, resume=False):
        with lock:
            trained.append((folder.run_id, cfg.name))
        sink.set_status(status="running", started_at=now_iso())
        sink.metric({"step": 1, "loss": 1.0})
        sink.set_status(status="completed", step=1)
        return "completed"

    managers = [JobManager(root, train_fn=train, preflight_fn=lambda cfg: None) for _ in range(2)]
    threads_per_manager, per_thread = 4, 5
    barrier = threading.Barrier(len(managers) * threads_per_manager)
    submitted: list[tuple[str, str]] = []
    failures: list[BaseException] = []

    def submit(manager_index: int, thread_index: int) -> None:
        barrier.wait()
        for k in range(per_thread):
            name = f"m{manager_index}-t{thread_index}-{k}"
            try:
                run_id = managers[manager_index].submit(RunConfig(name=name))
            except BaseException as err:  # noqa: BLE001 - every failure is a lost run here
                failures.append(err)
                continue
            with lock:
                submitted.append((run_id, name))

    threads = [threading.Thread(target=submit, args=(m, t)) for m in range(len(managers))
               for t in range(threads_per_manager)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        total = len(managers) * threads_per_manager * per_thread
        assert not failures, failures
        assert len(submitted) == total and len({run_id for run_id, _ in submitted}) == total
        _wait(lambda: len(trained) == total and not any(m.is_busy() for m in managers),
              60, "every run to train")
    finally:
        for manager in managers:
            manager.shutdown(timeout=10)
    assert sorted(trained) == sorted(submitted)  # each run trained exactly once, with its own config
    fresh = JobManager(root, train_fn=train, preflight_fn=lambda cfg: None)
    try:
        rows = fresh.list_runs()
    finally:
        fresh.shutdown(timeout=5)
    assert sorted((r.run_id, r.name) for r in rows) == sorted(submitted)
    assert {r.status for r in rows} == {"completed"}


def _stopped_run(root: Path, step: int = 4) -> str:
    folder = RunFolder.create(root, "20240101-000000-mlm-beef", RunConfig(name="resumable"))
    folder.update_status(status="stopped", step=step, max_steps=12)
    for number, complete in ((step - 2, True), (step, True), (step + 2, False)):
        checkpoint = folder.path / f"checkpoint-{number}"
        checkpoint.mkdir()
        for name in ("scheduler.pt", "model.safetensors") + (("optimizer.pt",) if complete else ()):
            (checkpoint / name).write_bytes(b"x")
        atomic_write_json(checkpoint / "trainer_state.json", {"global_step": number})
    return folder.run_id


def test_resume_skips_an_incomplete_checkpoint_for_the_previous_one(tmp_path):
    root = tmp_path / "runs"
    run_id = _stopped_run(root)
    seen: list[Path | None] = []

    def train(cfg, folder, sink, stop_event, *, resume=False):
        seen.append(folder.last_complete_checkpoint() if resume else None)
        sink.set_status(status="completed")
        return "completed"

    manager = JobManager(root, train_fn=train, preflight_fn=lambda cfg: None)
    try:
        manager.resume(run_id)
        assert _settled(manager, run_id).status == "completed"
        log = "\n".join(manager.snapshot(run_id).log_tail)
    finally:
        manager.shutdown(timeout=5)
    assert seen and seen[0].name == "checkpoint-4"  # not the newer checkpoint-6 without optimizer.pt
    assert "resume from checkpoint-4" in log


def test_two_sessions_keep_their_unsaved_setup_choices_apart(jobs, trainer):
    alice = app().run()
    bob = app().run()
    alice.text_input(key="cfg:name@0").set_value("alice").run()
    alice.number_input(key="cfg:training.batch_size@0").set_value(8).run()
    bob.text_input(key="cfg:name@0").set_value("bob").run()
    bob.selectbox(key="cfg:strategy.name@0").set_value("lora").run()
    for at in (alice, bob):
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    a, b = alice.session_state["tb_config"], bob.session_state["tb_config"]
    assert (a.name, a.training.batch_size, a.strategy.name) == ("alice", 8, "full")
    assert (b.name, b.training.batch_size, b.strategy.name) == ("bob", 32, "lora")

    # Alice starts; Bob's unsaved form is untouched, and the run carries Alice's config only.
    alice.button(key="tb_setup_start").click().run()
    run_id = alice.query_params.get("run")
    assert run_id and wait_for(lambda: jobs.snapshot(run_id).status == "completed")
    assert jobs.config(run_id).name == "alice" and jobs.config(run_id).training.batch_size == 8
    bob.run()
    assert bob.session_state["tb_config"].name == "bob"
    assert bob.text_input(key="cfg:name@0").value == "bob"
    assert [r.run_id for r in jobs.list_runs()] == [run_id]  # one click, one run

    # Alice closes the tab and opens the run's link again: a fresh session reattaches to the run.
    reopened = open_page("pages/train.py", {"run": run_id})
    assert not reopened.exception
    assert run_id in texts(reopened.sidebar.caption)


def test_atomic_writes_get_the_mode_other_files_get(tmp_path):
    """mkstemp makes owner-only files; a config, card or Modelfile someone else must read gets the umask's mode."""
    import os

    from core.files import FILE_MODE, atomic_write_text

    atomic_write_text(tmp_path / "Modelfile", "FROM ./model.gguf\n")
    assert (tmp_path / "Modelfile").stat().st_mode & 0o777 == FILE_MODE
    assert FILE_MODE & 0o044 or os.umask(os.umask(0)) & 0o044  # readable by others unless the umask forbids it
