"""A shoot-out group's comparison: one row per member, the Pareto front of quality against wall time,
and a recommendation that pages and the CLI put into words (`recommendation_text`). Plain data.

Quality is the task's main metric (config.MAIN_METRIC), except for instruction tuning once every completed
member scored its generated answers: then the F1 of the labels they name (a small label set), else their
exact match. That is what puts prompting, which has no training loss, on the same scale as training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.config import MAIN_METRIC
from core.plan.sweep import Group, Member, member_label, member_states
from core.run.folder import RunFolder

# A strategy within this share of the best quality counts as "as good" for the recommendation.
QUALITY_TOLERANCE = 0.02
# Instruction tuning's answer scores, in the order a comparison prefers them (core.insight.answer_pass).
ANSWER_METRICS = ("f1", "exact_match")


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
    metrics: Mapping[str, float] = field(default_factory=dict)  # the final metrics, e.g. eval_exact_match

    @property
    def name(self) -> str:
        """The label with the strategy's display name: 'lora @ 1e-04' -> 'LoRA adapters @ 1e-04'."""
        from core.present import text  # lazy: plain strings

        shown = text.STRATEGY_NAMES.get(self.strategy, self.strategy)
        return shown + self.label[len(self.strategy):] if self.label.startswith(self.strategy) else self.label

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
    metric_name = "eval_" + MAIN_METRIC[task][0]
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
        metrics={k: v for k, v in ((k, _number(v)) for k, v in final.items()) if v is not None},
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


def quality_metric(rows: Sequence[Row], task: str) -> tuple[str, bool]:
    """(metric, higher is better) the rows are compared by: the task's main metric, or for instruction tuning
    the first answer score (ANSWER_METRICS) that every completed row carries."""
    completed = [r for r in rows if r.status == "completed"]
    if task == "sft" and completed:
        for metric in ANSWER_METRICS:
            if all(f"eval_{metric}" in r.metrics for r in completed):
                return metric, True
    return MAIN_METRIC[task]


def compare(rows: Sequence[Row], task: str) -> Comparison:
    """The comparison of a group's rows: Pareto front and recommendation over completed members."""
    metric, higher = quality_metric(rows, task)
    if metric != MAIN_METRIC[task][0]:
        rows = [replace(r, metric=_number(r.metrics.get(f"eval_{metric}"))) for r in rows]
    return Comparison(metric=metric, higher_is_better=higher, rows=tuple(rows),
                      front=tuple(r.run_id for r in pareto_front(rows, higher)),
                      recommendation=recommend(rows, task, metric=(metric, higher)))


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


def recommend(rows: Sequence[Row], task: str, *, metric: tuple[str, bool] | None = None) -> Recommendation | None:
    """The fastest front member within QUALITY_TOLERANCE of the best quality, against the best one.

    None until two members have completed with a metric and a wall time. `metric`: (name, higher is better)
    of the rows' `metric` when it is not the task's main one (compare passes quality_metric's).
    """
    metric, higher = metric or MAIN_METRIC[task]
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


def recommendation_text(recommendation: Recommendation | None, names: Mapping[str, str] | None = None) -> str:
    """The recommendation as one sentence (templates in core.present.text).

    `names` maps the rows' labels to what the reader should see (pages: the strategies' display names,
    Row.name); the CLI keeps the ids its flags use.
    """
    from dataclasses import replace

    from core.present import text  # lazy: plain strings, no streamlit

    if recommendation is None:
        return text.SWEEP_NO_RECOMMENDATION
    r = recommendation
    if names:
        r = replace(r, pick=names.get(r.pick, r.pick), reference=names.get(r.reference, r.reference))
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
