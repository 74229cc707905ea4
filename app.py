"""Tuneboard: the router. Defines the pages, draws the shared sidebar, runs the chosen page.

Start it with `streamlit run app.py`. Pages live in pages/ and never import torch; the training
itself runs in the JobManager's worker thread (ui.state.get_jobs), so closing a tab stops nothing.
"""

from __future__ import annotations

import streamlit as st

from ui import auth, layout, state

layout.page_config()
auth.require_password()  # only when $TUNEBOARD_PASSWORD is set; stops here until it is entered
page = st.navigation(state.pages())
layout.sidebar(page)
state.run_page(page)
