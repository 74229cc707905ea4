"""core.plan.task_switch: a change of task resets the settings tuned for the old one, or keeps the chosen ones."""

from __future__ import annotations

from core.config import RunConfig
from core.plan.presets import preset_config
from core.plan.task_switch import TASK_FIELDS, get_field, switch_task, task_defaults


def test_a_demo_s_settings_go_back_to_the_new_task_s_defaults():
    """The issue's case: the Nike demo's 12 max steps, batch of 8 and 1e-4 under-trained the next task."""
    cfg = preset_config("nike")
    changes = switch_task(cfg, "classification")
    assert cfg.task == "classification"
    defaults = task_defaults("classification")
    for path in TASK_FIELDS:
        assert get_field(cfg, path) == get_field(defaults, path), path
    reset = {c.field: (c.before, c.after) for c in changes if not c.kept}
    assert reset["training.max_steps"] == (12, 0)
    assert reset["training.batch_size"] == (8, defaults.training.batch_size)
    assert reset["training.learning_rate"] == (1e-4, None)
    assert reset["model.max_length"] == (32, None)
    assert not [c for c in changes if c.kept]
    # Settings that are not the task's (the data, its curation, the name) stay as they were.
    assert cfg.data.curation.signal and cfg.name == "nike-demo"


def test_chosen_settings_are_kept_and_reported_as_kept():
    cfg = RunConfig(task="classification")
    cfg.training.batch_size, cfg.training.learning_rate = 16, 3e-5
    changes = switch_task(cfg, "sft", chosen={"training.batch_size"})
    assert cfg.training.batch_size == 16 and cfg.training.learning_rate is None
    assert [(c.field, c.kept) for c in changes] == [("strategy.name", False), ("strategy.lora_dropout", False),
                                                    ("training.batch_size", True), ("training.learning_rate", False)]
    assert cfg.strategy.name == "lora" and cfg.strategy.lora_dropout == 0.0  # instruction tuning: LoRA, no dropout


def test_a_strategy_the_new_task_cannot_use_is_reset_even_when_chosen():
    cfg = RunConfig(task="sft")
    cfg.strategy.name = "prompt"
    changes = switch_task(cfg, "classification", chosen={"strategy.name"})
    assert cfg.strategy.name == "full"
    assert [(c.field, c.before, c.after, c.kept) for c in changes][0] == ("strategy.name", "prompt", "full", False)


def test_nothing_to_say_when_the_settings_are_already_the_task_s_defaults():
    cfg = RunConfig(task="mlm")
    assert switch_task(cfg, "causal") == [] and cfg.task == "causal"
