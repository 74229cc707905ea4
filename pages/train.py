"""Train: start, stop and resume runs; watch one live.

The live panel is ONE non-nested fragment that re-runs every REFRESH_S seconds while the run is
active and reads only `jobs.snapshot(run_id)`, an immutable copy; the rest of the page does not
rerun. The run itself trains in a child process supervised by the JobManager, so this page can be
closed and reopened, and watching it costs the training CPU only, never its GIL.

Watching must stay cheap: the figures are built once per new data point and shared by every tab
(`training_figures`), not once per tab per refresh, and a state change made in another tab (Stop,
Resume) reaches this one through the sidebar's fragment (`state.watch`).
"""

from __future__ import annotations

import time

import streamlit as st

from core.errors import TuneboardError
from core.sink import RunSnapshot
from ui import charts, state, text
from ui.widgets import (
    format_count,
    format_duration,
    picked_run,
    run_progress,
    show_error,
    status_badge,
)

REFRESH_S = 2.5          # progress, ETA, status and log
CHART_REFRESH_S = 10.0   # new points on the charts, at most this often while the run trains
LOG_LINES = 15
FIGURE_CACHE_ENTRIES = 64
FIGURES_KEY = "tb_train_figures"


# ---- actions -------------------------------------------------------------------------------

def start_new_run(jobs) -> None:
    """Submit this tab's Setup config as a new run and select it."""
    try:
        run_id = jobs.submit(state.get_config())
    except TuneboardError as err:
        show_error(err)
    else:
        state.select_run(run_id)
        st.toast(text.STARTED.format(run_id=run_id))
        st.rerun()


def controls(jobs, snap: RunSnapshot) -> None:
    """Start / Stop / Resume buttons for the selected run."""
    cols = st.columns([1.3, 1, 1, 3])
    with cols[0]:
        if st.button(text.START_NEW, icon=":material/play_arrow:", help=text.START_NEW_HELP, key="tb_train_start"):
            start_new_run(jobs)
    with cols[1]:
        if st.button(text.STOP, icon=":material/stop:", help=text.STOP_HELP, disabled=not snap.is_active,
                     key="tb_train_stop"):
            try:
                jobs.stop(snap.run_id)
            except TuneboardError as err:
                show_error(err)
            else:
                st.toast(text.STOP_REQUESTED)
    with cols[2]:
        if st.button(text.RESUME, icon=":material/resume:", help=text.RESUME_HELP,
                     disabled=not jobs.is_resumable(snap.run_id), key="tb_train_resume"):
            try:
                jobs.resume(snap.run_id)
            except TuneboardError as err:
                show_error(err)
            else:
                st.toast(text.RESUMED.format(run_id=snap.run_id))
                st.rerun()


# ---- the live panel ------------------------------------------------------------------------

def live_progress_line(snap: RunSnapshot, step: int, max_steps: int, epoch: float) -> None:
    """While training: the same figures as `progress_row`, in two elements instead of a dozen.

    This part redraws every REFRESH_S in every watching tab, and Chromium's cost of a refresh
    grows with the number of elements it re-renders; the CPU it takes is the training's.
    """
    figures = [
        f"**{text.METRIC_STEP}** {step:,} / {max_steps:,}" if max_steps else f"**{text.METRIC_STEP}** {step:,}",
        f"**{text.METRIC_EPOCH}** {epoch:.2f}",
        f"**{text.METRIC_ETA}** {format_duration(snap.eta_s)}",
        f"**{text.METRIC_SPEED}** {snap.samples_per_s:,.1f}" if snap.samples_per_s else "",
        f"**{text.METRIC_ELAPSED}** {format_duration(snap.elapsed_s)}",
    ]
    badge = f":{text.STATUS_COLORS.get(snap.status, 'gray')}-badge[{text.STATUS_LABELS.get(snap.status, snap.status)}]"
    st.markdown("  ·  ".join([badge, *(f for f in figures if f)]))
    label = text.PROGRESS_TEXT.format(step=step, max_steps=max_steps, epoch=epoch) if max_steps else text.PROGRESS_WAITING
    st.progress(min(1.0, step / max_steps) if max_steps else 0.0, text=label)


