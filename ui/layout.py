"""The frame around every page: page config and the shared sidebar (active run, device)."""

from __future__ import annotations

import streamlit as st

from core.errors import TuneboardError
from core.present import text
from ui import state
from ui.widgets import format_duration, run_progress, status_badge


def page_config() -> None:
    """Title, icon and wide layout; no CSS transitions (see NO_TRANSITIONS_CSS)."""
    st.set_page_config(page_title=text.APP_TITLE, page_icon=":material/tune:", layout="wide")
    calm_motion()


# Transitions off, app-wide: every animated frame is a repaint, and the browser that paints it
# shares the CPU with the training it shows. The progress bar's 0.5 s slide, replayed on each
# refresh, alone cost a watching tab about a tenth of a core (bench/bench_watching.py).
# Keyframe animations (spinners) stay: they only run while something is being waited for.
NO_TRANSITIONS_CSS = "<style>*, *::before, *::after { transition: none !important; }</style>"


def calm_motion() -> None:
    """Switch off CSS transitions in every page (see NO_TRANSITIONS_CSS)."""
    st.html(NO_TRANSITIONS_CSS)


SIDEBAR_REFRESH_S = 2.0


def sidebar(page=None) -> None:
    """The active (else the selected) run with its progress, and the device runs use."""
    state.forget_watch()  # a full run: the page about to run says afresh what it drew
    with st.sidebar:
        # Live: it is how every tab learns that a run started, stopped, resumed or ended elsewhere
        # (ui.state.watch). One small rerun every two seconds per tab, no charts. Train's own live
        # panel already follows the run it shows while that run is the active one, and reruns the
        # page when it ends, so there the sidebar rests: each rerun costs the browser CPU too.
        resting = _train_shows_active_run(page)
        st.fragment(sidebar_run, run_every=None if resting else SIDEBAR_REFRESH_S, key="tb_sidebar_run")(resting)
        st.divider()
        st.markdown(f"**{text.SIDEBAR_DEVICE}**")
        st.caption(state.device_label())


def _train_shows_active_run(page) -> bool:
    if page is None or getattr(page, "url_path", None) != "train":
        return False
    jobs = state.get_jobs()
    active = jobs.active_run_id()
    if active is None or active != state.selected_run_id():
        return False
    try:  # a run that has reported its end but is still being handed back is not followed live
        return jobs.snapshot(active).is_active
    except TuneboardError:
        return False


def sidebar_run(resting: bool = False) -> None:
    """The run panel of the sidebar; a fragment, so it follows a training run on every page.

    `resting`: Train shows the active run live and this panel does not refresh, so it draws no step or
    ETA of that run (they would stay at the values of the page's last full run, e.g. "Step 0" beside the
    page's "12 / 12"), only a line that its progress is on the page.
    """
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
            if resting and run_id == active:
                st.caption(text.SIDEBAR_PROGRESS_ON_PAGE)
            else:
                run_progress_bar(snap)
    queued = [r for r in jobs.queued() if r != active]
    if queued:
        st.caption(text.SIDEBAR_QUEUED.format(count=len(queued)))
    if state.watched_run_changed(jobs):
        st.rerun(scope="app")


def run_progress_bar(snap) -> None:
    """The run's step of its steps (ui.widgets.run_progress, as Train reads it) and, while active, its ETA."""
    step, max_steps, _ = run_progress(snap)
    if max_steps:
        label = text.SIDEBAR_STEP.format(step=step, max_steps=max_steps)
    else:
        label = text.SIDEBAR_STEP_UNKNOWN.format(step=step)
    st.progress(min(1.0, step / max_steps) if max_steps else 0.0, text=label)
    if snap.is_active and snap.eta_s is not None:
        st.caption(f"{text.METRIC_ETA}: {format_duration(snap.eta_s)}")


def sticky_column(container_key: str, top: str = "4rem") -> None:
    """Keep the column holding a keyed container in view while the page scrolls (CSS sticky).

    The column keeps its own height (not the row's) so it can travel beside a longer column, and
    scrolls inside itself when it is taller than the window.
    """
    st.html(
        f"<style>"
        f'[data-testid="stColumn"]:has(.st-key-{container_key}) {{ position: sticky; top: {top}; '
        f"align-self: flex-start; max-height: calc(100vh - {top} - 1rem); overflow-y: auto; }}"
        f"</style>"
    )
