"""How long a run trains, how often it evaluates and when it stops early: the default rule, pure Python.

A run whose length is not set (training.epochs empty and training.max_steps 0, the defaults) trains for

    steps = max(two passes over the data, MIN_STEPS, SAMPLES_PER_CLASS x classes / samples per step)
            capped at MAX_EPOCHS passes over the data

evaluates about EVALUATIONS times across those steps, keeps the best evaluation's checkpoint and stops
after PATIENCE evaluations in a row without a better one. A length the user set (epochs or max steps)
always wins: it trains exactly that long and stops early only when training.early_stopping_patience asks.

Why a floor: two passes were the old default, and two passes over small data are too few optimiser steps.
The issue's case (#27), 282 de-duplicated news headlines in 8 classes at batch 32, got 18 steps, one
evaluation and 47% accuracy, most headlines predicted as one class. Measured on the bundled MiniLM (full
fine-tuning at its default rate 1e-4, batch 32, 282 distinct training rows, judged on 400 held-out rows of
another seed, by the procedure of `python -m bench.bench_train_enough --curves news:282:100:20,...`, on 2
shared CPU cores), held-out accuracy along one run whose learning rate decays over all its steps:

    news, 8 classes, 100-step run     step 20: 80.5%, 40: 91.2%, 60: 96.3%, 80: 96.8%, 100: 96.5%
    news, 8 classes, 40-step run      step 10: 63.2%, 20: 81.0%, 30: 82.0%, 40: 84.0%
    reviews, 2 classes, 50-step run   step 10: 77.5%, 20: 97.5%, 30: 99.5%, 40: 100%, 50: 100%

Eight classes level off after about 60 steps of a longer run (1,920 rows seen, 240 per class; a run that
ends at 40 stops at 84%), two classes after about 30 (480 rows per class). The floors take that with a margin:
MIN_STEPS = 100 steps for every task (language models have no classes to count; their floor is the classifiers',
not measured on their own), and SAMPLES_PER_CLASS = 400
rows of each class, which for many classes asks for more than the step floor (20 classes at batch 32: 250
steps). The cap keeps tiny data from being repeated without end; early stopping on a plateau and the kept
best checkpoint make a floor that is longer than some data needs cost time, not accuracy. The floor's time
is bounded by its step count, which Setup's estimate turns into minutes before Start: 100 MiniLM steps take
about a minute on 2 free CPU cores. At the rule's length the 282 headlines reached 96.8% held-out accuracy
(the best of 8 evaluations, at step 65, kept), where the old two epochs reached 69.5% (bench/results/
train_enough.md).

"Still improving": when the last evaluation is the run's best and beats every earlier one by a clear margin,
the run ended on a rising curve and training further (a new run from this one's model) would likely help.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.config import MAIN_METRIC, RunConfig

DEFAULT_EPOCHS = 2.0    # the old default: data large enough for the floors still gets two passes
MIN_STEPS = 100         # optimiser steps an automatic run takes at least (measured: see the module doc)
SAMPLES_PER_CLASS = 400  # classification: rows of each class an automatic run shows at least (repeats counted)
MAX_EPOCHS = 30         # the floors never repeat the data more often than this
EVALUATIONS = 8         # evaluations across a run whose eval_steps is not set
# ... but not closer than this: an evaluation (with its probes and per-example predictions, and a checkpoint when
# the best is kept) costs more than a few steps, and points a step or two apart show no trend.
MIN_EVAL_STEPS = 5
PATIENCE = 3            # evaluations without a better one before an automatic run stops
# The margin the last evaluation must beat every earlier one by to count as still improving: half a point of
# a score between 0 and 1 (F1, accuracy), or 0.5% of a loss.
IMPROVING_MARGIN = 0.005


@dataclass(frozen=True)
class RunLength:
    """A run's length: its optimiser steps, evaluations and early stopping, and what decided them."""

    steps: int          # optimiser steps the run takes (at most: early stopping may end it sooner)
    epochs: float       # passes over the training rows those steps make
    eval_steps: int     # evaluate every this many steps
    patience: int       # evaluations without a better one before stopping (0: never stops early)
    automatic: bool     # the default rule chose the steps (no epochs or max steps were set)
    bound: str          # what set the steps: max_steps, epochs, two passes, step floor, class floor, epoch cap

    @property
    def evaluations(self) -> int:
        """How many times the run evaluates if it runs to the end (the last step always evaluates)."""
        return math.ceil(self.steps / self.eval_steps)


