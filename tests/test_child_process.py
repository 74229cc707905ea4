"""Training in a child process (core.service.child_process) behind the JobManager, as the dashboard runs it.

The child is real: `python -m core.service.child_process` on a tiny model. Tests that must stop or kill it
mid-run slow its steps through tests/child_hooks/sitecustomize.py (a child process cannot be
monkeypatched from here).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from core.run.folder import RunFolder
from core.run.sink import RunSink
from core.service import child_process
from core.service.child_process import RelaySink
from core.service.jobs import JobManager
from tests.test_engine import tiny_config

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "tests" / "child_hooks"

pytestmark = pytest.mark.slow  # each test starts a Python process that imports torch


def _wait(condition, timeout_s: float = 180.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _settled(manager: JobManager, run_id: str, timeout_s: float = 180.0):
    _wait(lambda: not manager.is_busy(run_id) and manager.snapshot(run_id).status not in ("queued", "running"),
          timeout_s, f"run {run_id} to end")
    return manager.snapshot(run_id)


@pytest.fixture
def slow_child_steps(monkeypatch):
    """Every training child sleeps before each step, so a test can act mid-run."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HOOKS), str(ROOT)]))
    monkeypatch.setenv("TUNEBOARD_TEST_STEP_DELAY_S", "0.3")


@pytest.fixture
def manager(isolated_runs):
    manager = JobManager(isolated_runs)
    yield manager
    manager.shutdown(timeout=60)


def test_the_child_trains_and_the_parent_mirrors_what_it_wrote(manager, tiny_bert):
    run_id = manager.submit(tiny_config(tiny_bert, "mlm", max_steps=4))
    snap = _settled(manager, run_id)
    assert snap.status == "completed", snap.error
    folder = RunFolder(manager.runs_root / run_id)
    status = folder.status()
    assert status["training_pid"] != os.getpid()  # it really trained elsewhere
    # The in-memory snapshot every tab reads holds exactly what the child wrote to the folder.
    on_disk = [dict(m) for m in folder.metrics() if "event" not in m]
    assert [dict(m) for m in snap.metrics] == on_disk
    assert [dict(p) for p in snap.probes] == [dict(p) for p in folder.probes()]
    assert snap.step == 4 and snap.max_steps == 4
    assert any("Training in process" in line for line in snap.log_tail)
    assert (folder.final_path / "config.json").exists()


def test_stop_reaches_the_child_which_saves_a_checkpoint_and_resume_continues(manager, tiny_bert, slow_child_steps):
    run_id = manager.submit(tiny_config(tiny_bert, "mlm", max_steps=40, save_steps=1000, eval_steps=1000))
    _wait(lambda: manager.snapshot(run_id).step >= 2, what="the first steps")
    manager.stop(run_id)
    snap = _settled(manager, run_id)
    assert snap.status == "stopped", snap.error
    assert snap.step < 40
    folder = RunFolder(manager.runs_root / run_id)
    assert folder.last_complete_checkpoint() is not None
    manager.resume(run_id)
    snap = _settled(manager, run_id, 300)
    assert snap.status == "completed", snap.error
    steps = [m["step"] for m in snap.metrics if "loss" in m]
    assert steps[-1] == 40 and len(steps) == len(set(steps))


def test_a_typed_error_in_the_child_fails_the_run_with_its_message_and_field(manager, tiny_bert, tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"review number {i},{i % 2}\n" for i in range(40)))
    cfg = tiny_config(tiny_bert, "mlm")
    cfg.data.source, cfg.data.path = "file", str(data)
    run_id = manager.submit(cfg)  # validated here, while the file exists
    data.write_text("not,the\ncolumns,at all\n")  # then the file changes under the queued run
    snap = _settled(manager, run_id)
    assert snap.status == "failed"
    assert "text" in snap.error and "Traceback" not in snap.error
    assert RunFolder(manager.runs_root / run_id).status()["error_field"] == "data.text_column"


