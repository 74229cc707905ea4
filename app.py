"""Tuneboard: the router. Defines the pages, draws the shared sidebar, runs the chosen page.

Start it with `streamlit run app.py`. Pages live in pages/ and never import torch; the training
itself runs in a child process supervised by the JobManager (ui.state.get_jobs), so closing a tab
stops nothing.
"""

from __future__ import annotations

from ui import router

router.route()
