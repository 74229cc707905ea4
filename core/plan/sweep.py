"""A strategy shoot-out: a group of runs over strategies (and learning rates), and its comparison.

Every member is an ordinary run folder under the runs root, trained by the JobManager like any other
run; members differ only in `strategy.name` and `training.learning_rate`, so they share the data
split, seed and probes. Without learning rates of its own, a group keeps the base config's: a number,
'auto' (each run does its own range test) or none set (each strategy trains at its own default). The
group itself is one summary file, written atomically:

    <runs root>/groups/<group id>.json   {group_id, name, created_at, task, strategies,
                                          learning_rates, config, members: [{strategy,
                                          learning_rate, run_id}]}

A member's `run_id` is null until it was submitted, so a group cut off while it was being queued
knows which members are missing; `resume_group` queues those and resumes stopped or interrupted
ones. The comparison (`compare`) is plain data: one row per member, the Pareto front of quality
against wall time, and a recommendation that pages and the CLI put into words (`recommendation_text`).
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.config import LEARNING_RATE_AUTO, STRATEGIES, RunConfig, describe_learning_rate
from core.errors import ConfigError, RunError
from core.files import atomic_write_json
from core.run.folder import RESUMABLE, RunFolder, now_iso, validate_run_id

GROUPS_FOLDER = "groups"
MAX_LEARNING_RATES = 3
# A strategy within this share of the best quality counts as "as good" for the recommendation.
QUALITY_TOLERANCE = 0.02
# The metric each task is judged by (as core.training.engine.MAIN_METRIC, which imports torch): name, higher is better.
GROUP_METRIC = {"classification": ("f1", True), "mlm": ("loss", False), "causal": ("loss", False)}
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
    """'lora', or 'lora @ 1e-04' when the group tries several learning rates."""
    if not with_rate:
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
    group.members = [Member(strategy, rate) for strategy in strategies for rate in rates]
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


# ---- the comparison ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """What one member measured; None where it did not (yet) record a figure."""

    run_id: str
    label: str
    strategy: str
    learning_rate: float | str | None
    status: str
    metric: float | None = None          # the task's main metric: the kept (best) evaluation, else the last
    eval_loss: float | None = None
    wall_s: float | None = None
    samples_per_s: float | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    peak_memory_bytes: int | None = None
    disk_bytes: int | None = None

    @property
    def trainable_share(self) -> float | None:
        """Trainable parameters as a share of all parameters."""
        if self.trainable_params is None or not self.total_params:
            return None
        return self.trainable_params / self.total_params


@dataclass(frozen=True)
class Recommendation:
    """The measured case for one choice: `pick` against `reference` (the best quality), as ratios."""

    pick: str
    reference: str
    metric: str
    higher_is_better: bool
    quality_ratio: float            # pick's metric / reference's metric
    time_ratio: float | None        # pick's wall time / reference's
    params_ratio: float | None      # pick's trainable parameters / reference's
    pick_value: float = 0.0
    reference_value: float = 0.0


@dataclass(frozen=True)
class Comparison:
    """A group's table, which rows form the Pareto front of quality against time, and the advice."""

    metric: str
    higher_is_better: bool
    rows: tuple[Row, ...]
    front: tuple[str, ...]           # run ids on the Pareto front, fastest first
    recommendation: Recommendation | None


def row_from_status(member: Member, label: str, run_id: str, status: Mapping[str, Any], *, task: str,
                    disk_bytes: int | None = None, state: str | None = None) -> Row:
    """A table row from a member's status.json (as the engine writes it)."""
    metric_name = "eval_" + GROUP_METRIC[task][0]
    final = status.get("final_metrics") if isinstance(status.get("final_metrics"), Mapping) else {}
    best = status.get("best") if isinstance(status.get("best"), Mapping) else None
    metric = _number(best.get("value")) if best and best.get("name") == metric_name else None
    if metric is None:
        metric = _number(final.get(metric_name))
    peak = status.get("peak_memory_bytes")
    return Row(
        run_id=run_id, label=label, strategy=member.strategy, learning_rate=member.learning_rate,
        status=state or str(status.get("status") or "missing"),
        metric=metric,
        eval_loss=_number(final.get("eval_loss")),
        wall_s=_number(status.get("elapsed_s")),
        samples_per_s=_number(status.get("samples_per_s")),
        trainable_params=_int(status.get("trainable_params")),
        total_params=_int(status.get("total_params")),
        peak_memory_bytes=_int(peak),
        disk_bytes=disk_bytes,
    )


def group_rows(jobs: Any, group: Group) -> list[Row]:
    """One row per member, from its folder (and the manager's live status for active ones)."""
    summaries = {s.run_id: s for s in jobs.list_runs() if s.run_id in set(group.run_ids())}
    with_rate = len(group.learning_rates) > 1
    rows = []
    for member, state in zip(group.members, member_states(jobs, group), strict=True):
        label = member_label(member, with_rate)
        if state == "missing":
            rows.append(Row(run_id=member.run_id or "", label=label, strategy=member.strategy,
                            learning_rate=member.learning_rate, status="missing"))
            continue
        summary = summaries.get(member.run_id)
        status = RunFolder(Path(jobs.runs_root) / member.run_id).status()
        rows.append(row_from_status(member, label, member.run_id, status, task=group.task, state=state,
                                    disk_bytes=summary.disk_bytes if summary is not None else None))
    return rows