def test_a_killed_child_fails_the_run_with_advice_and_it_stays_resumable(manager, tiny_bert, slow_child_steps):
    run_id = manager.submit(tiny_config(tiny_bert, "mlm", max_steps=60, save_steps=2, eval_steps=1000))
    folder = RunFolder(manager.runs_root / run_id)
    _wait(lambda: folder.last_complete_checkpoint() is not None, what="the first checkpoint")
    os.kill(int(folder.status()["training_pid"]), signal.SIGKILL)
    snap = _settled(manager, run_id)
    assert snap.status == "failed"
    assert "killed (SIGKILL)" in snap.error and "batch_size" in snap.error
    assert manager.is_resumable(run_id)  # a complete checkpoint survived the kill


def test_the_child_keeps_the_run_locked_and_stops_when_its_server_dies(tiny_bert, tmp_path, slow_child_steps):
    """kill -9 of the server: the child sees its stdin close, stops with a checkpoint, then unlocks."""
    import subprocess
    import sys

    root = tmp_path / "runs"
    cfg_path = tmp_path / "run.yaml"
    tiny_config(tiny_bert, "mlm", max_steps=200, save_steps=1000, eval_steps=1000).save(cfg_path)
    server_code = (
        "import sys, threading\n"
        "from core.config import RunConfig\n"
        "from core.service.jobs import JobManager\n"
        "manager = JobManager(sys.argv[1])\n"
        "print(manager.submit(RunConfig.load(sys.argv[2])), flush=True)\n"
        "threading.Event().wait()\n"
    )
    server = subprocess.Popen([sys.executable, "-c", server_code, str(root), str(cfg_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        run_id = server.stdout.readline().strip()
        folder = RunFolder(root / run_id)
        _wait(lambda: folder.status().get("training_pid") and any("loss" in m for m in folder.metrics()),
              what="the child to train")
        child_pid = int(folder.status()["training_pid"])
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        # A dashboard restarted now must not take the run over: the child still owns it.
        restarted = JobManager(root, train_fn=lambda *a, **k: pytest.fail("must not train"))
        assert restarted.snapshot(run_id).status == "running"
        _wait(lambda: folder.status()["status"] == "stopped", 120, "the orphaned child to stop")
        _wait(lambda: not _alive(child_pid), 60, "the child to exit")
        assert folder.last_complete_checkpoint() is not None
        assert restarted.is_resumable(run_id)
        restarted.shutdown(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its dead parent's reaper) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_relay_sink_forwards_every_publication_and_a_mirror_rebuilds_the_same_snapshot(tmp_path):
    """The protocol itself, without a process: what the child publishes, the parent's sink shows."""
    import io
    import json

    from core.config import RunConfig

    folder = RunFolder.create(tmp_path, "relay", RunConfig())
    stream = io.StringIO()
    child = RelaySink(folder, stream)
    child.set_status(status="running")
    child.set_samples_per_step(8)
    child.progress(3, 10, 0.3)
    child.metric({"step": 3, "loss": 1.5})
    child.event("checkpoint", 3, "Saved checkpoint-3.")
    child.probe(3, "eval", "Nike shoes are very [MASK]", [{"token": "good", "score": 0.4}])
    parent = RunSink(folder, load_existing=False)
    for line in stream.getvalue().splitlines():
        message = json.loads(line)
        parent.mirror(message.pop("kind"), message)
    mirrored, written = parent.snapshot(), child.snapshot()
    for field in ("status", "step", "max_steps", "epoch", "metrics", "probes", "events", "log_tail"):
        assert getattr(mirrored, field) == getattr(written, field), field
    assert RunSink(folder).snapshot().metrics == mirrored.metrics  # and the files say the same


def test_a_relay_whose_parent_is_gone_does_not_break_training(tmp_path):
    from core.config import RunConfig

    folder = RunFolder.create(tmp_path, "orphan", RunConfig())
    read, write = os.pipe()
    os.close(read)  # the parent died
    sink = RelaySink(folder, os.fdopen(write, "w"))
    sink.metric({"step": 1, "loss": 2.0})  # BrokenPipeError is swallowed: the files are the record
    assert [m["step"] for m in folder.metrics()] == [1]


# ---- the standby child (keep_training_process_ready) ------------------------------------------

@pytest.fixture
def no_standby_left():
    yield
    child_process.discard_standby()


def _open_files(pid: int) -> set[str]:
    found = set()
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.add(os.readlink(entry))
        except OSError:
            continue
    return found


def test_a_standby_child_trains_the_next_run_holding_its_lock_and_log_then_another_waits(
        manager, tiny_bert, slow_child_steps, no_standby_left):
    assert manager.keep_training_process_ready()
    assert child_process.wait_for_standby(180), "the standby never finished importing"
    standby = child_process.standby_pid()
    run_id = manager.submit(tiny_config(tiny_bert, "mlm", max_steps=6, save_steps=1000, eval_steps=1000))
    folder = RunFolder(manager.runs_root / run_id)
    _wait(lambda: manager.snapshot(run_id).step >= 1, what="the first step")
    assert folder.status()["training_pid"] == standby  # the run went to the waiting process
    held = _open_files(standby)
    assert str((folder.path / ".lock").resolve()) in held  # it owns the run, as an inherited child would
    assert str(folder.log_path.resolve()) in held
    snap = _settled(manager, run_id)
    assert snap.status == "completed", snap.error
    log = folder.log_path.read_text()
    assert f"Training in process {standby}" in log and "Run completed" in log
    # Idle again: a new standby waits for the next Start; shutting the manager down ends it.
    _wait(lambda: child_process.standby_pid() not in (None, standby), 30, "a new standby")
    replacement = child_process.standby_pid()
    manager.shutdown(timeout=30)
    assert child_process.standby_pid() is None
    _wait(lambda: not _alive(replacement), 30, "the unused standby to exit")


def test_a_run_handed_to_a_standby_still_importing_waits_for_it(manager, tiny_bert, no_standby_left):
    """Start pressed right after the page drew: the run is sent before the standby's imports end."""
    assert manager.keep_training_process_ready()
    standby = child_process.standby_pid()
    run_id = manager.submit(tiny_config(tiny_bert, "mlm", max_steps=2))
    snap = _settled(manager, run_id)
    assert snap.status == "completed", snap.error
    assert RunFolder(manager.runs_root / run_id).status()["training_pid"] == standby


def test_a_stale_or_dead_standby_is_replaced_by_a_fresh_child(manager, tiny_bert, monkeypatch, no_standby_left):
    manager.keep_training_process_ready()
    stale = child_process.standby_pid()
    monkeypatch.setenv("TUNEBOARD_TEST_STEP_DELAY_S", "0.01")  # read by the child when it imports: stale now
    first = manager.submit(tiny_config(tiny_bert, "mlm", max_steps=2))
    assert _settled(manager, first).status == "completed"
    assert RunFolder(manager.runs_root / first).status()["training_pid"] != stale
    _wait(lambda: not _alive(stale), 30, "the stale standby to exit")

    _wait(lambda: child_process.standby_pid() is not None, 30, "the standby started after the run")
    dead = child_process.standby_pid()
    os.kill(dead, signal.SIGKILL)
    _wait(lambda: not _alive(dead), 30, "the killed standby to go")
    second = manager.submit(tiny_config(tiny_bert, "mlm", max_steps=2))
    snap = _settled(manager, second)
    assert snap.status == "completed", snap.error
    assert RunFolder(manager.runs_root / second).status()["training_pid"] != dead


def test_a_manager_that_trains_in_its_own_process_keeps_no_standby(isolated_runs, no_standby_left):
    from core.service.jobs import train_in_this_process

    manager = JobManager(isolated_runs, train_fn=train_in_this_process)
    assert not manager.keep_training_process_ready()
    assert child_process.standby_pid() is None
    manager.shutdown()


def test_training_processes_spin_briefly_then_sleep_at_openmp_barriers_unless_told_otherwise(monkeypatch):
    from core.service import child_process

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    env = child_process._child_environment()
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["GOMP_SPINCOUNT"] == "100000"
    monkeypatch.setenv("GOMP_SPINCOUNT", "0")
    assert child_process._child_environment()["GOMP_SPINCOUNT"] == "0"
    assert "GOMP_SPINCOUNT" in child_process._training_environment()  # a change makes a waiting standby stale
