"""Column widths for st.dataframe that fit the page, so that no label, number or header is cut off.

Streamlit draws a dataframe on a canvas: a column narrower than its text cuts the text at the edge, with
no ellipsis, and columns past the table's width hide behind a sideways scroll that few users find. Left
to itself Streamlit sizes each column from its first rows, up to a cap, so one long free-text column
(a headline, a run name) pushes the short ones (labels, ids, metrics, durations) out of view.

`fitted_columns` gives every column the width of its longest value or header, measured in pixels of
the table's font, and shrinks only the free-text columns named `flexible` until the table fits the width
it is drawn in, where their longer texts are cut (whole in the cell's overlay, a click away, in the table's
search and its CSV download); `fitted_table` ends them in '…' instead, for labels shown whole elsewhere. The widths are planned for a
1400 px window with the sidebar open (below); wider windows stretch the columns to fill the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import streamlit as st

if TYPE_CHECKING:  # a type only: importing pandas costs a first page 0.7 s
    import pandas as pd

# Room a table has in a 1400 px window with the sidebar open and a 15 px scrollbar: the main column of a wide
# page (1,100 px less 5 rem padding on each side), and the left column of Setup (inside a bordered section).
PAGE_WIDTH_PX = 920
SETUP_FORM_WIDTH_PX = 486
BOXED_WIDTH_PX = PAGE_WIDTH_PX - 34  # inside st.container(border=True): 1 rem padding and a border on each side

# Pixel widths of "Source Sans" at 14 px, Streamlit's table font (measured in Chromium), by kind of
# character; rounded up, so a width estimated from them never falls short of the drawn text.
_NARROW = set(" .,:;'|!ilIjtf()[]-·")
_WIDE = set("mwMW@%&")
_NARROW_PX, _DIGIT_PX, _LOWER_PX, _UPPER_PX, _WIDE_PX = 4.0, 7.1, 7.0, 8.4, 11.6
CELL_PADDING_PX = 20  # 8 px on each side of a cell, and a little slack for rounding
HEADER_PADDING_PX = 36  # a header also keeps room for the sort arrow and the column menu
MIN_FLEXIBLE_PX = 140  # a free-text column is never squeezed below this
MIN_COLUMN_PX = 56


def char_width_px(char: str) -> float:
    """The width of one character in the table's font (see the table above)."""
    if char in _NARROW:
        return _NARROW_PX
    if char in _WIDE:
        return _WIDE_PX
    if char.isdigit():
        return _DIGIT_PX
    return _UPPER_PX if char.isupper() else _LOWER_PX


def text_width_px(value: Any) -> float:
    """The width `value` takes drawn in the table's font, in pixels (an estimate that errs wide)."""
    return sum(char_width_px(char) for char in str(value))


def natural_width_px(values: Iterable[Any], header: str) -> int:
    """The width a column needs to show its longest value and its header whole."""
    widest = max((text_width_px(v) for v in values if v is not None and v == v), default=0.0)  # v == v: not NaN
    return int(max(widest + CELL_PADDING_PX, text_width_px(header) + HEADER_PADDING_PX, MIN_COLUMN_PX) + 0.5)


def fitted_widths(
    frame: pd.DataFrame,
    available_px: int = PAGE_WIDTH_PX,
    *,
    flexible: Sequence[str] = (),
    fixed: Mapping[str, int] | None = None,
    labels: Mapping[str, str] | None = None,
    shown_rows: int = 500,
) -> dict[str, int]:
    """Each column's width in pixels: its natural width, the `flexible` ones shrunk until the table fits.

    `fixed` sets a column's width outright (a progress bar); `labels` are headers shown instead of the
    column names; only the first `shown_rows` rows are measured (what the table shows of a long frame).
    """
    fixed, labels = dict(fixed or {}), dict(labels or {})
    head = frame.head(shown_rows)
    widths = {
        str(column): fixed.get(str(column)) or natural_width_px(_shown_values(head[column]),
                                                                labels.get(str(column), str(column)))
        for column in frame.columns
    }
    stretchy = [c for c in flexible if c in widths and c not in fixed]
    excess = sum(widths.values()) - available_px
    if excess > 0 and stretchy:
        # One cap for all free-text columns: the widest give up room first, so two of them end up sharing it.
        cap = max(MIN_FLEXIBLE_PX, _cap_level([widths[c] for c in stretchy], sum(widths[c] for c in stretchy) - excess))
        for column in stretchy:
            widths[column] = min(widths[column], int(cap))
    return widths


def _shown_values(column: pd.Series) -> list[str]:
    """The column's values as the table prints them (floats with at most 4 decimals, as Streamlit does)."""
    if column.dtype.kind == "f":
        return [f"{v:.4f}".rstrip("0").rstrip(".") for v in column.dropna()]
    return [str(v) for v in column.dropna()]


def _cap_level(widths: list[int], total: float) -> float:
    """The largest cap L with sum(min(w, L) for w in widths) <= total (total below sum(widths))."""
    below = 0.0
    ordered = sorted(widths)
    for index, width in enumerate(ordered):
        rest = len(ordered) - index
        if below + width * rest >= total:
            return (total - below) / rest
        below += width
    return float(ordered[-1])


def fitted_table(
    frame: pd.DataFrame,
    available_px: int = PAGE_WIDTH_PX,
    *,
    flexible: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    fixed: Mapping[str, int] | None = None,
    shown_rows: int = 500,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The first `shown_rows` rows of `frame` to draw and their column_config (see fitted_columns): a text too
    wide for its flexible column ends in '…' where the column ends, rather than being cut mid-letter."""
    shown = frame.head(shown_rows).copy()
    columns = fitted_columns(shown, available_px, flexible=flexible, config=config, fixed=fixed, shown_rows=shown_rows)
    for column in flexible:
        if column in shown.columns and columns.get(column):
            room = columns[column]["width"] - CELL_PADDING_PX
            shown[column] = [shorten(v, room) if isinstance(v, str) else v for v in shown[column]]
    return shown, columns


def fitted_columns(
    frame: pd.DataFrame,
    available_px: int = PAGE_WIDTH_PX,
    *,
    flexible: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    fixed: Mapping[str, int] | None = None,
    shown_rows: int = 500,
) -> dict[str, Any]:
    """st.dataframe's column_config for `frame`: `config`'s entries (a column set to None stays hidden), each
    shown column given its fitted width (see fitted_widths); hidden columns take no room."""
    config = dict(config or {})
    shown = frame[[c for c in frame.columns if not (str(c) in config and config[str(c)] is None)]]
    labels = {name: entry.get("label") for name, entry in config.items() if entry and entry.get("label")}
    widths = fitted_widths(shown, available_px, flexible=flexible, fixed=fixed, labels=labels, shown_rows=shown_rows)
    columns: dict[str, Any] = {}
    for column in frame.columns:
        name = str(column)
        entry = config.get(name, st.column_config.Column())
        columns[name] = None if entry is None else {**entry, "width": widths[name]}
    return columns


def shorten(value: str, limit_px: float) -> str:
    """`value`, cut with '…' (at a word's end when that loses little) when it is wider than `limit_px`."""
    if text_width_px(value) <= limit_px:
        return value
    room, kept = limit_px - char_width_px("…"), 0
    for char in value:
        room -= char_width_px(char)
        if room < 0:
            break
        kept += 1
    cut = value[:kept]
    word_end = cut.rstrip().rfind(" ")
    if word_end > kept * 0.85:
        cut = cut[:word_end]
    return cut.rstrip(" ·,;:-") + "…"