def progress_row(snap: RunSnapshot) -> None:
    """Status, step, epoch, ETA, speed and elapsed time, then the progress bar."""
    step, max_steps, epoch = run_progress(snap)
    if snap.is_active:
        live_progress_line(snap, step, max_steps, epoch)
        return
    cols = st.columns(6)
    with cols[0]:
        st.caption(text.METRIC_STATUS)
        status_badge(snap.status)
    cols[1].metric(text.METRIC_STEP, f"{step:,} / {max_steps:,}" if max_steps else f"{step:,}")
    cols[2].metric(text.METRIC_EPOCH, f"{epoch:.2f}")
    cols[3].metric(text.METRIC_ETA, format_duration(snap.eta_s) if snap.is_active else text.NOT_AVAILABLE)
    cols[4].metric(text.METRIC_SPEED, f"{snap.samples_per_s:,.1f}" if snap.samples_per_s else text.NOT_AVAILABLE)
    cols[5].metric(text.METRIC_ELAPSED, format_duration(snap.elapsed_s))
    if max_steps:
        label = text.PROGRESS_TEXT.format(step=step, max_steps=max_steps, epoch=epoch)
    else:
        label = text.PROGRESS_WAITING if snap.is_active else ""
    st.progress(min(1.0, step / max_steps) if max_steps else 0.0, text=label)
    trainable, total = snap.info.get("trainable_params"), snap.info.get("total_params")
    if trainable and total:
        st.caption(text.RUN_PARAMS.format(trainable=format_count(trainable), total=format_count(total)))


def status_message(snap: RunSnapshot) -> None:
    """Why a run ended (failed, interrupted) or is waiting (queued), as a message, never a traceback."""
    if snap.status == "failed":
        st.error(f"**{text.RUN_FAILED}** {snap.error or ''}", icon=":material/error:")
    elif snap.status in ("interrupted", "stopped") and snap.error:
        st.warning(snap.error, icon=":material/warning:")
    elif snap.status == "queued":
        st.info(text.QUEUED_NOTE, icon=":material/schedule:")


def chart_data_key(snap: RunSnapshot) -> tuple:
    """Changes exactly when the charts' data does: records are only ever appended (or all reset)."""
    last = snap.metrics[-1].get("time") if snap.metrics else None
    return snap.run_id, len(snap.metrics), len(snap.events), last


@st.cache_resource(max_entries=FIGURE_CACHE_ENTRIES, show_spinner=False)
def training_figures(data_key: tuple, task: str, log_y: bool, smoothing: float, _snap: RunSnapshot) -> dict:
    """The three charts of a run at one data point, shared by every tab that shows it.

    Building a plotly figure (layout templates, validation) is the costly part of a refresh; a
    tab that refreshes without new data, or a second tab on the same run, gets the built ones.
    """
    metrics, events = _snap.metrics, _snap.events
    eval_key = "eval_accuracy" if task == "classification" else "eval_loss"
    return {
        "loss": charts.loss_figure(metrics, events, log_y=log_y, smoothing=smoothing)
        if charts.series(metrics, "loss")[0] else None,
        "eval": charts.eval_figure(metrics, task, events, log_y=log_y) if charts.series(metrics, eval_key)[0] else None,
        "lr": charts.lr_figure(metrics, events) if charts.series(metrics, "learning_rate")[0] else None,
    }


