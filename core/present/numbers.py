"""Numbers in words, shared by the pages, the CLI and the run log: durations, and rows dropped by reason."""

from __future__ import annotations

from collections.abc import Mapping

from core.present import text


def format_duration(seconds: float | None) -> str:
    """75 -> '1m 15s', 3700 -> '1h 01m'."""
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def dropped_reasons(dropped: Mapping[str, int]) -> str:
    """'518 duplicates, 3 empty': the rows that will not train, by reason, in the data report's order."""
    order = {reason: i for i, reason in enumerate(text.ROWS_PLAN_REASONS)}
    counted = sorted((item for item in dropped.items() if item[1]), key=lambda item: order.get(item[0], len(order)))
    return ", ".join(text.ROWS_PLAN_REASONS.get(reason, "{n:,} " + reason).format(n=n) for reason, n in counted)
