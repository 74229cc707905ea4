"""Shared pieces of the AppTest page tests: canned run folders, a fake trainer, an app factory.

No training happens in page tests: run folders are written with RunFolder/RunSink exactly as the
engine writes them, and the real JobManager reads them. Runs started from the UI go to a fake
`train_fn` that streams a few metrics and ends `completed` (or waits for Stop).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.config import RunConfig
from core.run.folder import RunFolder, new_run_id, now_iso
from core.run.sink import RunSink
from core.service.jobs import JobManager

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
TIMEOUT = 90  # the first run of a session imports torch for the device label and estimates

BASE_MLM = [{"token": "comfortable", "score": 0.05}, {"token": "good", "score": 0.04}, {"token": "nice", "score": 0.03}]
TUNED_MLM = [{"token": "comfortable", "score": 0.41}, {"token": "stylish", "score": 0.22}, {"token": "good", "score": 0.1}]
BASE_CLS = [{"label": "negative", "score": 0.52}, {"label": "positive", "score": 0.48}]
TUNED_CLS = [{"label": "positive", "score": 0.91}, {"label": "negative", "score": 0.09}]


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    """Caches are process-wide: clear them so no test sees another's state."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


class FakeTrainer:
    """Stands in for engine.train: streams `steps` steps, honours Stop, ends completed/stopped."""

    def __init__(self, steps: int = 6, step_s: float = 0.0, hold: bool = False):
        self.steps, self.step_s, self.hold = steps, step_s, hold
        self.started = threading.Event()
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, cfg, folder, sink, stop_event, *, resume: bool = False) -> str:
        self.calls.append((folder.run_id, resume))
        sink.set_status(status="running", started_at=now_iso(), max_steps=self.steps)
        self.started.set()
        for step in range(1, self.steps + 1):
            if self.hold:  # wait for Stop (at most 20 s) before the first step
                stop_event.wait(20)
            time.sleep(self.step_s)
            sink.metric({"step": step, "epoch": step / self.steps, "loss": 2.0 / step, "learning_rate": 1e-4})
            sink.progress(step, self.steps, step / self.steps)
            if stop_event.is_set():
                sink.event("stop", step, f"Stopped at step {step}.")
                sink.set_status(status="stopped", step=step, elapsed_s=1.0)
                return "stopped"
        sink.set_status(status="completed", step=self.steps, elapsed_s=1.0, final_metrics={"loss": 0.3})
        return "completed"


@pytest.fixture
def runs_root(isolated_runs) -> Path:
    """The runs folder of this test (conftest points $TUNEBOARD_RUNS at it)."""
    isolated_runs.mkdir(parents=True, exist_ok=True)
    return isolated_runs


@pytest.fixture
def trainer() -> FakeTrainer:
    return FakeTrainer()


@pytest.fixture
def jobs(runs_root, trainer, monkeypatch):
    """A real JobManager on the test's runs folder with the fake trainer, injected into the app."""
    import ui.state

    manager = JobManager(runs_root, train_fn=trainer, preflight_fn=lambda cfg: None)
    monkeypatch.setattr(ui.state, "get_jobs", lambda: manager)
    yield manager
    manager.shutdown(timeout=10)


def app(query: dict | None = None) -> AppTest:
    """The app from its entrypoint (not yet run)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at


def open_page(page: str, query: dict | None = None) -> AppTest:
    """Run the app, then switch to `page` (e.g. 'pages/train.py') and run it."""
    at = app(query).run()
    assert not at.exception, [e.value for e in at.exception]
    return at.switch_page(page).run()


def make_run(
    root: Path,
    *,
    task: str = "mlm",
    status: str = "completed",
    name: str = "demo",
    strategy: str = "full",
    steps: int = 40,
    error: str | None = None,
    load_report: dict | None = None,
    probes: bool = True,
    final_model: bool = False,
) -> str:
    """Write a run folder as the engine would, without training; returns its id."""
    cfg = RunConfig(task=task, name=name)
    cfg.strategy.name = strategy
    run_id = new_run_id(cfg)
    while (root / run_id).exists():  # ids are per second; tests make several per second
        run_id = new_run_id(cfg)
    folder = RunFolder.create(root, run_id, cfg)
    sink = RunSink(folder, load_existing=False)
    for step in range(5, steps + 1, 5):
        sink.metric({"step": step, "epoch": step / steps, "loss": 3.0 - step * 0.05,
                     "learning_rate": 5e-5 * (1 - step / steps), "grad_norm": 1.0})
    for step in (20, steps):
        if task == "classification":
            sink.metric({"step": step, "eval_loss": 0.5, "eval_accuracy": 0.8 + step / 1000,
                         "eval_precision": 0.8, "eval_recall": 0.8, "eval_f1": 0.79})
        else:
            sink.metric({"step": step, "eval_loss": 2.5 - step / 100, "eval_perplexity": 12.0 - step / 10})
    sink.event("checkpoint", 20, "Saved checkpoint-20.")
    sink.event("unfreeze", 10, "Unfroze layer 5.")
    sink.log("Loaded the model.")
    sink.log("Training started.")
    if probes:
        base, tuned = (BASE_CLS, TUNED_CLS) if task == "classification" else (BASE_MLM, TUNED_MLM)
        for text in cfg.probe_texts()[:2]:
            sink.probe(0, "base", text, base)
            sink.probe(20, "eval", text, base[::-1])
            sink.probe(steps, "final", text, tuned)
    sink.progress(steps, steps, 1.0)
    final = {"eval_loss": 2.1, "eval_perplexity": 8.2} if task != "classification" else {"eval_accuracy": 0.84, "eval_f1": 0.83}
    sink.set_status(status=status, step=steps, max_steps=steps, epoch=1.0, error=error, elapsed_s=75.0,
                    started_at=now_iso(), finished_at=now_iso(), final_metrics=final,
                    trainable_params=22_700_000, total_params=22_700_000, load_report=load_report)
    if final_model:
        (folder.final_path).mkdir()
        (folder.final_path / "config.json").write_text("{}")
        (folder.final_path / "model.safetensors").write_bytes(b"\0" * 16)
    return run_id


def texts(elements) -> list[str]:
    """The .value of every element, as strings."""
    return [str(e.value) for e in elements]


def all_text(at: AppTest) -> str:
    """Markdown, captions, alerts, titles and subheaders of the page, joined."""
    parts = []
    for kind in (at.markdown, at.caption, at.error, at.warning, at.info, at.success, at.title, at.subheader):
        parts += texts(kind)
    return "\n".join(parts)


def wait_for(predicate, timeout: float = 15.0) -> bool:
    """Poll until predicate() is true (worker threads run the fake trainer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
