"""The script thread never imports the ML libraries while the warm-up thread is importing them."""

from __future__ import annotations

import threading
import time

import ui.state
from core.config import RunConfig


def test_wait_for_warm_up_joins_a_running_warm_up(monkeypatch):
    release = threading.Event()
    thread = threading.Thread(target=release.wait, args=(5,), daemon=True)
    thread.start()
    monkeypatch.setattr(ui.state, "_warm_up", [thread])
    started = time.monotonic()
    threading.Timer(0.3, release.set).start()
    ui.state.wait_for_warm_up()
    assert not thread.is_alive() and time.monotonic() - started >= 0.25


def test_wait_for_warm_up_returns_at_once_without_one(monkeypatch):
    monkeypatch.setattr(ui.state, "_warm_up", [])
    started = time.monotonic()
    ui.state.wait_for_warm_up()
    assert time.monotonic() - started < 0.1


def test_start_waits_for_the_warm_up_before_the_engine_checks(monkeypatch):
    order = []
    monkeypatch.setattr(ui.state, "wait_for_warm_up", lambda timeout=None: order.append("wait"))
    from core.training import engine

    monkeypatch.setattr(engine, "preflight", lambda cfg: order.append("preflight"))
    ui.state.preflight_after_warm_up(RunConfig())
    assert order == ["wait", "preflight"]


def test_a_training_process_waits_unless_warm_up_or_standby_is_switched_off(monkeypatch):
    for warm_up, standby, waits in [("1", "1", True), ("1", "0", False), ("0", "1", False)]:
        monkeypatch.setenv("TUNEBOARD_WARM_UP", warm_up)
        monkeypatch.setenv("TUNEBOARD_STANDBY", standby)
        assert ui.state.training_process_waits() is waits
