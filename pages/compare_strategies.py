"""Compare strategies: one shoot-out group (core.plan.sweep) as a table, overlaid curves, the quality/time
trade-off with its Pareto front, and a recommendation built from the measured figures.

The group is chosen in the URL (`?group=<id>`) so a reloaded tab reattaches. While a member is queued
or running, one fragment refreshes the results every few seconds; Stop / Resume / Delete act on the
whole group through the shared JobManager.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import TuneboardError
from core.plan import comparison, sweep
from core.present import charts, legend, text
from ui import router, state
from ui.tables import fitted_columns
from ui.widgets import format_bytes, format_count, format_duration, show_error

REFRESH_S = 3.0
DELETE_KEY = "tb_sweep_delete_pending"


def pick_group(groups: list[sweep.Group]) -> sweep.Group | None:
    """The group in the URL, else the newest; a select box switches between them."""
    wanted = st.query_params.get("group")
    ids = [g.group_id for g in groups]
    if wanted and wanted not in ids:
        st.warning(text.SWEEP_NOT_FOUND.format(group_id=wanted), icon=":material/warning:")
    index = ids.index(wanted) if wanted in ids else 0
    by_id = {g.group_id: g for g in groups}
    chosen = st.selectbox(
        text.SWEEP_PICK_GROUP, ids, index=index, key="tb_sweep_group",
        format_func=lambda gid: text.SWEEP_GROUP_LABEL.format(
            name=by_id[gid].name or gid, task=by_id[gid].task, runs=len(by_id[gid].members),
            created=by_id[gid].created_at.replace("T", " ")[:16]),
    )
    if chosen != wanted:
        st.query_params["group"] = chosen
    return by_id.get(chosen)


def controls(group: sweep.Group, states: list[str]) -> None:
    """Stop, resume and delete the whole group."""
    busy = any(s in ("queued", "running") for s in states)
    cols = st.columns(3)
    if cols[0].button(text.SWEEP_STOP, help=text.SWEEP_STOP_HELP, disabled=not busy, key="tb_sweep_stop",
                      icon=":material/stop:", width="stretch"):
        _act(lambda: st.toast(text.SWEEP_STOPPED.format(count=sweep.stop_group(jobs, group.group_id))))
    resumable = not busy and any(s in sweep.RESUBMIT or s in ("stopped", "interrupted") for s in states)
    if cols[1].button(text.SWEEP_RESUME, help=text.SWEEP_RESUME_HELP, disabled=not resumable, key="tb_sweep_resume",
                      icon=":material/play_arrow:", width="stretch"):
        _act(lambda: st.toast(text.SWEEP_RESUMED.format(count=len(sweep.resume_group(jobs, group.group_id)))))
    if cols[2].button(text.SWEEP_DELETE, help=text.SWEEP_DELETE_HELP, disabled=busy, key="tb_sweep_delete",
                      icon=":material/delete:", width="stretch"):
        st.session_state[DELETE_KEY] = group.group_id
    if st.session_state.get(DELETE_KEY) == group.group_id and not busy:
        if st.button(text.SWEEP_DELETE_CONFIRM, type="primary", key="tb_sweep_delete_confirm"):
            st.session_state.pop(DELETE_KEY, None)
            try:
                sweep.delete_group(jobs, group.group_id)
            except TuneboardError as err:
                show_error(err)
            else:
                st.query_params.pop("group", None)
                st.toast(text.SWEEP_DELETED.format(group_id=group.group_id))
                st.rerun()


def _act(action) -> None:
    try:
        action()
    except TuneboardError as err:
        show_error(err)
    else:
        st.rerun()


def results(group_id: str) -> None:
    """Status, table, recommendation, trade-off and curves of the group (refreshed while it trains)."""
    try:
        group = sweep.load_group(state.runs_root(), group_id)
    except TuneboardError as err:
        show_error(err)
        return
    rows = comparison.group_rows(jobs, group)
    result = comparison.compare(rows, group.task)
    done = sum(1 for r in rows if r.status in ("completed", "failed", "stopped", "cancelled", "interrupted"))
    st.caption(text.SWEEP_STATUS.format(status=sweep.group_status(r.status for r in rows), done=done, runs=len(rows)))

    shown = {r.label: r.name for r in rows}  # the strategies' display names, not their ids
    st.subheader(text.SWEEP_RECOMMENDATION)
    sentence = comparison.recommendation_text(result.recommendation, shown)
    (st.success if result.recommendation else st.info)(sentence, icon=":material/recommend:")

    st.subheader(text.SWEEP_TABLE)
    frame = table_frame(result, shown)
    st.dataframe(frame, hide_index=True, width="stretch", key="tb_sweep_table",
                 column_config=fitted_columns(frame, config=table_columns()))

    metric_title = text.SWEEP_METRIC_NAMES.get(result.metric, result.metric)
    st.subheader(text.SWEEP_TRADEOFF)
    front = set(result.front)
    points = [{"label": r.name, "wall_s": r.wall_s, "metric": r.metric, "front": r.run_id in front,
               "color": legend.strategy_color(r.strategy, i)}
              for i, r in enumerate(rows) if r.wall_s is not None and r.metric is not None]
    if points:  # before any run has finished there is nothing to place: a note, not an empty chart
        st.caption(text.SWEEP_TRADEOFF_CAPTION)
        st.plotly_chart(charts.tradeoff_figure(points, metric_title, higher_is_better=result.higher_is_better),
                        key="tb_sweep_tradeoff")
    else:
        st.info(text.SWEEP_TRADEOFF_WAITING, icon=":material/hourglass_empty:")

    st.subheader(text.SWEEP_CURVES)
    drawn = [r for r in rows if r.status != "missing"]
    curves = {r.label: jobs.snapshot(r.run_id).metrics for r in drawn}
    style = {"names": {r.label: r.name for r in drawn}, "hovers": {r.label: f"{r.name} · {r.run_id}" for r in drawn},
             "colors": {r.label: legend.strategy_color(r.strategy, i) for i, r in enumerate(drawn)}}
    eval_metric = "eval_" + result.metric
    if not charts.has_series(curves, "loss") and not charts.has_series(curves, eval_metric):
        st.info(text.SWEEP_CURVES_WAITING, icon=":material/hourglass_empty:")
        return
    cols = st.columns(2)
    for col, metric, key in ((cols[0], "loss", "tb_sweep_loss"), (cols[1], eval_metric, "tb_sweep_eval")):
        with col:
            if charts.has_series(curves, metric):
                st.plotly_chart(charts.overlay_figure(curves, metric, **style), key=key)
            else:
                st.caption(text.OVERLAY_EMPTY.format(metric=text.METRIC_NAMES.get(metric, metric)))


def table_columns() -> dict:
    """Short headers (the long ones in their tooltips) and no run id column, so that the table fits a 1400 px
    window: the CLI's headers ('Wall time (s)', 'Trainable params', ...) made it two screens wide. The run id
    is a click away in the table's eye button, and in the curves' hover."""
    names, short = text.SWEEP_COLUMNS, text.SWEEP_SHORT_COLUMNS
    config = {names[key]: st.column_config.Column(label, help=text.SWEEP_COLUMN_HELP.get(key))
              for key, label in short.items()}
    config[names["share"]] = None  # shown in the trainable column, "76.8k (0.3%)"
    config[names["run_id"]] = None
    return config


def table_frame(result: comparison.Comparison, shown: dict[str, str] | None = None) -> pd.DataFrame:
    """The comparison table with readable units (time, counts, bytes, shares) and display names."""
    names = text.SWEEP_COLUMNS
    frame = pd.DataFrame(comparison.comparison_table(result))
    if frame.empty:
        return frame
    if shown:
        frame[names["label"]] = [shown.get(label, label) for label in frame[names["label"]]]
    frame[names["wall_s"]] = [format_duration(v) if pd.notna(v) else "" for v in frame[names["wall_s"]]]
    frame[names["trainable"]] = [
        (f"{format_count(count)} ({share:.1%})" if pd.notna(share) else format_count(count)) if pd.notna(count) else ""
        for count, share in zip(frame[names["trainable"]], frame[names["share"]], strict=True)
    ]
    frame[names["share"]] = [f"{v:.1%}" if pd.notna(v) else "" for v in frame[names["share"]]]
    for key in ("peak_memory", "disk"):
        frame[names[key]] = [format_bytes(v) if pd.notna(v) else "" for v in frame[names[key]]]
    frame[names["front"]] = ["★" if v else "" for v in frame[names["front"]]]
    return frame


# ---- the page ------------------------------------------------------------------------------

router.require_router()
st.title(text.SWEEP_TITLE)
st.caption(text.SWEEP_CAPTION)
jobs = state.get_jobs()
groups = sweep.list_groups(state.runs_root())
if not groups:
    st.info(text.SWEEP_NO_GROUPS, icon=":material/info:")
    st.stop()
chosen = pick_group(groups)
if chosen is not None:
    member_state = sweep.member_states(jobs, chosen)
    # The buttons follow the group: when a member is queued, starts or ends (here or in another tab), the
    # sidebar's fragment reruns the page (ui.state.watch_history), so Stop and Delete never go stale.
    state.watch_history(jobs.list_runs())
    controls(chosen, member_state)
    active = any(s in ("queued", "running") for s in member_state)
    st.fragment(results, run_every=REFRESH_S if active else None)(chosen.group_id)
