"""The base model's probes and per-example predictions, scored once per run and kept off the way to step 1.

Every run scores its base model: the probes at step 0, and the per-example pass over the evaluation
sample (core.insight.predictions: 'base', and for instruction tuning the base model's generated answers).
On a CPU that is seconds of work (MiniLM's 500-row sample: ~3 s on the 2-core CPU, 6 CPU-seconds; the news
preset's 78 generated answers: ~22 s), and nothing in training needs it. So on a CPU the engine keeps the
base model aside (`kept_aside`: a copy that shares every frozen weight with the model that trains) and
scores it right after the first loss point reached the run's metrics (`ScoreBaseAfterFirstLog`). On an
accelerator the passes are quick and memory holds the model and its optimizer, so they run before training.

The work is deferred, never dropped: a run that leaves the Trainer before its first log (stopped at once)
scores the copy then (`BaseScoring.run` is idempotent). The seconds it takes inside the Trainer's loop are
counted, so that the loop's speed (samples/s, and the speed an estimate reuses) leaves them out.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback


def kept_aside(model: Any, *, share_frozen: bool = True) -> Any:
    """A copy of the model as it is now, to score later: trainable weights copied, frozen ones shared.

    A frozen weight does not change while the run trains, so sharing it costs no memory: a LoRA run
    copies its adapters only. share_frozen=False copies every weight, for a strategy that thaws frozen
    ones later (gradual unfreezing).
    """
    shared = {id(p): p for p in model.parameters() if not p.requires_grad} if share_frozen else {}
    # deepcopy consults its memo first: a weight found there is used as it is instead of copied.
    return copy.deepcopy(model, memo=shared)


class BaseScoring:
    """Scores the base model once: its probes (step 0, phase 'base') and the recorder's base stage."""

    def __init__(self, model: Any, score_probes: Callable[[Any], list[dict[str, Any]]], recorder: Any, sink: Any):
        self._model = model
        self._score_probes = score_probes
        self._recorder = recorder  # core.insight.predictions.PredictionRecorder, or None without an eval set
        self._sink = sink
        self.done = False

    def run(self) -> float:
        """Score now, unless done already; returns the seconds it took (0 when done before).

        The model is let go as soon as the scoring begins: a copy kept aside is freed once it ends.
        """
        from core.training.prompting import report_answers

        if self.done:
            return 0.0
        self.done = True
        model, self._model = self._model, None
        started = time.perf_counter()
        self._sink.log("Scoring the probes with the base model.")
        for result in self._score_probes(model):
            self._sink.probe(0, "base", result["text"], result["predictions"])
        if self._recorder is not None:
            self._sink.log("Storing the base model's per-example predictions on the evaluation set.")
            report_answers(self._sink, 0, "base", self._recorder.base(model))
        return time.perf_counter() - started


class ScoreBaseAfterFirstLog(TrainerCallback):
    """Runs the deferred base scoring at the Trainer's first log (step 1), after the loss was published.

    Added after the callbacks that publish the loss, so the first point is on the chart (and in
    metrics.jsonl) before the scoring starts. `seconds`: how long the scoring held up the loop.
    """

    def __init__(self, scoring: BaseScoring):
        self.scoring = scoring
        self.seconds = 0.0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.scoring.done:
            self.seconds += self.scoring.run()


def without_base_scoring(summary: dict[str, Any], seconds: float) -> None:
    """The Trainer's summary with the seconds the base scoring took inside its loop left out of its speed.

    train_runtime and the per-second rates then describe training (and its evaluations) alone, as they
    did when the base model was scored before the Trainer started; the seconds are kept as base_scoring_s.
    """
    runtime = summary.get("train_runtime")
    if not seconds or not runtime or seconds >= runtime:
        return
    loop = runtime - seconds
    for key in ("train_samples_per_second", "train_steps_per_second"):
        if summary.get(key):
            summary[key] = round(summary[key] * runtime / loop, 3)
    summary["train_runtime"] = round(loop, 4)
    summary["base_scoring_s"] = round(seconds, 2)
