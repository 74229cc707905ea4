"""Engine: a run with no length set trains by the default rule (core.training.run_length), evaluates several
times, keeps its best checkpoint, stops on a plateau, and says when it ended still improving.

The tiny models learn nothing meaningful in a few steps, so the evaluations' main metric is scripted per step
(as test_engine's early-stopping test does): the Trainer's best checkpoint and early stopping read the same
figures the run records.
"""

from __future__ import annotations

import threading

import pytest

from core.config import RunConfig
from core.run.folder import RunFolder
from core.run.sink import RunSink
from core.training import engine, run_length


def auto_config(model_dir: str, task: str, **training) -> RunConfig:
    """A tiny run whose length, evaluation interval and patience are left to the rule."""
    cfg = RunConfig(task=task)
    cfg.model.source = model_dir
    cfg.model.max_length = 32
    cfg.data.synthetic.rows = 160  # ~137 training rows after the 10% split and cleaning: 9 steps per pass at batch 16
    t = cfg.training
    t.batch_size, t.learning_rate, t.logging_steps = 16, 1e-3, 1
    for key, value in training.items():
        setattr(t, key, value)
    return cfg.validate()


def script_metric(monkeypatch, key: str, by_step: dict[int, float]) -> None:
    """Every evaluation reports by_step[step] as `key` (the last value for steps past the script)."""
    from core.training import callbacks

    original = callbacks.SinkCallback.on_evaluate
    last = max(by_step)

    def scripted(self, args, state, control, metrics=None, **kwargs):
        metrics[key] = by_step.get(state.global_step, by_step[last])
        return original(self, args, state, control, metrics=metrics, **kwargs)

    monkeypatch.setattr(callbacks.SinkCallback, "on_evaluate", scripted)


def train(cfg: RunConfig, root) -> tuple[str, RunFolder]:
    folder = RunFolder.create(root, f"r-{cfg.task}", cfg)
    status = engine.train(cfg, folder, RunSink(folder, load_existing=False), threading.Event())
    return status, folder


def evaluated_steps(folder: RunFolder) -> list[int]:
    return [m["step"] for m in folder.metrics() if "eval_loss" in m]


@pytest.fixture
def small_floor(monkeypatch):
    """The rule at a test's scale: a 30-step floor (6 evaluations, every 5 steps) instead of MiniLM's."""
    monkeypatch.setattr(run_length, "MIN_STEPS", 30)
    monkeypatch.setattr(run_length, "SAMPLES_PER_CLASS", 40)


def test_an_automatic_run_evaluates_keeps_the_best_and_stops_on_a_plateau(tiny_bert, tmp_path, monkeypatch,
                                                                          small_floor):
    # F1 rises to step 10, then never beats it: patience 3 stops after the evaluation at step 25.
    script_metric(monkeypatch, "eval_f1", {5: 0.5, 10: 0.7, 15: 0.65, 20: 0.6, 25: 0.6})
    status, folder = train(auto_config(tiny_bert, "classification"), tmp_path)
    assert status == "completed"
    info = folder.status()
    planned = dict(info["run_length"])
    rows = planned.pop("train_rows")  # 160 rows less the held-out tenth, empty texts and repeats
    assert 9 * 16 >= rows > 8 * 16  # 9 steps per pass: two passes (18 steps) are under the floor
    assert planned == {"steps": 30, "epochs": 3.33, "eval_steps": 5, "evaluations": 6, "patience": 3,
                       "automatic": True, "bound": "step floor"}
    assert evaluated_steps(folder) == [5, 10, 15, 20, 25]  # several evaluations, then the plateau
    assert info["step"] == 25 and info["max_steps"] == 30
    assert any(m.get("event") == "early_stop" for m in folder.metrics())
    assert info["best"]["step"] == 10 and info["final_metrics"]["eval_f1"] == pytest.approx(0.7)
    assert info.get("still_improving") is None
    log = "\n".join(folder.log_tail(80))
    assert f"Training for 30 steps (3.33 passes over {rows} rows)" in log and "floor of 30 steps" in log
    assert "Kept the best model, from step 10" in log
    # The saved config keeps its blanks: a resumed or repeated run applies the rule to its data again.
    saved = folder.config().training
    assert (saved.epochs, saved.max_steps, saved.eval_steps, saved.early_stopping_patience) == (None, 0, None, None)


def test_a_run_still_improving_at_the_end_says_so(tiny_bert, tmp_path, monkeypatch, small_floor):
    monkeypatch.setattr(run_length, "MIN_STEPS", 20)
    script_metric(monkeypatch, "eval_loss", {step: 2.0 - step / 40 for step in range(5, 25, 5)})
    status, folder = train(auto_config(tiny_bert, "mlm"), tmp_path)
    assert status == "completed"
    info = folder.status()
    assert evaluated_steps(folder) == [5, 10, 15, 20]
    found = info["still_improving"]
    assert found["metric"] == "eval_loss" and found["step"] == 20 and found["evaluations"] == 4
    assert found["value"] == pytest.approx(1.5) and found["before"] == pytest.approx(1.625)
    assert "Still improving at the end" in "\n".join(folder.log_tail(80))


def test_a_length_the_user_set_trains_to_the_end_without_early_stopping(tiny_bert, tmp_path, monkeypatch):
    script_metric(monkeypatch, "eval_loss", {5: 1.0})  # flat from the first evaluation on
    status, folder = train(auto_config(tiny_bert, "mlm", max_steps=12), tmp_path)
    assert status == "completed"
    info = folder.status()
    assert info["step"] == 12
    assert evaluated_steps(folder) == [5, 10, 12]  # an empty interval still gives several evaluations
    assert not any(m.get("event") == "early_stop" for m in folder.metrics())
    assert info["run_length"]["automatic"] is False and info["run_length"]["patience"] == 0
    assert info.get("still_improving") is None
    assert "Training for 12 steps" in "\n".join(folder.log_tail(80))
