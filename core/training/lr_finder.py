"""Learning-rate range test (L. Smith's LR range test, as in fastai's lr_find), built on the Trainer.

The real model, data and strategy of a RunConfig train for a few dozen steps while the learning rate
rises exponentially from START_LR to END_LR: a LambdaLR scheduler (the Trainer's `create_scheduler`)
sets the ramp and a TrainerCallback records the loss of every step, stopping the run through
`control` once the loss diverges (its smoothed value above DIVERGENCE x the best so far, or not finite).

Pick rule (`pick_learning_rate`): smooth the losses with a debiased moving average (weight
SMOOTHING), find the learning rate where the smoothed loss is lowest, and suggest one tenth of it,
clipped to [MIN_PICK, MAX_PICK]. At the minimum the rate is already on the edge of instability; a
tenth is the largest rate that still trains steadily. No pick when the smoothed loss never fell
below its first value (nothing was learned: the data, not the rate, is the problem).

Cost: a third of the run's optimizer steps, between MIN_STEPS and MAX_STEPS, with no evaluation,
probes or checkpoints, so at most about a third of a default run.

A run whose config says `learning_rate: auto` runs the test when it starts (`resolve_auto`, called by
the engine): the pick and the curve go to the run log and to `lr_finder.json` in the run folder, and
the run trains at the pick; without a pick it trains at the default (core.config.default_learning_rate)
and says so. A resumed run reads its pick back from that file instead of testing again.
"""

from __future__ import annotations

import copy
import functools
import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import LEARNING_RATE_AUTO, RunConfig
from core.errors import ConfigError, TrainingError

START_LR = 1e-7
END_LR = 1.0
MIN_STEPS = 12
MAX_STEPS = 60
DIVERGENCE = 4.0      # stop once the smoothed loss exceeds this multiple of its best value
SMOOTHING = 0.8       # few steps: a lighter average than fastai's 0.98 so the curve still follows the loss
MIN_PICK = 1e-6
MAX_PICK = 1e-2
MIN_POINTS = 5
RESULT_FILE = "lr_finder.json"  # in the run folder of a run with learning_rate 'auto'


