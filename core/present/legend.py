"""How runs are told apart on charts: one colour per strategy everywhere (Runs' overlay, Compare strategies),
short legend names (the strategy's display name and the run id's random end; the full name goes in the hover),
and where a point's name goes on a scatter chart.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.present import text

PALETTE = ("#4F46E5", "#0EA5E9", "#F59E0B", "#10B981", "#EC4899", "#8B5CF6", "#EF4444", "#14B8A6")
STRATEGY_COLORS = {
    "full": "#4F46E5",
    "lora": "#F59E0B",
    "feature-extraction": "#10B981",
    "freeze-layers": "#0EA5E9",
    "gradual-unfreeze": "#EC4899",
    "prompt": "#8B5CF6",
}
# Runs of the same strategy on one chart share its colour and differ by dash.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def strategy_color(strategy: str, index: int = 0) -> str:
    """The strategy's own colour (STRATEGY_COLORS); an unknown one takes the palette's `index`-th."""
    return STRATEGY_COLORS.get(strategy, PALETTE[index % len(PALETTE)])


def strategy_name(strategy: str) -> str:
    """The strategy's display name ('lora' -> 'LoRA adapters')."""
    return text.STRATEGY_NAMES.get(strategy, strategy)


def short_run_id(run_id: str) -> str:
    """The random end of a run id ('20260101-120000-mlm-1a2b3c4d' -> '1a2b3c4d'): unique, and short for a legend."""
    tail = run_id.rsplit("-", 1)[-1]
    return tail if len(tail) >= 4 else run_id


def run_legend_name(run_id: str, strategy: str) -> str:
    """A run's short name in a legend: its strategy's display name and its short id."""
    return " · ".join(part for part in (strategy_name(strategy) if strategy else "", short_run_id(run_id)) if part)


def point_label_layout(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[str], list[float] | None]:
    """Where each point's name goes (a plotly textposition) and a y range with room above the top one.

    A name leans towards the middle of the chart: centred over a point at either edge, it was cut off there
    ("ure extraction (head only)"). None: autorange (a single value).
    """
    low, high = (min(xs), max(xs)) if xs else (0.0, 0.0)
    where = [(x - low) / (high - low) if high > low else 0.5 for x in xs]
    sides = ["top right" if w < 0.25 else "top left" if w > 0.75 else "top center" for w in where]
    if len(set(ys)) < 2:
        return sides, None
    span = max(ys) - min(ys)
    return sides, [min(ys) - 0.08 * span, max(ys) + 0.2 * span]