def shown_figures(snap: RunSnapshot, task: str, log_y: bool, smoothing: float) -> dict:
    """This tab's figures: new data reaches them at most every CHART_REFRESH_S while the run trains.

    Re-sending an unchanged figure costs the browser almost nothing (Streamlit sends a cached
    reference), but redrawing a changed one costs Chromium about a tenth of a core-second per
    chart: on a fast run whose loss is logged every second or two, redrawing at every refresh took
    a third of a core away from the training it showed. Options, another run and the run's end
    redraw at once.
    """
    options = (snap.run_id, task, log_y, smoothing)
    data_key = chart_data_key(snap)
    held = st.session_state.get(FIGURES_KEY)
    now = time.monotonic()
    if held is not None:
        held_options, held_key, figures, drawn_at = held
        fresh_enough = held_key == data_key or (snap.is_active and now - drawn_at < CHART_REFRESH_S)
        if held_options == options and fresh_enough:
            return figures
    figures = training_figures(data_key, task, log_y, smoothing, snap)
    st.session_state[FIGURES_KEY] = (options, data_key, figures, now)
    return figures


def charts_grid(snap: RunSnapshot, task: str, log_y: bool, smoothing: float, logging_steps: int,
                eval_steps: int | None) -> None:
    """Training loss, evaluation, learning rate and the log tail, two by two."""
    figures = shown_figures(snap, task, log_y, smoothing)
    top = st.columns(2)
    with top[0]:
        st.markdown(f"**{text.CHART_LOSS}**")
        if figures["loss"] is not None:
            st.plotly_chart(figures["loss"], key="tb_train_chart_loss")
        else:
            st.caption(text.CHART_EMPTY.format(steps=logging_steps))
    with top[1]:
        st.markdown(f"**{text.CHART_EVAL}**")
        if figures["eval"] is not None:
            st.plotly_chart(figures["eval"], key="tb_train_chart_eval")
        else:
            st.caption(text.CHART_EMPTY.format(steps=eval_steps) if eval_steps else text.CHART_NO_EVAL)
    bottom = st.columns(2)
    with bottom[0]:
        st.markdown(f"**{text.CHART_LR}**")
        if figures["lr"] is not None:
            st.plotly_chart(figures["lr"], key="tb_train_chart_lr")
        else:
            st.caption(text.CHART_EMPTY.format(steps=logging_steps))
    with bottom[1]:
        st.markdown(f"**{text.RUN_LOG}**")
        lines = snap.log_tail[-LOG_LINES:]
        st.code("\n".join(lines) if lines else text.RUN_LOG_EMPTY, language=None, wrap_lines=True)


def live_panel(run_id: str, was_active: bool, task: str, log_y: bool, smoothing: float, logging_steps: int,
               eval_steps: int | None) -> None:
    """Everything that changes while training; reruns on its own every REFRESH_S seconds."""
    try:
        snap = state.get_jobs().snapshot(run_id)
    except TuneboardError as err:
        show_error(err)
        return
    if was_active and not snap.is_active:
        st.rerun(scope="app")  # finished: redraw the buttons and stop the timer
    progress_row(snap)
    status_message(snap)
    charts_grid(snap, task, log_y, smoothing, logging_steps, eval_steps)


# ---- the page ------------------------------------------------------------------------------

state.require_router()
st.title(text.TRAIN_TITLE)
st.caption(text.TRAIN_CAPTION)

jobs = state.get_jobs()


def offer_first_start() -> None:
    if st.button(text.START_NEW, type="primary", icon=":material/play_arrow:", key="tb_train_start_first"):
        start_new_run(jobs)


run_id, snap, cfg = picked_run(jobs, when_none=offer_first_start)
state.watch(jobs, snap)

controls(jobs, snap)
options = st.columns([1, 2, 4])
log_y = options[0].toggle(text.LOG_SCALE, key="tb_train_log")
smoothing = options[1].slider(text.SMOOTHING, 0.0, 0.99, 0.6, 0.01, help=text.SMOOTHING_HELP, key="tb_train_smooth")

live = st.fragment(live_panel, run_every=REFRESH_S if snap.is_active else None, key="tb_train_live")
eval_steps = cfg.training.eval_steps if cfg.data.validation_fraction > 0 else None
live(run_id, snap.is_active, cfg.task, log_y, smoothing, cfg.training.logging_steps, eval_steps)