def compare(rows: Sequence[Row], task: str) -> Comparison:
    """The comparison of a group's rows: Pareto front and recommendation over completed members."""
    metric, higher = GROUP_METRIC[task]
    return Comparison(metric=metric, higher_is_better=higher, rows=tuple(rows),
                      front=tuple(r.run_id for r in pareto_front(rows, higher)),
                      recommendation=recommend(rows, task))


def _measured(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.status == "completed" and r.metric is not None and r.wall_s is not None]


def pareto_front(rows: Iterable[Row], higher_is_better: bool) -> list[Row]:
    """Completed rows that no other row beats on both quality and wall time, fastest first."""
    measured = _measured(rows)

    def quality(row: Row) -> float:
        return row.metric if higher_is_better else -row.metric

    def dominated(row: Row) -> bool:
        return any(
            other is not row and other.wall_s <= row.wall_s and quality(other) >= quality(row)
            and (other.wall_s < row.wall_s or quality(other) > quality(row))
            for other in measured
        )

    return sorted((r for r in measured if not dominated(r)), key=lambda r: (r.wall_s, -quality(r)))


def recommend(rows: Sequence[Row], task: str) -> Recommendation | None:
    """The fastest front member within QUALITY_TOLERANCE of the best quality, against the best one.

    None until two members have completed with a metric and a wall time.
    """
    metric, higher = GROUP_METRIC[task]
    measured = _measured(rows)
    if len(measured) < 2:
        return None
    best = max(measured, key=lambda r: r.metric if higher else -r.metric)

    def close_enough(row: Row) -> bool:
        if higher:
            return row.metric >= best.metric * (1 - QUALITY_TOLERANCE)
        return row.metric <= best.metric * (1 + QUALITY_TOLERANCE)

    pick = next((r for r in pareto_front(measured, higher) if close_enough(r)), best)
    return Recommendation(
        pick=pick.label, reference=best.label, metric=metric, higher_is_better=higher,
        quality_ratio=_ratio(pick.metric, best.metric) or 0.0,
        time_ratio=_ratio(pick.wall_s, best.wall_s),
        params_ratio=_ratio(pick.trainable_params, best.trainable_params),
        pick_value=pick.metric, reference_value=best.metric,
    )


def recommendation_text(recommendation: Recommendation | None) -> str:
    """The recommendation as one sentence (templates in core.present.text)."""
    from core.present import text  # lazy: plain strings, no streamlit

    if recommendation is None:
        return text.SWEEP_NO_RECOMMENDATION
    r = recommendation
    metric = text.SWEEP_METRIC_NAMES.get(r.metric, r.metric)
    if r.pick == r.reference:
        return text.SWEEP_BEST_IS_FASTEST.format(pick=r.pick, metric=metric, value=r.pick_value,
                                                 tolerance=QUALITY_TOLERANCE)
    if r.higher_is_better:
        sentence = text.SWEEP_REACHES.format(pick=r.pick, reference=r.reference, metric=metric, share=r.quality_ratio)
    else:
        sentence = text.SWEEP_WITHIN.format(pick=r.pick, reference=r.reference, metric=metric,
                                            share=max(0.0, r.quality_ratio - 1), value=r.pick_value,
                                            reference_value=r.reference_value)
    if r.time_ratio is not None:
        sentence += text.SWEEP_IN_TIME.format(share=r.time_ratio)
    if r.params_ratio is not None:
        sentence += text.SWEEP_TRAINING_PARAMS.format(share=r.params_ratio)
    return sentence + "."


def comparison_table(comparison: Comparison) -> list[dict[str, Any]]:
    """The rows as plain records for a table (pages) or the console (CLI), front members marked."""
    from core.present import text

    names = text.SWEEP_COLUMNS
    front = set(comparison.front)
    metric = text.SWEEP_METRIC_NAMES.get(comparison.metric, comparison.metric)
    return [
        {
            names["label"]: row.label,
            names["status"]: row.status,
            metric: row.metric,
            names["eval_loss"]: row.eval_loss,
            names["wall_s"]: row.wall_s,
            names["samples_per_s"]: row.samples_per_s,
            names["trainable"]: row.trainable_params,
            names["share"]: row.trainable_share,
            names["peak_memory"]: row.peak_memory_bytes,
            names["disk"]: row.disk_bytes,
            names["front"]: row.run_id in front,
            names["run_id"]: row.run_id,
        }
        for row in comparison.rows
    ]


def format_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Fixed-width text of table records, for the console."""
    if not records:
        return ""
    headers = list(records[0])
    cells = [[_cell(record[h]) for h in headers] for record in records]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole
