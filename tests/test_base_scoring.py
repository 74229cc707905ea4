"""core.training.base_scoring: the base model is scored after the first loss point on a CPU, and never skipped."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
import torch

from core.config import RunConfig
from core.data.probe_texts import run_probe_texts
from core.run.folder import RunFolder
from core.run.sink import RunSink
from core.training import base_scoring, engine
from core.training.base_scoring import BaseScoring, ScoreBaseAfterFirstLog, kept_aside, without_base_scoring


def _two_layers() -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)  # frozen, as a LoRA run's base weights are
    return model


def test_the_copy_kept_aside_shares_frozen_weights_and_keeps_the_trainable_ones_as_they_were():
    model = _two_layers()
    aside = kept_aside(model)
    assert aside[0].weight is model[0].weight  # frozen: shared, no memory spent
    assert aside[1].weight is not model[1].weight
    before = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.add_(1.0)  # training moves the live model
    assert torch.equal(aside[1].weight, before)
    full = kept_aside(model, share_frozen=False)  # gradual unfreezing thaws frozen weights later
    assert full[0].weight is not model[0].weight and torch.equal(full[0].weight, model[0].weight)


class _Sink:
    def __init__(self):
        self.probes, self.lines = [], []

    def log(self, message):
        self.lines.append(message)

    def probe(self, step, phase, text, predictions):
        self.probes.append((step, phase, text))


def test_scoring_runs_once_at_the_first_log_and_lets_the_copy_go():
    scored = []
    sink = _Sink()
    scoring = BaseScoring("the copy", lambda model: scored.append(model) or [{"text": "t", "predictions": []}], None, sink)
    callback = ScoreBaseAfterFirstLog(scoring)
    callback.on_log(None, None, None, logs={"loss": 1.0})
    callback.on_log(None, None, None, logs={"loss": 0.9})
    assert scored == ["the copy"] and sink.probes == [(0, "base", "t")]
    assert scoring.done and scoring._model is None and scoring.run() == 0.0
    assert callback.seconds >= 0.0


def test_the_loops_speed_leaves_the_scoring_out():
    summary = {"train_runtime": 10.0, "train_samples_per_second": 32.0, "train_steps_per_second": 1.0}
    without_base_scoring(summary, 2.0)
    assert summary == {"train_runtime": 8.0, "train_samples_per_second": 40.0, "train_steps_per_second": 1.25,
                       "base_scoring_s": 2.0}
    untouched = {"train_runtime": 1.0, "train_samples_per_second": 32.0}
    without_base_scoring(untouched, 0.0)
    without_base_scoring(untouched, 5.0)  # more than the runtime: a summary it cannot be right about
    assert untouched == {"train_runtime": 1.0, "train_samples_per_second": 32.0}


@pytest.mark.parametrize("task", ["mlm", "classification"])
def test_a_cpu_run_publishes_its_first_loss_before_scoring_the_base_model(task, tiny_bert, tmp_path, monkeypatch):
    cfg = RunConfig(task=task)
    cfg.model.source, cfg.model.max_length = tiny_bert, 32
    cfg.data.synthetic.rows = 120
    t = cfg.training
    t.max_steps, t.batch_size, t.learning_rate, t.logging_steps, t.eval_steps, t.save_steps = 3, 8, 1e-3, 1, 1, 3
    cfg.validate()
    folder = RunFolder.create(tmp_path, f"deferred-{task}", cfg)
    seen = []
    real_run = BaseScoring.run

    def run(self):
        seen.append([m for m in folder.metrics() if "loss" in m or "eval_loss" in m])
        return real_run(self)

    monkeypatch.setattr(base_scoring.BaseScoring, "run", run)
    assert engine.train(cfg, folder, RunSink(folder), threading.Event()) == "completed"
    first = seen[0]
    assert [m["step"] for m in first] == [1] and "loss" in first[0]  # step 1's loss, before its evaluation
    assert len([p for p in folder.probes() if p["phase"] == "base"]) == len(run_probe_texts(cfg))
    base = pd.read_parquet(folder.predictions_path / "base.parquet")
    assert len(base) == folder.status()["data_report"]["eval_rows"]
    speed = folder.status()["speed"]
    assert speed is None or speed["overhead_s"] > 0
