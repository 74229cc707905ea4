"""The frame around every page: page config and the shared sidebar (active run, device)."""

from __future__ import annotations

import streamlit as st

from core.errors import TuneboardError
from ui import state, text
from ui.widgets import format_duration, run_progress, status_badge


def page_config() -> None:
    """Title, icon and wide layout."""
    st.set_page_config(page_title=text.APP_TITLE, page_icon=":material/tune:", layout="wide")


SIDEBAR_REFRESH_S = 2.0


def sidebar() -> None:
    """The active (else the selected) run with its progress, and the device runs use."""
    jobs = state.get_jobs()
    with st.sidebar:
        # Live only while something trains or waits, so idle tabs cost the server nothing.
        refresh = SIDEBAR_REFRESH_S if jobs.is_busy() else None
        st.fragment(sidebar_run, run_every=refresh, key="tb_sidebar_run")()
        st.divider()
        st.markdown(f"**{text.SIDEBAR_DEVICE}**")
        st.caption(state.device_label())


def sidebar_run() -> None:
    """The run panel of the sidebar; a fragment, so it follows a training run on every page."""
    jobs = state.get_jobs()
    active = jobs.active_run_id()
    run_id = active or state.selected_run_id()
    st.markdown(f"**{text.SIDEBAR_ACTIVE_RUN if active else text.SIDEBAR_SELECTED_RUN}**")
    if run_id is None:
        st.caption(text.SIDEBAR_NO_RUN)
    else:
        try:
            snap = jobs.snapshot(run_id)
        except TuneboardError:
            st.caption(text.SIDEBAR_NO_RUN)
        else:
            st.caption(run_id)
            status_badge(snap.status)
            step, max_steps, _ = run_progress(snap)
            if max_steps:
                label = text.SIDEBAR_STEP.format(step=step, max_steps=max_steps)
            else:
                label = text.SIDEBAR_STEP_UNKNOWN.format(step=step)
            st.progress(min(1.0, step / max_steps) if max_steps else 0.0, text=label)
            if snap.is_active and snap.eta_s is not None:
                st.caption(f"{text.METRIC_ETA}: {format_duration(snap.eta_s)}")
    queued = [r for r in jobs.queued() if r != active]
    if queued:
        st.caption(text.SIDEBAR_QUEUED.format(count=len(queued)))
