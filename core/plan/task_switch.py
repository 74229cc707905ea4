"""What a change of task keeps and what it resets: the settings tuned for one task that mis-train another.

A demo's 12 max steps, batch of 8 and learning rate of 1e-4 suit its own task; carried over to another
they under-trained the next run without a word. So on a task switch every TASK_FIELDS setting takes the
new task's default, except the ones the user chose (Setup knows which widgets they changed): those are
kept, and the switch reports both lists so the page can say which were kept. A strategy the new task
cannot use is reset even when chosen. The model follows the task on its own (pages/setup.follow_task).
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from core.config import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_LORA_DROPOUTS,
    DEFAULT_STRATEGIES,
    RunConfig,
    strategies_for,
)

#: Settings whose good value depends on the task (and its data), in the order Setup shows them.
TASK_FIELDS = (
    "strategy.name",
    "strategy.lora_dropout",
    "model.max_length",
    "training.max_steps",
    "training.epochs",
    "training.batch_size",
    "training.learning_rate",
    "training.eval_steps",
    "probes.texts",
)


@dataclass(frozen=True)
class FieldChange:
    """One task-specific setting at a task switch: its value before, its value now, and whether it was kept."""

    field: str
    before: Any
    after: Any
    kept: bool


def task_defaults(task: str) -> RunConfig:
    """A fresh config for `task` with that task's own defaults (instruction tuning: LoRA without dropout, batches of 8)."""
    cfg = RunConfig(task=task)
    apply_task_defaults(cfg, task)
    return cfg


def apply_task_defaults(cfg: RunConfig, task: str) -> None:
    """Give `cfg` the strategy, LoRA dropout and batch size that `task` starts from."""
    cfg.strategy.name = DEFAULT_STRATEGIES.get(task, cfg.strategy.name)
    cfg.strategy.lora_dropout = DEFAULT_LORA_DROPOUTS.get(task, cfg.strategy.lora_dropout)
    cfg.training.batch_size = DEFAULT_BATCH_SIZES.get(task, cfg.training.batch_size)


def switch_task(cfg: RunConfig, task: str, chosen: Collection[str] = ()) -> list[FieldChange]:
    """Move `cfg` to `task` in place; each TASK_FIELDS setting not in `chosen` takes the task's default.

    Returns every setting that differed from the new default: reset (kept=False) or kept as chosen.
    """
    defaults = task_defaults(task)
    changes = []
    for path in TASK_FIELDS:
        before, default = get_field(cfg, path), get_field(defaults, path)
        if before == default:
            continue
        usable = path != "strategy.name" or before in strategies_for(task)
        if path in chosen and usable:
            changes.append(FieldChange(path, before, before, kept=True))
        else:
            set_field(cfg, path, copy.deepcopy(default))
            changes.append(FieldChange(path, before, default, kept=False))
    cfg.task = task
    return changes


def get_field(cfg: RunConfig, path: str) -> Any:
    """The value at a dotted field path, e.g. 'training.batch_size'."""
    value: Any = cfg
    for part in path.split("."):
        value = getattr(value, part)
    return value


def set_field(cfg: RunConfig, path: str, value: Any) -> None:
    """Set the value at a dotted field path."""
    *parents, last = path.split(".")
    target: Any = cfg
    for part in parents:
        target = getattr(target, part)
    setattr(target, last, value)
