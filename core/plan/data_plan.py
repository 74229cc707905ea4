"""What a run will train on and for how long, in words: Setup shows these lines before Start and the CLI prints
them before training (before_start_lines).

Words over numbers counted elsewhere: the rows after curation (core.data.preflight), the run's length
(core.training.run_length) and its duration (core.plan.estimate). No torch here; the CLI's parameter count
may import it.
"""

from __future__ import annotations

from pathlib import Path

from core import devices
from core.config import PROMPT_STRATEGY, RunConfig
from core.data.preflight import SIGNAL_AT_START, SIGNAL_SAMPLED, DataFacts, split_sizes
from core.plan.estimate import DataShape, Estimate, data_shape, estimate_run, measured_speed
from core.present import text
from core.present.numbers import dropped_reasons, format_duration
from core.run.history import RunSummary
from core.training.run_length import length_for


def rows_line(facts: DataFacts, cfg: RunConfig) -> str:
    """Rows read, rows left after curation and why the others go, and the split: 'Data: 800 rows → 282 rows ...'."""
    about = facts.estimated
    train, held = split_sizes(facts.usable, cfg)
    reasons = dropped_reasons(facts.dropped)
    why = text.ROWS_PLAN_WHY.format(reasons=reasons) if reasons else text.ROWS_PLAN_NONE_DROPPED
    if held is None:
        held_part = text.ROWS_PLAN_EVAL_FILE
    elif held:
        held_part = text.ROWS_PLAN_HELD.format(eval=_count(held, about))
    else:
        held_part = ""
    capped = cfg.data.max_rows is not None and train == cfg.data.max_rows and facts.usable - (held or 0) > train
    return text.ROWS_PLAN.format(
        rows=facts.rows, usable=_count(facts.usable, about),
        unit=text.ROWS_PLAN_UNITS["chats" if cfg.task == "sft" else "rows"], why=why,
        train=_count(train, about) + (text.ROWS_PLAN_CAPPED if capped else ""), held=held_part,
    )


def rows_notes(facts: DataFacts) -> list[str]:
    """What the row counts could not include, or only estimate (each a sentence; none when exact)."""
    notes = []
    if facts.flagged_duplicates:
        notes.append(text.ROWS_PLAN_FLAGGED.format(n=facts.flagged_duplicates))
    if facts.duplicates_at_least:
        notes.append(text.ROWS_PLAN_AT_LEAST)
    if facts.signal == SIGNAL_SAMPLED:
        notes.append(text.ROWS_PLAN_SAMPLED.format(sample=facts.signal_sample))
    elif facts.signal == SIGNAL_AT_START:
        notes.append(text.ROWS_PLAN_AT_START)
    return notes


def steps_line(cfg: RunConfig, train_rows: int, *, classes: int = 0, evaluates: bool = True,
               about: bool = False) -> str:
    """'Plan: 200 optimizer steps of 32 rows, 22.7 passes over 282 training rows (the default length for this
    data), evaluated 8 times.' (core.training.run_length decides); prompting says it trains nothing."""
    if cfg.strategy.name == PROMPT_STRATEGY:
        return text.PLAN_PROMPTING
    t = cfg.training
    length = length_for(cfg, train_rows, classes=classes)
    why = "auto" if length.automatic else "max_steps" if t.max_steps else "epochs"
    line = text.PLAN_STEPS.format(steps=length.steps, per_step=t.batch_size * t.gradient_accumulation_steps,
                                  epochs=length.epochs, rows=_count(train_rows, about), why=text.PLAN_WHY[why])
    if evaluates:
        line += text.PLAN_EVALUATIONS.format(evaluations=length.evaluations)
    return line + "."


def time_line(estimate: Estimate, device: str) -> str:
    """'Time: about 1m 20s (computed from the model's size and CPU: 2 cores).'"""
    basis = text.PLAN_BASIS[estimate.basis].format(run_id=estimate.measured_run, device=device)
    return text.PLAN_TIME.format(duration=format_duration(estimate.seconds), basis=basis)


def plan_lines(cfg: RunConfig, facts: DataFacts, shape: DataShape | None = None,
               estimate: Estimate | None = None, device: str = "") -> list[str]:
    """Every line the CLI prints before training: rows, what they could not count, steps and (given) the time."""
    train, held = split_sizes(facts.usable, cfg)
    if shape is not None:
        train = shape.train_rows
    lines = [rows_line(facts, cfg), *rows_notes(facts),
             steps_line(cfg, train, classes=classes(facts), evaluates=held != 0, about=facts.estimated)]
    if estimate is not None:
        lines.append(time_line(estimate, device))
    return lines


def classes(facts: DataFacts) -> int:
    """Classes of the rows that will train (0 without a label column): the default run length counts them."""
    return facts.labels.classes if facts.labels is not None else 0


def _count(n: int, about: bool) -> str:
    return text.ROWS_PLAN_ABOUT.format(n=n) if about else f"{n:,}"


def before_start_lines(cfg: RunConfig, runs_root: Path | None = None) -> list[str]:
    """What the CLI prints before a run trains: its rows after curation and why, its steps, and its time.

    The data facts are check_data's (engine.preflight has just read them); the time needs the model's
    parameter count (without weights) and takes the speed a past run under runs_root measured. Lines
    that cannot be known (a Hub dataset, a model that cannot be counted) are left out, not guessed.
    """
    from core.data.preflight import check_data
    from core.errors import TuneboardError
    from core.models.params import quick_params

    facts = check_data(cfg)
    if facts is None:
        return []
    shape = data_shape(cfg, facts)
    num_labels = max(2, classes(facts))  # the classifier head's size; other tasks have none
    try:
        params = quick_params(cfg, num_labels)
        if params is None:
            from core.training.strategies import estimate_params

            params = estimate_params(cfg, num_labels)
    except TuneboardError:
        params = None
    estimate = None
    if params is not None:
        trainable, total = params
        estimate = estimate_run(cfg, shape, trainable, total, measured_speed(cfg, _past_runs(runs_root)))
    return plan_lines(cfg, facts, shape, estimate, devices.describe_device())


def _past_runs(runs_root: Path | None) -> list[RunSummary]:
    """Summaries of the run folders under runs_root that recorded a speed (a folder that cannot be read is skipped)."""
    from core.run.folder import list_runs
    from core.run.history import read_summary

    if runs_root is None:
        return []
    found = []
    for folder in list_runs(runs_root):
        try:
            summary = read_summary(folder)
        except Exception:  # noqa: BLE001 - a broken folder only means one speed fewer to draw on
            continue
        if summary.speed:
            found.append(summary)
    return found
