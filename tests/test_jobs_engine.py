"""JobManager driving the real engine: stop within a step, resume to the end, steps continue."""

from __future__ import annotations

import time

import pytest

from core.service.jobs import JobManager
from tests.test_engine import tiny_config


def wait_for(condition, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
def test_real_engine_stop_and_resume_through_the_manager(tmp_path, tiny_bert):
    manager = JobManager(tmp_path / "runs")
    try:
        cfg = tiny_config(tiny_bert, "mlm", max_steps=400, save_steps=1000, eval_steps=1000)
        run_id = manager.submit(cfg)
        wait_for(lambda: manager.snapshot(run_id).step >= 3)
        manager.stop(run_id)
        stopped_at = manager.snapshot(run_id).step
        # The worker has handed the run back (the training process exited, the final status is written).
        wait_for(lambda: manager.snapshot(run_id).status == "stopped" and not manager.is_busy(run_id))
        snap = manager.snapshot(run_id)
        # Cooperative stop lands within a step or two: it travels through a pipe to the training
        # process, and the step this test read had come back through one (tiny steps take ~50 ms).
        assert snap.step <= stopped_at + 2
        assert any(e["event"] == "stop" for e in snap.events)
        manager.resume(run_id)
        wait_for(lambda: manager.snapshot(run_id).status == "completed", 300)
        snap = manager.snapshot(run_id)
        steps = [m["step"] for m in snap.metrics if "loss" in m]
        assert steps == sorted(steps) and steps[-1] == 400
        assert len(steps) == len(set(steps))  # continued, not restarted at 0
        assert manager.list_runs()[0].run_id == run_id
    finally:
        manager.shutdown()
