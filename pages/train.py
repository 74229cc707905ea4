"""Train: start, stop and resume runs; watch one live.

While a run is active two non-nested fragments refresh on their own and read only
`jobs.snapshot(run_id)`, an immutable copy: the progress line every REFRESH_S seconds and the
charts with the log every CHART_REFRESH_S; the rest of the page does not rerun. The run itself
trains in a child process supervised by the JobManager, so this page can be closed and reopened,
and watching it costs the training CPU only, never its GIL.

Watching must stay cheap, because the browser's CPU is the training's on a small machine: the
frequent refresh sends two elements, the figures are built once per new data point and shared
by every tab (`loss_chart`, `eval_chart`), and a state change made in another tab (Stop, Resume) reaches
this one through the sidebar's fragment (`state.watch`).
"""

from __future__ import annotations

import streamlit as st

from core.errors import TuneboardError
from core.present import charts, text
from core.run.sink import RunSnapshot
from ui import router, state
from ui.widgets import (
    format_count,
    format_duration,
    picked_run,
    run_progress,
    show_error,
    status_badge,
)

REFRESH_S = 2.5          # progress, ETA and status
# New points on the charts and the log, at most this often while the run trains: redrawing a
# changed plotly chart costs Chromium about a tenth of a core-second, taken from the training.
CHART_REFRESH_S = 10.0
LOG_LINES = 15
FIGURE_CACHE_ENTRIES = 64


# ---- actions -------------------------------------------------------------------------------

def submit_and_select(jobs, make_config) -> None:
    """Submit the config make_config() returns as a new run and select it; a typed error is shown, not raised."""
    try:
        run_id = jobs.submit(make_config())
    except TuneboardError as err:
        show_error(err)
    else:
        state.select_run(run_id)
        st.toast(text.STARTED.format(run_id=run_id))
        st.rerun()


def start_new_run(jobs) -> None:
    """Submit this tab's Setup config as a new run and select it."""
    submit_and_select(jobs, state.get_config)


def train_further(jobs, run_id: str) -> None:
    """Start a new run with this run's settings whose base model is this run's fine-tuned one ('run:<id>')."""
    def further():
        cfg = jobs.config(run_id)
        cfg.model.source = f"run:{run_id}"
        cfg.name = text.FINE_TUNE_FURTHER_NAME.format(name=cfg.name or run_id)
        return cfg

    submit_and_select(jobs, further)


def still_improving_hint(jobs, snap: RunSnapshot) -> None:
    """A completed run whose last evaluation still beat all earlier ones: say so, and offer to train further."""
    found = snap.info.get("still_improving")
    if snap.status != "completed" or not isinstance(found, dict):
        return
    metric = str(found.get("metric", ""))
    st.info(text.STILL_IMPROVING.format(
        metric=text.METRIC_NAMES.get(metric, metric), before=f"{found.get('before', 0):.4g}",
        value=f"{found.get('value', 0):.4g}", evaluations=found.get("evaluations", "?"),
    ), icon=":material/trending_up:")
    if st.button(text.TRAIN_FURTHER, type="primary", icon=":material/fork_right:", key="tb_train_further",
                 help=text.TRAIN_FURTHER_HELP.format(run_id=snap.run_id)):
        train_further(jobs, snap.run_id)


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


def chart_keys(snap: RunSnapshot) -> tuple[tuple, tuple]:
    """(loss chart key, eval chart key): each changes exactly when its chart's data does.

    Records are only ever appended (or all reset). Keyed apart, the eval chart's figure stays the
    very same object between evaluations, so Streamlit sends no new figure and the browser does
    not redraw it.
    """
    train = sum(1 for m in snap.metrics if "loss" in m)
    evals = len(snap.metrics) - train
    last = snap.metrics[-1].get("time") if snap.metrics else None
    return (snap.run_id, train, len(snap.events), last), (snap.run_id, evals, len(snap.events))


@st.cache_resource(max_entries=FIGURE_CACHE_ENTRIES, show_spinner=False)
def loss_chart(data_key: tuple, log_y: bool, smoothing: float, _snap: RunSnapshot):
    """The training-loss chart of a run at one data point, shared by every tab that shows it.

    Building a plotly figure (layout templates, validation) is the costly part of a refresh; a
    tab that refreshes without new data, or a second tab on the same run, gets the built one.
    """
    if not charts.series(_snap.metrics, "loss")[0]:
        return None
    return charts.loss_figure(_snap.metrics, _snap.events, log_y=log_y, smoothing=smoothing)


