"""The router: the page list, and the frame every page runs in (page config, password gate, sidebar).

app.py and a page reached by a deep link both go through `route()`, so neither can skip the
password gate or the sidebar.
"""

from __future__ import annotations

import streamlit as st

from core.present import text
from ui import auth, layout, state

ROUTER_KEY = "tb_router_active"


def pages() -> list:
    """The app's pages, in navigation order (paths relative to app.py)."""
    return [
        st.Page("pages/setup.py", title=text.PAGE_SETUP, icon=text.ICON_SETUP, default=True),
        st.Page("pages/data.py", title=text.PAGE_DATA, icon=text.ICON_DATA),
        st.Page("pages/train.py", title=text.PAGE_TRAIN, icon=text.ICON_TRAIN),
        st.Page("pages/compare.py", title=text.PAGE_COMPARE, icon=text.ICON_COMPARE),
        st.Page("pages/playground.py", title=text.PAGE_CHAT, icon=text.ICON_CHAT),
        st.Page("pages/evaluate.py", title=text.PAGE_EVALUATE, icon=text.ICON_EVALUATE),
        st.Page("pages/runs.py", title=text.PAGE_RUNS, icon=text.ICON_RUNS),
        st.Page("pages/compare_strategies.py", title=text.PAGE_STRATEGIES, icon=text.ICON_STRATEGIES),
    ]


def route() -> None:
    """Draw the frame and run the page the URL names: what app.py does on every script run."""
    layout.page_config()
    page_list = pages()
    auth.require_password(page_list)  # only when $TUNEBOARD_PASSWORD is set; stops here until it is entered
    page = st.navigation(page_list)
    layout.sidebar(page)
    run_page(page)


def run_page(page) -> None:
    """Run the chosen st.Page inside the router, marking that the router is active."""
    st.session_state[ROUTER_KEY] = True
    state.forget_watch()
    try:
        page.run()
    finally:
        st.session_state[ROUTER_KEY] = False
        state.warm_up()  # the page is drawn (or moved on): torch may load now, off the script thread


def require_router() -> None:
    """Make sure a page runs inside the router's frame (page config, navigation, sidebar).

    Until some run calls st.navigation, Streamlit treats a folder named pages/ as a v1 multipage
    app and runs a deep-linked page (a reloaded /train?run=... tab after a server restart) on its
    own, without app.py; AppTest does the same after switch_page. Then this does what app.py does
    (st.navigation also switches the server to the router for good), runs the page inside it, and
    stops the outer run. No rerun, so a click that started this run is not lost.
    """
    if not st.session_state.get(ROUTER_KEY):
        route()
        st.stop()