@dataclass(frozen=True)
class RangeTest:
    """What a range test measured and what it suggests (plain data: pages plot it)."""

    learning_rates: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    pick: float | None            # the suggested learning rate; None when the loss never fell
    minimum_lr: float | None      # where the smoothed loss was lowest
    steps: int                    # steps actually taken
    planned_steps: int
    diverged: bool
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for lr_finder.json (non-finite losses become null: JSON has no NaN)."""
        def finite(values: Sequence[float]) -> list[float | None]:
            return [v if math.isfinite(v) else None for v in values]

        return {"learning_rates": list(self.learning_rates), "losses": finite(self.losses),
                "smoothed": finite(self.smoothed), "pick": self.pick, "minimum_lr": self.minimum_lr,
                "steps": self.steps, "planned_steps": self.planned_steps, "diverged": self.diverged,
                "seconds": self.seconds}


def smooth(losses: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """Debiased exponential moving average (a non-finite loss stays non-finite)."""
    smoothed, average = [], 0.0
    for i, loss in enumerate(losses, start=1):
        average = weight * average + (1 - weight) * loss
        smoothed.append(average / (1 - weight**i))
    return smoothed


def pick_learning_rate(learning_rates: Sequence[float], losses: Sequence[float]) -> tuple[float | None, float | None, list[float]]:
    """(pick, learning rate at the lowest smoothed loss, smoothed losses) by the rule in the module doc."""
    smoothed = smooth(losses)
    finite = [i for i, value in enumerate(smoothed) if math.isfinite(value)]
    if len(finite) < MIN_POINTS:
        return None, None, smoothed
    best = min(finite, key=lambda i: smoothed[i])
    if best == 0 or smoothed[best] >= smoothed[0]:
        return None, None, smoothed
    minimum_lr = float(learning_rates[best])
    return min(MAX_PICK, max(MIN_PICK, minimum_lr / 10)), minimum_lr, smoothed


def planned_steps(cfg: RunConfig, train_rows: int) -> int:
    """A third of the run's optimizer steps, kept between MIN_STEPS and MAX_STEPS."""
    from core.training.run_length import length_for

    run_steps = length_for(cfg, train_rows).steps
    return max(MIN_STEPS, min(MAX_STEPS, run_steps // 3))


def ramp_rate(step: int, steps: int) -> float:
    """The learning rate of optimizer step `step` (0-based) of an exponential ramp START_LR -> END_LR."""
    return START_LR * (END_LR / START_LR) ** (step / max(1, steps - 1))


def find_learning_rate(
    cfg: RunConfig, *, stop_event: threading.Event | None = None, log: Callable[[str], None] | None = None,
) -> RangeTest:
    """Run the range test for this config (model, data, strategy, batch) and suggest a learning rate."""
    import torch
    from transformers import TrainerCallback

    from core import devices
    from core.run.folder import RunFolder

    # The engine's own preparation and Trainer: the test sees exactly the model, data, collator and
    # masked-only loss that the run will.
    from core.training.trainer import LogOnlySink, build_trainer, prepare_run, set_threads

    stop_event = stop_event or threading.Event()
    started = time.monotonic()
    device = devices.pick_device(cfg.training.device)
    set_threads(device)
    torch.manual_seed(cfg.training.seed)
    with tempfile.TemporaryDirectory(prefix="tuneboard-lr-finder-") as scratch:
        folder = RunFolder(Path(scratch))
        prepared = prepare_run(cfg, folder, LogOnlySink(log), is_main=False)
        steps = planned_steps(cfg, len(prepared.train_dataset))
        test = copy.deepcopy(cfg)
        t = test.training
        t.max_steps, t.learning_rate, t.lr_scheduler, t.warmup_ratio = steps, START_LR, "constant", 0.0
        t.logging_steps, t.save_steps, t.keep_model, t.early_stopping_patience = 1, steps + 1, "last", 0
        t.auto_find_batch_size = False
        learning_rates: list[float] = []
        losses: list[float] = []

        class RangeRecorder(TrainerCallback):
            """Records (rate, loss) of each step; stops on divergence or when asked."""

            diverged = False

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    learning_rates.append(ramp_rate(state.global_step - 1, steps))
                    losses.append(float(logs["loss"]))
                    smoothed = smooth(losses)
                    if not math.isfinite(smoothed[-1]) or (
                            len(smoothed) >= MIN_POINTS and smoothed[-1] > DIVERGENCE * min(smoothed)):
                        RangeRecorder.diverged = True
                        control.should_training_stop = True
                if stop_event.is_set():
                    control.should_training_stop = True
                return control

        trainer = build_trainer(test, folder, prepared, device, callbacks=[RangeRecorder()], has_eval=False,
                                trainer_class=_range_trainer_class(), ramp_steps=steps)
        if log is not None:
            log(f"Learning-rate range test: {steps} steps from {START_LR:g} to {END_LR:g}.")
        trainer.train()
        del trainer, prepared
    if device == "cuda":
        torch.cuda.empty_cache()
    if stop_event.is_set():
        raise TrainingError("The learning-rate range test was stopped before it finished.")
    pick, minimum, smoothed = pick_learning_rate(learning_rates, losses)
    return RangeTest(
        learning_rates=tuple(learning_rates), losses=tuple(losses), smoothed=tuple(smoothed), pick=pick,
        minimum_lr=minimum, steps=len(losses), planned_steps=steps, diverged=RangeRecorder.diverged,
        seconds=round(time.monotonic() - started, 2),
    )


def resolve_auto(cfg: RunConfig, folder: Any, sink: Any, stop_event: threading.Event, *, resume: bool = False) -> RunConfig:
    """The config a run trains with: for learning_rate 'auto', a copy at the range test's pick (None, the
    default, when there is none or the test was stopped); any other config as it is."""
    import json

    from core.files import atomic_write_json
    from core.present import text

    if cfg.training.learning_rate != LEARNING_RATE_AUTO:
        return cfg
    from core.devices import rank_and_world_size

    if rank_and_world_size()[1] > 1:  # each process would test on its own shard and could pick differently
        raise ConfigError(text.LR_AUTO_DISTRIBUTED, field="training.learning_rate")
    resolved = copy.deepcopy(cfg)
    path = Path(folder.path) / RESULT_FILE
    if resume and path.exists():
        try:
            resolved.training.learning_rate = json.loads(path.read_text(encoding="utf-8")).get("used")
        except (OSError, json.JSONDecodeError, AttributeError):
            resolved.training.learning_rate = None
        sink.log(text.LR_AUTO_RESUMED.format(rate=_rate_words(resolved.training.learning_rate)))
        return resolved
    try:
        result = find_learning_rate(cfg, stop_event=stop_event, log=sink.log)
    except TrainingError:
        if not stop_event.is_set():
            raise
        resolved.training.learning_rate = None  # stopped: the run ends 'stopped' before training starts
        return resolved
    resolved.training.learning_rate = result.pick
    atomic_write_json(path, {**result.to_dict(), "used": result.pick})
    if result.pick is None:
        sink.event("warning", 0, text.LR_AUTO_FALLBACK)
    else:
        sink.log(text.LR_FINDER_CLI.format(steps=result.steps, minimum=result.minimum_lr, rate=result.pick))
    return resolved


def _rate_words(rate: float | None) -> str:
    return f"{rate:.1e}" if rate is not None else "the default"


@functools.cache
def _range_trainer_class() -> type:
    """RangeTrainer, built once on first use (its base class needs torch and transformers)."""
    from torch.optim.lr_scheduler import LambdaLR

    from core.training.trainer import TuneboardTrainer

    class RangeTrainer(TuneboardTrainer):
        """The run's Trainer with an exponential learning-rate ramp as its scheduler."""

        def __init__(self, *args, ramp_steps: int, **kwargs):
            self.ramp_steps = ramp_steps
            super().__init__(*args, **kwargs)

        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                # The optimizer's base rate is START_LR; LambdaLR multiplies it step by step.
                growth = (END_LR / START_LR) ** (1 / max(1, self.ramp_steps - 1))
                self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda step: growth**step)
                # As Trainer.create_scheduler does, so that a later train() builds its scheduler afresh
                # (the flag checked against transformers 5.23.0).
                self._created_lr_scheduler = True
            return self.lr_scheduler

    return RangeTrainer
