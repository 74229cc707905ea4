"""The default length rule (core.training.run_length): enough steps for small data, the user's length wins."""

from __future__ import annotations

import math

import pytest

from core.config import RunConfig, field_help
from core.training.run_length import (
    EVALUATIONS,
    MAX_EPOCHS,
    MIN_EVAL_STEPS,
    MIN_STEPS,
    PATIENCE,
    SAMPLES_PER_CLASS,
    length_for,
    plan_length,
    still_improving,
    with_length,
)


def test_the_issues_small_news_set_gets_the_floor_not_two_passes():
    # Issue 27: 282 headlines in 8 classes at batch 32 trained 18 steps (two passes) and reached 47%.
    length = plan_length(282, 32, classes=8)
    assert length.automatic and length.bound in ("step floor", "class floor")
    assert length.steps == max(MIN_STEPS, math.ceil(SAMPLES_PER_CLASS * 8 / 32)) > 18
    assert length.epochs == round(length.steps / 9, 2)
    assert length.patience == PATIENCE
    assert length.evaluations in (EVALUATIONS, EVALUATIONS + 1)


def test_large_data_keeps_two_passes():
    length = plan_length(100_000, 32, classes=4)
    assert (length.steps, length.bound) == (math.ceil(100_000 / 32) * 2, "two passes")
    assert length.epochs == 2.0


def test_many_classes_raise_the_floor_to_rows_seen_per_class():
    length = plan_length(5_000, 32, classes=50)
    assert length.bound == "class floor"
    assert length.steps == math.ceil(SAMPLES_PER_CLASS * 50 / 32) > MIN_STEPS


def test_tiny_data_is_repeated_at_most_the_epoch_cap():
    length = plan_length(40, 32, classes=2)
    assert (length.steps, length.bound) == (2 * MAX_EPOCHS, "epoch cap")
    assert length.epochs == MAX_EPOCHS


def test_the_class_floor_counts_rows_so_a_smaller_batch_takes_more_steps():
    small, large = plan_length(2000, 8, classes=20), plan_length(2000, 32, classes=20)
    for length, batch in ((small, 8), (large, 32)):
        assert length.steps * batch >= SAMPLES_PER_CLASS * 20 and length.steps >= MIN_STEPS
    assert small.steps > large.steps


def test_max_steps_and_epochs_win_and_do_not_stop_early():
    by_steps = plan_length(282, 32, classes=8, max_steps=18)
    assert (by_steps.steps, by_steps.bound, by_steps.automatic, by_steps.patience) == (18, "max_steps", False, 0)
    by_epochs = plan_length(282, 32, classes=8, epochs=2.0)
    assert (by_epochs.steps, by_epochs.bound, by_epochs.automatic, by_epochs.patience) == (18, "epochs", False, 0)
    # ... unless early stopping is asked for.
    assert plan_length(282, 32, max_steps=18, patience=2).patience == 2


def test_an_explicit_patience_or_interval_wins_in_an_automatic_run():
    length = plan_length(282, 32, classes=8, patience=0, eval_steps=7)
    assert length.automatic and (length.patience, length.eval_steps) == (0, 7)
    assert length.evaluations == math.ceil(length.steps / 7)


def test_evaluations_follow_the_length_when_no_interval_is_set():
    for steps in (1, 5, 18, 40, 200, 6250):
        length = plan_length(10, 1, max_steps=steps)
        assert length.eval_steps == max(MIN_EVAL_STEPS, math.ceil(steps / EVALUATIONS))
        assert 1 <= length.evaluations <= EVALUATIONS
    # A short run is not evaluated at every step: the last step (always evaluated) and every MIN_EVAL_STEPS.
    assert plan_length(10, 1, max_steps=2).evaluations == 1
    assert plan_length(10, 1, max_steps=12).evaluations == 3


def test_length_for_reads_the_config_and_counts_every_process():
    cfg = RunConfig(task="classification")
    cfg.training.batch_size, cfg.training.gradient_accumulation_steps = 8, 2
    assert length_for(cfg, 1600, classes=2, world_size=2) == plan_length(1600, 32, classes=2)
    lm = RunConfig(task="mlm")
    assert length_for(lm, 282, classes=8) == plan_length(282, 32)  # no classes to count for a language model


def test_with_length_fills_the_blanks_once_and_saves_at_the_evaluations():
    cfg = RunConfig(task="classification")
    length = length_for(cfg, 282, classes=8)
    resolved = with_length(cfg, length, has_eval=True)
    t = resolved.training
    assert (t.max_steps, t.eval_steps, t.save_steps, t.early_stopping_patience) == (
        length.steps, length.eval_steps, length.eval_steps, PATIENCE)
    again = with_length(resolved, length_for(resolved, 282, classes=8), has_eval=True)
    assert again == resolved
    assert cfg.training.epochs is None and cfg.training.max_steps == 0  # the saved config keeps its blanks
    # No evaluation set: nothing to stop on.
    assert with_length(cfg, length, has_eval=False).training.early_stopping_patience == 0


def test_an_explicit_run_keeps_its_epochs_and_checkpoint_interval():
    cfg = RunConfig(task="classification")
    cfg.training.epochs, cfg.training.eval_steps, cfg.training.save_steps = 3.0, 10, 50
    resolved = with_length(cfg, length_for(cfg, 282, classes=8), has_eval=True).training
    assert (resolved.epochs, resolved.max_steps, resolved.eval_steps, resolved.save_steps) == (3.0, 0, 10, 50)
    assert resolved.early_stopping_patience == 0


@pytest.mark.parametrize(("values", "higher", "expected"), [
    ([0.5, 0.6, 0.7], True, True),
    ([0.5, 0.7, 0.7], True, False),        # flat at the end
    ([0.5, 0.7, 0.703], True, False),      # less than half a point
    ([0.8, 0.6, 0.7], True, False),        # the best was earlier
    ([2.0, 1.5, 1.2], False, True),        # a loss still falling
    ([2.0, 1.5, 1.497], False, False),     # by less than 0.5%
    ([0.7], True, False),                  # one evaluation says nothing about a trend
    ([], False, False),
    ([float("nan"), 0.5, 0.6], True, True),
])
def test_still_improving(values, higher, expected):
    assert still_improving(values, higher) is expected


def test_the_config_says_the_rules_numbers():
    help_text = field_help("training.epochs")
    for number in (MIN_STEPS, SAMPLES_PER_CLASS, MAX_EPOCHS, EVALUATIONS):
        assert str(number) in help_text
    assert str(PATIENCE) in field_help("training.early_stopping_patience")
    assert str(EVALUATIONS) in field_help("training.eval_steps")


def test_blank_lengths_round_trip_and_old_configs_keep_their_epochs():
    cfg = RunConfig(task="classification").validate()
    back = RunConfig.from_yaml(cfg.to_yaml())
    t = back.training
    assert (t.epochs, t.max_steps, t.eval_steps, t.early_stopping_patience) == (None, 0, None, None)
    old = RunConfig.from_yaml("task: classification\ntraining:\n  epochs: 2.0\n  eval_steps: 50\n"
                              "  early_stopping_patience: 0\n").validate()
    length = length_for(old, 282, classes=8)
    assert (length.steps, length.automatic, length.eval_steps, length.patience) == (18, False, 50, 0)


def test_the_rule_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, core.training.run_length; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
