"""Trainer callbacks: they turn the training loop's events into plain data and signals.

A callback never reaches into the loop: it publishes to the RunSink and asks for things (stop, save)
through `control`, as TrainerCallback intends.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from core.errors import TrainingError
from core.run.sink import RunSink
from core.training.metrics import perplexity

# Keys of the Trainer's end-of-training summary log; they belong in status.json, not on a chart.
SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss")


class SinkCallback(TrainerCallback):
    """Streams logs, evaluations, probe scores and progress into the sink; honours Stop."""

    def __init__(
        self,
        sink: RunSink,
        stop_event: threading.Event,
        *,
        score_probes: Callable[[Any], list[dict[str, Any]]] | None = None,
        language_model: bool = False,
        samples_per_step: int = 0,
        after_evaluate: Callable[[int, Any], None] | None = None,
        checkpoint_at_end: bool = True,
    ):
        self.sink = sink
        # False when the run keeps its last weights and deletes checkpoints: the Trainer's save at the
        # last step would write the optimizer state (3x the model) only for the engine to remove it.
        self.checkpoint_at_end = checkpoint_at_end
        self.stop_event = stop_event
        self.score_probes = score_probes
        self.language_model = language_model
        self.samples_per_step = samples_per_step
        self.after_evaluate = after_evaluate  # stores per-example predictions (core.insight.predictions)
        self.stopped_by_user = False
        self.summary: dict[str, float] = {}
        # Kept on every rank (not only the one writing files) so all ranks agree on a final evaluate().
        self.last_eval_step: int | None = None
        self.last_eval: dict[str, float] = {}
        self.evals: dict[int, dict[str, float]] = {}  # by step: the kept best checkpoint's figures

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.sink.set_samples_per_step(self.samples_per_step)
            self.sink.progress(state.global_step, state.max_steps, state.epoch or 0.0)

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.sink.progress(state.global_step, state.max_steps, state.epoch or 0.0)
        if self.stop_event.is_set() and not self.stopped_by_user:
            # Cooperative stop: the Trainer saves a checkpoint for this step, then leaves its loop.
            self.stopped_by_user = True
            control.should_training_stop = True
            control.should_save = True
            if state.is_world_process_zero:
                self.sink.event("stop", state.global_step, f"Stop requested: saving a checkpoint at step {state.global_step}.")
        elif not self.checkpoint_at_end and state.global_step >= state.max_steps and not self.stopped_by_user:
            control.should_save = False
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if any(key in logs for key in SUMMARY_KEYS):
            self.summary.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
            return
        if "loss" not in logs or any(key.startswith("eval_") for key in logs):
            return
        loss = logs["loss"]
        if isinstance(loss, float) and not math.isfinite(loss):
            raise TrainingError(
                f"The training loss became {loss} at step {state.global_step}. Lower the learning rate "
                "(e.g. by 10x), add warmup, or check the data for empty or extreme rows; then start again."
            )
        if state.is_world_process_zero:
            record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
            for key in ("loss", "learning_rate", "grad_norm"):
                if key in logs:
                    record[key] = float(logs[key])
            self.sink.metric(record)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        record: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        for key, value in (metrics or {}).items():
            if key.startswith("eval_") and isinstance(value, (int, float)) and not key.endswith(("_runtime", "per_second")):
                record[key] = float(value)
        eval_loss = record.get("eval_loss")
        if eval_loss is not None and not math.isfinite(eval_loss):
            raise TrainingError(
                f"The evaluation loss became {eval_loss} at step {state.global_step}: training diverged. "
                "Lower the learning rate (e.g. by 10x) or add warmup, then start again."
            )
        if self.language_model and "eval_loss" in record:
            record["eval_perplexity"] = perplexity(record["eval_loss"])
        self.last_eval_step = state.global_step
        self.last_eval = {k: v for k, v in record.items() if k.startswith("eval_")}
        self.evals[state.global_step] = self.last_eval
        if not state.is_world_process_zero:
            return
        self.sink.metric(record)
        model = kwargs.get("model")
        if self.score_probes is not None and model is not None:
            for result in self.score_probes(model):
                self.sink.probe(state.global_step, "eval", result["text"], result["predictions"])
        if self.after_evaluate is not None and model is not None:
            self.after_evaluate(state.global_step, model)

    def eval_curve(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of one evaluation figure at every evaluation heard so far, oldest first."""
        return [(step, figures[key]) for step, figures in sorted(self.evals.items()) if key in figures]

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.sink.event("checkpoint", state.global_step, f"Checkpoint saved at step {state.global_step}.")


def unfrozen_phases(global_step: int, epoch: float, every_steps: int) -> int:
    """How many unfreezing phases have begun by this point of training (0 = head only)."""
    if every_steps > 0:
        return global_step // every_steps
    return int(math.floor(epoch + 1e-9))


class GradualUnfreezeCallback(TrainerCallback):
    """Unfreezes one more block from the top at each phase boundary (every K steps or each epoch).

    The phase is a pure function of the step, so a resumed run re-applies exactly the phases it had.
    """

    def __init__(self, unfreezer: Any, sink: RunSink, every_steps: int):
        self.unfreezer = unfreezer
        self.sink = sink
        self.every_steps = every_steps
        self.applied = 0

    def _catch_up(self, state) -> None:
        wanted = unfrozen_phases(state.global_step, state.epoch or 0.0, self.every_steps)
        while self.applied < wanted:
            message = self.unfreezer.unfreeze_next()
            self.applied += 1
            if message is None:
                self.applied = wanted
                break
            if state.is_world_process_zero:
                self.sink.event("unfreeze", state.global_step, message)

    def on_train_begin(self, args, state, control, **kwargs):
        self._catch_up(state)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every_steps > 0:
            self._catch_up(state)

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.every_steps == 0:
            self._catch_up(state)
