"""A strategy shoot-out: a group of runs over strategies (and learning rates), and its comparison.

Every member is an ordinary run folder under the runs root, trained by the JobManager like any other
run; members differ only in `strategy.name` and `training.learning_rate`, so they share the data
split, seed and probes. Without learning rates of its own, a group keeps the base config's: a number,
'auto' (each run does its own range test) or none set (each strategy trains at its own default).
Prompting (instruction tuning's strategy without training) has no learning rate: it is one member
however many rates the others try. The group itself is one summary file, written atomically:

    <runs root>/groups/<group id>.json   {group_id, name, created_at, task, strategies,
                                          learning_rates, config, members: [{strategy,
                                          learning_rate, run_id}]}

A member's `run_id` is null until it was submitted, so a group cut off while it was being queued
knows which members are missing; `resume_group` queues those and resumes stopped or interrupted
ones. The comparison of a group's runs is in core.plan.comparison.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.config import LEARNING_RATE_AUTO, PROMPT_STRATEGY, STRATEGIES, RunConfig, describe_learning_rate
from core.errors import ConfigError, RunError
from core.files import atomic_write_json
from core.run.folder import RESUMABLE, now_iso, validate_run_id

GROUPS_FOLDER = "groups"
MAX_LEARNING_RATES = 3
# Member states that Resume acts on: submitted again (no folder, or cancelled before it started) or resumed.
RESUBMIT = ("missing", "cancelled")


# ---- the group file ---------------------------------------------------------------------------

@dataclass
class Member:
    """One planned run of a group: a strategy at a learning rate, and its run id once submitted."""

    strategy: str
    learning_rate: float | str | None  # None: the strategy's default; 'auto': a range test when it starts
    run_id: str | None = None


@dataclass
class Group:
    """A shoot-out: the base config, the strategies and learning rates it varies, and its members."""

    group_id: str
    config: RunConfig
    strategies: list[str]
    learning_rates: list[float | str | None]
    members: list[Member] = field(default_factory=list)
    name: str = ""
    created_at: str = ""

    @property
    def task(self) -> str:
        return self.config.task

    def member_config(self, member: Member) -> RunConfig:
        """The base config with this member's strategy, learning rate and a name saying both."""
        cfg = copy.deepcopy(self.config)
        cfg.strategy.name = member.strategy
        cfg.training.learning_rate = member.learning_rate
        cfg.name = f"{self.name or self.group_id} · {member_label(member, len(self.learning_rates) > 1)}"
        return cfg

    def run_ids(self) -> list[str]:
        """The submitted members' run ids, in plan order."""
        return [m.run_id for m in self.members if m.run_id]

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "name": self.name,
            "created_at": self.created_at,
            "task": self.task,
            "strategies": list(self.strategies),
            "learning_rates": list(self.learning_rates),
            "config": self.config.to_dict(),
            "members": [{"strategy": m.strategy, "learning_rate": m.learning_rate, "run_id": m.run_id} for m in self.members],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Group:
        """Build from the group file's data; RunError when it is not a group file."""
        try:
            members = [Member(str(m["strategy"]), _stored_rate(m["learning_rate"]), m.get("run_id"))
                       for m in data["members"]]
            return cls(
                group_id=validate_run_id(str(data["group_id"])),
                config=RunConfig.from_dict(data["config"]),
                strategies=[str(s) for s in data["strategies"]],
                learning_rates=[_stored_rate(x) for x in data["learning_rates"]],
                members=members,
                name=str(data.get("name") or ""),
                created_at=str(data.get("created_at") or ""),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as err:
            raise RunError(f"This is not a readable group file ({type(err).__name__}: {err}); delete it.") from None


def _stored_rate(value: Any) -> float | str | None:
    """A member's learning rate as the group file stores it: a number, 'auto' or null (the default)."""
    if value is None or value == LEARNING_RATE_AUTO:
        return value
    return float(value)


def member_label(member: Member, with_rate: bool) -> str:
    """'lora', or 'lora @ 1e-04' when the group tries several learning rates (prompting, which trains nothing: 'prompt')."""
    if not with_rate or member.strategy == PROMPT_STRATEGY:
        return member.strategy
    rate = member.learning_rate
    return f"{member.strategy} @ {rate:.0e}" if isinstance(rate, float) else f"{member.strategy} @ {describe_learning_rate(rate)}"


def groups_folder(runs_root: Path) -> Path:
    """Where the group files of a runs root live."""
    return Path(runs_root) / GROUPS_FOLDER


def group_path(runs_root: Path, group_id: str) -> Path:
    """The summary file of one group (the id is checked: no path can escape the folder)."""
    return groups_folder(runs_root) / f"{validate_run_id(group_id)}.json"


def save_group(runs_root: Path, group: Group) -> Path:
    """Write the group file atomically; returns its path."""
    path = group_path(runs_root, group.group_id)
    atomic_write_json(path, group.to_dict())
    return path


def load_group(runs_root: Path, group_id: str) -> Group:
    """Read one group; RunError when there is none or it cannot be read."""
    return load_group_file(group_path(runs_root, group_id))


def load_group_file(path: Path) -> Group:
    """Read a group file by its path (the CLI's --resume)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"There is no group file {path}: check the id on the Compare strategies page.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"The group file {path} cannot be read ({err}); delete it.") from None
    return Group.from_dict(data)


def list_groups(runs_root: Path) -> list[Group]:
    """Every readable group under the runs root, newest first (unreadable files are skipped)."""
    found = []
    for path in sorted(groups_folder(runs_root).glob("*.json"), reverse=True):
        try:
            found.append(load_group_file(path))
        except RunError:
            continue
    return sorted(found, key=lambda g: (g.created_at, g.group_id), reverse=True)


def new_group_id(task: str) -> str:
    """A sortable, unique id, like run ids."""
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{task}-group-{secrets.token_hex(4)}"


# ---- planning ---------------------------------------------------------------------------------

def parse_learning_rates(value: str | Sequence[Any] | None) -> list[float]:
    """'1e-4, 5e-4' (or a list) -> [1e-4, 5e-4]; ConfigError naming what is wrong."""
    if value is None:
        return []
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    rates: list[float] = []
    for item in items:
        if item == "":
            continue
        try:
            rate = float(item)
        except (TypeError, ValueError):
            raise ConfigError(f"{item!r} is not a learning rate: write numbers such as 1e-4, 5e-4.",
                              field="sweep.learning_rates") from None
        if not 0 < rate <= 1:
            raise ConfigError(f"Learning rate {rate} is out of range: use values between 0 and 1, such as 1e-4.",
                              field="sweep.learning_rates")
        if rate not in rates:
            rates.append(rate)
    if len(rates) > MAX_LEARNING_RATES:
        raise ConfigError(f"Give at most {MAX_LEARNING_RATES} learning rates; each one multiplies the runs.",
                          field="sweep.learning_rates")
    return rates


def parse_strategies(value: str | Sequence[str]) -> list[str]:
    """'full,lora' (or a list) -> ['full', 'lora']; at least two known strategies, none twice."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    chosen: list[str] = []
    for item in items:
        if not item:
            continue
        if item not in STRATEGIES:
            raise ConfigError(f"Unknown strategy {item!r}; choose from: {', '.join(STRATEGIES)}.", field="sweep.strategies")
        if item not in chosen:
            chosen.append(item)
    if len(chosen) < 2:
        raise ConfigError("Pick at least two strategies to compare.", field="sweep.strategies")
    return chosen


def plan_group(cfg: RunConfig, strategies: Sequence[str], learning_rates: Sequence[float] = (), *,
               group_id: str | None = None) -> Group:
    """A group with one member per strategy x learning rate (the config's rate when none is given).

    Every member config is validated here, before anything is written or queued.
    """
    strategies = parse_strategies(strategies)
    rates: list[float | str | None] = list(parse_learning_rates(learning_rates)) or [cfg.training.learning_rate]
    base = copy.deepcopy(cfg)
    base.validate()
    group = Group(
        group_id=group_id or new_group_id(cfg.task), config=base, strategies=strategies,
        learning_rates=rates, name=cfg.name or "", created_at=now_iso(),
    )
    group.members = [Member(strategy, None) if strategy == PROMPT_STRATEGY else Member(strategy, rate)
                     for strategy in strategies for rate in (rates[:1] if strategy == PROMPT_STRATEGY else rates)]
    for member in group.members:
        group.member_config(member).validate()
    return group


# ---- lifecycle (through a JobManager) ---------------------------------------------------------

def submit_group(jobs: Any, cfg: RunConfig, strategies: Sequence[str], learning_rates: Sequence[float] = ()) -> str:
    """Plan the group, write its file, queue every member; returns the group id."""
    group = plan_group(cfg, strategies, learning_rates)
    save_group(jobs.runs_root, group)  # first: a crash while queueing leaves the missing members known
    _submit_missing(jobs, group)
    return group.group_id


def _submit_missing(jobs: Any, group: Group) -> None:
    for member in group.members:
        if member.run_id is None:
            member.run_id = jobs.submit(group.member_config(member))
            save_group(jobs.runs_root, group)


def member_states(jobs: Any, group: Group) -> list[str]:
    """Each member's status in plan order; 'missing' for one never submitted or whose folder is gone."""
    states = []
    for member in group.members:
        if member.run_id is None or not (Path(jobs.runs_root) / member.run_id).is_dir():
            states.append("missing")
            continue
        try:
            states.append(jobs.snapshot(member.run_id).status)
        except RunError:
            states.append("missing")
    return states


def group_status(states: Iterable[str]) -> str:
    """One word for the group: running, queued, completed, or the state that needs attention."""
    states = list(states)
    for word in ("running", "queued", "failed", "stopped", "interrupted", "cancelled", "missing"):
        if word in states:
            return word
    return "completed" if states else "missing"


def resume_group(jobs: Any, group_id: str) -> list[str]:
    """Queue what a group still needs: resume stopped/interrupted members, submit missing or cancelled
    ones again. Returns the run ids queued; RunError when the group needs nothing."""
    group = load_group(jobs.runs_root, group_id)
    queued: list[str] = []
    for member, member_state in zip(group.members, member_states(jobs, group), strict=True):
        if member_state in RESUMABLE:
            queued.append(jobs.resume(member.run_id))
        elif member_state in RESUBMIT:
            if member_state == "cancelled":  # it never trained: its folder holds only the queued config
                jobs.delete(member.run_id)
            member.run_id = None
    missing = [m for m in group.members if m.run_id is None]
    _submit_missing(jobs, group)
    queued += [m.run_id for m in missing]
    if not queued:
        raise RunError(f"Group {group_id} has nothing to resume: every member is finished, queued or running.")
    return queued


def stop_group(jobs: Any, group_id: str) -> int:
    """Cancel the queued members, then stop the running one (it saves a checkpoint); returns how many."""
    group = load_group(jobs.runs_root, group_id)
    queued = set(jobs.queued())
    # Queued ones first, last first: stopping the running member first would let the worker start the next.
    ordered = sorted(group.run_ids(), key=lambda run_id: run_id not in queued)
    return sum(1 for run_id in ordered if jobs.is_busy(run_id) and jobs.stop(run_id))


def delete_group(jobs: Any, group_id: str) -> None:
    """Delete every member run and the group file; refuses while a member is queued or running."""
    group = load_group(jobs.runs_root, group_id)
    busy = [run_id for run_id in group.run_ids() if jobs.is_busy(run_id)]
    if busy:
        raise RunError(f"Group {group_id} still has {len(busy)} queued or running run(s); stop the group first.")
    for run_id in group.run_ids():
        if (Path(jobs.runs_root) / run_id).is_dir():
            jobs.delete(run_id)
    group_path(jobs.runs_root, group_id).unlink(missing_ok=True)
