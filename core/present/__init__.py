"""Presentation shared by the pages, the report and the CLI: every user-facing string, and plotly figures.

No streamlit and no torch here, so core (the report, the CLI) and the pages both import it.

    text    every user-facing string
    charts  the plotly figure builders
    legend  runs on charts: one colour per strategy, short legend names
"""
