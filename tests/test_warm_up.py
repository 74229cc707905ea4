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


def test_a_pages_models_load_ahead_once_after_the_warm_up_and_a_failure_is_left_to_the_page(monkeypatch):
    warm_up_done = threading.Event()
    warming = threading.Thread(target=warm_up_done.wait, args=(5,), daemon=True)
    warming.start()
    monkeypatch.setattr(ui.state, "warm_up", lambda: warming)
    monkeypatch.setattr(ui.state, "_loaded_ahead", {})
    calls = []

    def load():
        calls.append(warm_up_done.is_set())

    first = ui.state.load_ahead("chat:a", load)
    assert ui.state.load_ahead("chat:a", load) is first  # one load per key, however often the page reruns
    threading.Timer(0.2, warm_up_done.set).start()
    first.join(5)
    assert calls == [True]  # it waited for the warm-up's imports

    def fails():
        raise RuntimeError("no weights")

    ui.state.load_ahead("chat:b", fails).join(5)  # nothing escapes the thread; the page's own call shows it


def test_nothing_loads_ahead_when_the_warm_up_is_off(monkeypatch):
    monkeypatch.setenv("TUNEBOARD_WARM_UP", "0")
    monkeypatch.setattr(ui.state, "_loaded_ahead", {})
    assert ui.state.load_ahead("chat:a", lambda: (_ for _ in ()).throw(AssertionError("loaded"))) is None


def test_a_model_load_ahead_and_the_first_message_load_the_models_once(monkeypatch, tmp_path):
    from core.insight import generate, probes

    loads = []

    def slow_base(cfg, before="parent"):
        loads.append("base")
        time.sleep(0.3)
        return "base"

    cached = {}
    monkeypatch.setattr(probes, "base_model_for", lambda cfg, before="parent": cached.get("base") or cached.setdefault(
        "base", slow_base(cfg, before)))
    monkeypatch.setattr(probes, "tuned_model_for", lambda cfg, source, before="parent": "tuned")
    run = tmp_path / "run"
    cfg = RunConfig(task="sft")
    run.mkdir()
    cfg.save(run / "config.yaml")
    (run / "final").mkdir()
    (run / "final" / "adapter_config.json").write_text("{}")
    results = []
    threads = [threading.Thread(target=lambda: results.append(generate.load_models(run))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == [("base", "tuned")] * 2 and loads == ["base"]