def plan_length(
    train_rows: int,
    samples_per_step: int,
    *,
    classes: int = 0,
    epochs: float | None = None,
    max_steps: int = 0,
    eval_steps: int | None = None,
    patience: int | None = None,
) -> RunLength:
    """The run's length by the rule in the module doc; max_steps or epochs, when set, win as given."""
    per_epoch = max(1, math.ceil(max(1, train_rows) / max(1, samples_per_step)))
    automatic = not max_steps and epochs is None
    if max_steps:
        steps, bound = int(max_steps), "max_steps"
    elif epochs is not None:
        steps, bound = max(1, math.ceil(per_epoch * epochs)), "epochs"
    else:
        candidates = {
            "two passes": math.ceil(per_epoch * DEFAULT_EPOCHS),
            "step floor": MIN_STEPS,
            "class floor": math.ceil(SAMPLES_PER_CLASS * classes / max(1, samples_per_step)) if classes else 0,
        }
        bound = max(candidates, key=candidates.__getitem__)
        steps = candidates[bound]
        if steps > per_epoch * MAX_EPOCHS:
            steps, bound = per_epoch * MAX_EPOCHS, "epoch cap"
    every = eval_steps if eval_steps else max(MIN_EVAL_STEPS, math.ceil(steps / EVALUATIONS))
    waits = patience if patience is not None else (PATIENCE if automatic else 0)
    return RunLength(steps=steps, epochs=round(steps / per_epoch, 2), eval_steps=every, patience=waits,
                     automatic=automatic, bound=bound)


def length_for(cfg: RunConfig, train_rows: int, *, classes: int = 0, world_size: int = 1) -> RunLength:
    """The rule applied to a config's training settings (samples per step across every process)."""
    t = cfg.training
    samples_per_step = t.batch_size * t.gradient_accumulation_steps * max(1, world_size)
    return plan_length(train_rows, samples_per_step, classes=classes if cfg.task == "classification" else 0,
                       epochs=t.epochs, max_steps=t.max_steps, eval_steps=t.eval_steps,
                       patience=t.early_stopping_patience)


def with_length(cfg: RunConfig, length: RunLength, *, has_eval: bool) -> RunConfig:
    """The config with its length as numbers: what a Trainer is built from (the saved config keeps its blanks).

    Applying it twice changes nothing, so every Trainer built from a config may apply it. Keeping the best
    needs a checkpoint at every evaluation (the Trainer brings back only a saved one): when the evaluation
    interval was not chosen by hand, the checkpoints follow it.
    """
    t = cfg.training
    save_at_evals = t.eval_steps is None and has_eval and t.keep_model == "best"
    training = replace(
        t,
        max_steps=length.steps if length.automatic else t.max_steps,
        epochs=t.epochs if t.epochs is not None else length.epochs,  # passes made; the Trainer follows max_steps
        eval_steps=length.eval_steps,
        save_steps=length.eval_steps if save_at_evals else t.save_steps,
        early_stopping_patience=length.patience if has_eval else 0,
    )
    return replace(cfg, training=training)


def length_line(length: RunLength, rows: int, classes: int, has_eval: bool, patience: int) -> str:
    """The run log's line on how long the run trains, why, and how it is judged on the way."""
    why = {
        "max_steps": "as set (max steps)",
        "epochs": "as set (epochs)",
        "two passes": "two passes over the data",
        "step floor": f"the default rule's floor of {MIN_STEPS} steps, as two passes over {rows} rows are too few",
        "class floor": f"the default rule's floor of {SAMPLES_PER_CLASS} rows seen per class, for {classes} classes",
        "epoch cap": f"the default rule's floor, capped at {MAX_EPOCHS} passes over this small data",
    }[length.bound]
    line = f"Training for {length.steps:,} steps ({length.epochs:g} passes over {rows:,} rows): {why}."
    if not has_eval:
        return line + " No evaluation set, so no evaluations, best checkpoint or early stopping."
    line += f" Evaluating every {length.eval_steps:,} steps ({length.evaluations} evaluations)"
    if patience:
        line += f"; stopping early after {patience} evaluations in a row without a better one"
    if length.automatic:
        line += " (set epochs or max steps to choose the length)"
    return line + "."


def still_improving(values: Sequence[float], higher_is_better: bool, margin: float = IMPROVING_MARGIN) -> bool:
    """Whether a run's evaluations (oldest first) end on a rising curve: the last beats all before it by margin.

    Loss-like figures (higher_is_better False) compare relatively, scores absolutely; two evaluations at least.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(finite) < 2:
        return False
    last, before = finite[-1], finite[:-1]
    if higher_is_better:
        return last >= max(before) + margin
    best_before = min(before)
    return last <= best_before - margin * abs(best_before)


def improving_metric(task: str) -> tuple[str, bool]:
    """(the eval metric key the best checkpoint and 'still improving' follow, higher is better) for a task."""
    name, higher = MAIN_METRIC[task]
    return f"eval_{name}", higher
