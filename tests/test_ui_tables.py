"""Column widths that fit the page (ui/tables.py): short columns whole, free text shrunk, long texts ending in '…'."""

from __future__ import annotations

import pandas as pd

from ui.tables import CELL_PADDING_PX, fitted_table, fitted_widths, natural_width_px, shorten, text_width_px

RUN_ID = "20261207-174352-classification-ada2dce2"
LONG = "news headlines classifier with the second annotator's labels, trained on four hundred rows for a check"


def test_widths_estimate_the_drawn_text_on_the_wide_side():
    # Chromium drew these in 14 px "Source Sans" at 243.3 and 135.4 px.
    assert 243 <= text_width_px(RUN_ID) <= 270
    assert 135 <= text_width_px("media & entertainment") <= 150
    assert natural_width_px([RUN_ID, "x"], "Run") >= text_width_px(RUN_ID) + CELL_PADDING_PX


def test_only_the_free_text_shrinks_and_the_table_fits():
    frame = pd.DataFrame({"Run": [RUN_ID], "Status": ["interrupted"], "Name": [LONG]})
    widths = fitted_widths(frame, 600, flexible=["Name"])
    assert widths["Run"] == natural_width_px([RUN_ID], "Run")
    assert widths["Status"] == natural_width_px(["interrupted"], "Status")
    assert sum(widths.values()) == 600
    roomy = fitted_widths(frame, 2000, flexible=["Name"])
    assert roomy["Name"] == natural_width_px([LONG], "Name")  # nothing to give up when everything fits


def test_two_free_text_columns_share_the_room():
    frame = pd.DataFrame({"Label": ["sports"], "Base answer": [LONG], "Tuned answer": [LONG[:60]]})
    widths = fitted_widths(frame, 500, flexible=["Base answer", "Tuned answer"])
    assert widths["Base answer"] == widths["Tuned answer"] and sum(widths.values()) <= 500


def test_a_long_text_ends_in_an_ellipsis_at_its_column_edge_and_hidden_columns_take_no_room():
    frame = pd.DataFrame({"Run": [RUN_ID], "Name": [LONG], "Disk": ["87.4 MB"]})
    shown, columns = fitted_table(frame, 500, flexible=["Name"], config={"Disk": None})
    assert columns["Disk"] is None
    assert columns["Run"]["width"] + columns["Name"]["width"] == 500
    name = shown["Name"].iloc[0]
    assert name.endswith("…") and LONG.startswith(name[:-1])
    assert text_width_px(name) <= columns["Name"]["width"] - CELL_PADDING_PX
    assert frame["Name"].iloc[0] == LONG  # the caller's frame (its CSV download) keeps the whole text
    assert shorten("short", 200) == "short"
