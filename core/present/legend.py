"""How runs are told apart on charts: one colour per strategy everywhere (Runs' overlay, Compare strategies),
and short legend names (the strategy's display name and the run id's random end; the full name goes in the hover).
"""

from __future__ import annotations

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