@st.cache_resource(max_entries=FIGURE_CACHE_ENTRIES, show_spinner=False)
def eval_chart(data_key: tuple, task: str, log_y: bool, _snap: RunSnapshot):
    """The evaluation chart of a run at one data point, shared by every tab that shows it."""
    eval_key = "eval_accuracy" if task == "classification" else "eval_loss"
    if not charts.series(_snap.metrics, eval_key)[0]:
        return None
    return charts.eval_figure(_snap.metrics, task, _snap.events, log_y=log_y)


def charts_grid(snap: RunSnapshot, task: str, log_y: bool, smoothing: float, logging_steps: int,
                eval_steps: int | None) -> None:
    """Training loss (with the learning rate) and evaluation side by side, then the log tail."""
    loss_key, eval_key = chart_keys(snap)
    top = st.columns(2)
    with top[0]:
        st.markdown(f"**{text.CHART_LOSS}**")
        figure = loss_chart(loss_key, log_y, smoothing, snap)
        if figure is not None:
            st.plotly_chart(figure, key="tb_train_chart_loss")
        else:
            st.caption(text.CHART_EMPTY.format(steps=logging_steps))
    with top[1]:
        st.markdown(f"**{text.CHART_EVAL}**")
        figure = eval_chart(eval_key, task, log_y, snap)
        if figure is not None:
            st.plotly_chart(figure, key="tb_train_chart_eval")
        elif eval_steps is None:
            st.caption(text.CHART_NO_EVAL)
        else:
            # An empty interval follows the run's length, which the run decides once its data is prepared.
            planned = eval_steps or (snap.info.get("run_length") or {}).get("eval_steps")
            st.caption(text.CHART_EMPTY.format(steps=planned) if planned else text.CHART_EMPTY_PLANNED)
    st.markdown(f"**{text.RUN_LOG}**")
    lines = snap.log_tail[-LOG_LINES:]
    st.code("\n".join(lines) if lines else text.RUN_LOG_EMPTY, language=None, wrap_lines=True, height=220)


def live_snapshot(run_id: str, was_active: bool) -> RunSnapshot | None:
    """The run as it is now; a run that has just finished redraws the whole page instead."""
    try:
        snap = state.get_jobs().snapshot(run_id)
    except TuneboardError as err:
        show_error(err)
        return None
    if was_active and not snap.is_active:
        st.rerun(scope="app")  # finished: redraw the buttons, the final figures, and stop the timers
    return snap


def live_progress(run_id: str, was_active: bool) -> None:
    """Progress, ETA and status; reruns on its own every REFRESH_S seconds while the run is active.

    Kept apart from the charts so that the frequent refresh sends two elements, not twenty, and
    the charts need no timer of their own to hold back their redraws.
    """
    snap = live_snapshot(run_id, was_active)
    if snap is not None:
        progress_row(snap)
        status_message(snap)


def live_charts(run_id: str, was_active: bool, task: str, log_y: bool, smoothing: float, logging_steps: int,
                eval_steps: int | None) -> None:
    """The charts and the log tail; reruns on its own every CHART_REFRESH_S seconds while active."""
    snap = live_snapshot(run_id, was_active)
    if snap is not None:
        charts_grid(snap, task, log_y, smoothing, logging_steps, eval_steps)


# ---- the page ------------------------------------------------------------------------------

router.require_router()
st.title(text.TRAIN_TITLE)
st.caption(text.TRAIN_CAPTION)

jobs = state.get_jobs()


def offer_first_start() -> None:
    if st.button(text.START_NEW, type="primary", icon=":material/play_arrow:", key="tb_train_start_first"):
        start_new_run(jobs)


run_id, snap, cfg = picked_run(jobs, when_none=offer_first_start)
state.watch(jobs, snap)

controls(jobs, snap)
still_improving_hint(jobs, snap)
options = st.columns([1, 2, 4])
log_y = options[0].toggle(text.LOG_SCALE, key="tb_train_log")
smoothing = options[1].slider(text.SMOOTHING, 0.0, 0.99, 0.6, 0.01, help=text.SMOOTHING_HELP, key="tb_train_smooth")

# None: not evaluated; 0: evaluated at intervals the run chooses (core.training.run_length).
evaluated = cfg.data.validation_fraction > 0 or bool(cfg.data.eval_path)
eval_steps = (cfg.training.eval_steps or 0) if evaluated else None
active = snap.is_active
st.fragment(live_progress, run_every=REFRESH_S if active else None, key="tb_train_progress")(run_id, active)
st.fragment(live_charts, run_every=CHART_REFRESH_S if active else None, key="tb_train_charts")(
    run_id, active, cfg.task, log_y, smoothing, cfg.training.logging_steps, eval_steps)
