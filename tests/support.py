"""Shared helpers of the tests (plain code, no fixtures: those live in conftest.py).

- `FakeTrainer`, the one stand-in for engine.train used by the JobManager, sweep and page tests;
- `make_run`, a run folder written with RunFolder/RunSink exactly as the engine writes it, without
  training (the real JobManager reads it);
- `app` / `open_page` and the text helpers of the AppTest page tests;
- `wait_for`, polling while worker threads run the fake trainer.

Not collected (its name does not start with test_), and imported by a fresh interpreter in
test_import_hygiene: it must not import torch or transformers.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.config import RunConfig
from core.errors import TrainingError
from core.run.folder import RunFolder, new_run_id, now_iso
from core.run.sink import RunSink

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
TIMEOUT = 90  # the first run of a session imports torch for the device label and estimates

STEPS = 12  # the steps of a FakeTrainer run unless told otherwise

BASE_MLM = [{"token": "comfortable", "score": 0.05}, {"token": "good", "score": 0.04}, {"token": "nice", "score": 0.03}]
TUNED_MLM = [{"token": "comfortable", "score": 0.41}, {"token": "stylish", "score": 0.22}, {"token": "good", "score": 0.1}]
BASE_CLS = [{"label": "negative", "score": 0.52}, {"label": "positive", "score": 0.48}]
TUNED_CLS = [{"label": "positive", "score": 0.91}, {"label": "negative", "score": 0.09}]


# ---- the fake trainer ------------------------------------------------------------------------

class FakeTrainer:
    """Stands in for engine.train as its interface says: sets `running` itself, streams metrics and
    progress through the sink, checks the stop event after every step, saves a complete checkpoint when
    stopped, resumes from the newest complete checkpoint, and ends `completed` or `stopped`.

    Knobs for the scenarios: `hold` waits for Stop (at most 20 s) before each step; `gate`, when set to
    an Event, waits on it before step 1; `raise_at=(step, error)` raises there; `finish_status=False`
    returns without a final status. `calls` lists (run_id, resume) per call; `started` is set once
    the run is `running`.
    """

    def __init__(self, steps: int = STEPS, step_s: float = 0.01, hold: bool = False):
        self.steps, self.step_s, self.hold = steps, step_s, hold
        self.gate: threading.Event | None = None
        self.raise_at: tuple[int, BaseException] | None = None
        self.finish_status = True
        self.calls: list[tuple[str, bool]] = []
        self.started = threading.Event()

    def __call__(self, cfg, folder: RunFolder, sink, stop_event: threading.Event, *, resume: bool = False) -> str:
        self.calls.append((folder.run_id, resume))
        start = 0
        if resume:  # like the engine: resuming needs a complete checkpoint
            checkpoint = folder.last_complete_checkpoint()
            if checkpoint is None:
                raise TrainingError(f"Run {folder.run_id} has no complete checkpoint to resume from.")
            start = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
            sink.event("resume", start, f"Resumed from {checkpoint.name}")
        sink.set_status(status="running", started_at=now_iso(), max_steps=self.steps)
        sink.set_samples_per_step(4)
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        for step in range(start + 1, self.steps + 1):
            if self.hold:
                stop_event.wait(20)
            time.sleep(self.step_s)
            if self.raise_at and step == self.raise_at[0]:
                raise self.raise_at[1]
            sink.metric({"step": step, "epoch": step / self.steps, "loss": 1.0 / step, "learning_rate": 1e-3})
            sink.progress(step, self.steps, step / self.steps)
            if stop_event.is_set():
                save_checkpoint(folder, step)
                sink.event("stop", step, f"Stopped at step {step}; checkpoint saved.")
                sink.set_status(status="stopped", step=step)
                return "stopped"
        if not self.finish_status:
            return "completed"
        sink.set_status(status="completed", step=self.steps, final_metrics={"loss": 1.0 / self.steps})
        return "completed"


def save_checkpoint(folder: RunFolder, step: int) -> Path:
    """A complete (fake) Trainer checkpoint: weights, optimizer, scheduler and trainer_state.json."""
    checkpoint = folder.path / f"checkpoint-{step}"
    checkpoint.mkdir()
    for name in ("optimizer.pt", "scheduler.pt", "model.safetensors"):
        (checkpoint / name).write_bytes(b"x" * 10)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return checkpoint


# ---- run folders -----------------------------------------------------------------------------

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


# ---- AppTest pages ---------------------------------------------------------------------------

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
