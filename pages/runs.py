"""Runs: the history of every run folder, overlaid curves, and what to do with one run.

Reads `jobs.list_runs()` (RunSummary rows, cached by file stats in core.run.history) and snapshots for
the curves. Exports: config.yaml, the model or LoRA adapter as a zip (optionally merged) and, for causal and sft
runs, a GGUF with its Ollama Modelfile (both through core.models.export.export_run, as `python -m core export`),
and the commands that rerun the config headless or on several GPUs.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.errors import TuneboardError
from core.present import charts, legend, text
from core.run.folder import RunFolder
from ui import router, state
from ui.files import zip_folder
from ui.tables import fitted_table
from ui.widgets import (
    format_bytes,
    format_duration,
    report_button,
    run_label,
    run_picker,
    show_error,
    status_badge,
)

EXPORT_KEY = "tb_runs_export"
GGUF_KEY = "tb_runs_gguf"
DELETE_KEY = "tb_runs_delete_pending"
# The scores a run is judged by first (a classifier's accuracy and F1 before its eval loss); the table shows
# two, so that the result fits beside the run's id and name.
METRIC_ORDER = ("eval_accuracy", "eval_f1", "eval_exact_match", "eval_loss", "eval_perplexity", "train_loss", "loss")
METRICS_SHOWN = 2
SHORT_NAMES = {
    "eval_loss": "eval loss", "eval_perplexity": "ppl", "eval_accuracy": "acc", "eval_f1": "F1",
    "eval_exact_match": "exact match", "train_loss": "train loss", "loss": "loss",
}
OVERLAY_METRICS = ("loss", "eval_loss", "eval_perplexity", "eval_accuracy", "eval_f1", "learning_rate")


# ---- formatting ----------------------------------------------------------------------------

def format_metrics(metrics: dict[str, Any]) -> str:
    """'eval loss 2.31 · ppl 10.1' (or 'acc 0.91 · F1 0.9') from a final_metrics dict."""
    parts = []
    for key in METRIC_ORDER:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{SHORT_NAMES[key]} {value:.3g}")
    return " · ".join(parts[:METRICS_SHOWN]) or text.NOT_AVAILABLE


def format_created(created_at: str | None) -> str:
    """ISO time -> local 'YYYY-MM-DD HH:MM'."""
    if not created_at:
        return text.NOT_AVAILABLE
    try:
        return datetime.fromisoformat(created_at).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return created_at


def config_path_for_display(run_id: str) -> str:
    """The run's config.yaml, relative to the working folder when it is below it."""
    path = state.run_path(run_id) / "config.yaml"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ---- sections ------------------------------------------------------------------------------

def headline(run) -> str:
    """The run's result: its kept (best) evaluation with the step it came from, else its last one."""
    shown = format_metrics(dict(run.final_metrics or {}))
    if run.best and run.best.get("step") is not None and shown != text.NOT_AVAILABLE:
        return text.HEADLINE_BEST.format(metrics=shown, step=run.best["step"])
    return shown


def history_table(runs: list) -> None:
    """One row per run folder: what identifies it and how it went, each column as wide as its longest value.

    Ten columns do not fit a 1400 px window, so how each run was made (task, strategy, model, when, disk) starts
    hidden: the table's eye button shows those columns, and the selected run's line below says them.
    """
    rows = [
        {
            text.COL_RUN: r.run_id,
            text.COL_STATUS: r.status,
            text.COL_METRICS: headline(r),
            text.COL_DURATION: format_duration(r.duration_s),
            text.COL_NAME: r.name or text.NOT_AVAILABLE,
            text.COL_TASK: r.task,
            text.COL_STRATEGY: r.strategy,
            text.COL_MODEL: r.model,
            text.COL_CREATED: format_created(r.created_at),
            text.COL_DISK: format_bytes(r.disk_bytes),
        }
        for r in runs
    ]
    frame = pd.DataFrame(rows)
    hidden = dict.fromkeys((text.COL_TASK, text.COL_STRATEGY, text.COL_MODEL, text.COL_CREATED, text.COL_DISK))
    # A long name ends in '…' at its column's edge; the picker below shows it whole. (A run's name is a label: the
    # tables of examples on Evaluate and Data keep their texts whole, for the table's search and download.)
    frame, columns = fitted_table(frame, flexible=[text.COL_NAME], shown_rows=len(frame), config={
        # The run id is what every command and folder uses: pinned, and never cut off.
        text.COL_RUN: st.column_config.TextColumn(text.COL_RUN, pinned=True),
        **hidden,
    })
    st.dataframe(frame, hide_index=True, width="stretch", column_config=columns, key="tb_runs_history")
    st.caption(text.RUNS_HIDDEN_COLUMNS)


def run_details(summary) -> str:
    """'classification · Full fine-tune · bundled · created 2026-12-07 17:42 · 87.4 MB': the hidden columns' facts."""
    return text.RUN_DETAILS.format(task=text.TASK_NAMES.get(summary.task, summary.task).split(" (")[0],
                                   strategy=legend.strategy_name(summary.strategy), model=summary.model,
                                   created=format_created(summary.created_at), disk=format_bytes(summary.disk_bytes))


def overlay_section(jobs, runs: list) -> None:
    """Several runs' curves of one metric on one chart."""
    st.subheader(text.OVERLAY)
    labels = {r.run_id: run_label(r) for r in runs}
    # The chips carry the legend's short names (strategy and the id's random end), which fit several to a row;
    # names of ~100 characters pushed all but the first chip out of sight.
    short = {r.run_id: legend.run_legend_name(r.run_id, r.strategy) for r in runs}
    chosen = st.multiselect(
        text.OVERLAY_RUNS, list(labels), default=list(labels)[:3], format_func=short.get, key="tb_runs_overlay"
    )
    cols = st.columns([2, 1, 2], vertical_alignment="bottom")
    metric = cols[0].selectbox(
        text.OVERLAY_METRIC, OVERLAY_METRICS, format_func=lambda m: text.METRIC_NAMES.get(m, m), key="tb_runs_metric"
    )
    log_y = cols[1].toggle(text.LOG_SCALE, key="tb_runs_log")
    curves = {}
    for run_id in chosen:
        try:
            curves[run_id] = jobs.snapshot(run_id).metrics
        except TuneboardError:
            continue
    # Short legend names (strategy and the id's random end), the full name in the hover, and the
    # strategy's own colour, as on Compare strategies.
    by_id = {r.run_id: r for r in runs}
    style = {"names": {i: legend.run_legend_name(i, by_id[i].strategy) for i in curves},
             "hovers": {i: labels[i] for i in curves},
             "colors": {i: legend.strategy_color(by_id[i].strategy, n) for n, i in enumerate(curves)}}
    if charts.has_series(curves, metric):
        st.plotly_chart(charts.overlay_figure(curves, metric, log_y=log_y, smoothing=0.6 if metric == "loss" else 0.0,
                                              **style), key="tb_runs_overlay_chart")
    elif chosen:
        st.caption(text.OVERLAY_EMPTY.format(metric=text.METRIC_NAMES.get(metric, metric)))


def run_actions(jobs, summary) -> None:
    """Open the run elsewhere, resume it, cancel it while it is queued, or delete it (with confirmation)."""
    run_id = summary.run_id
    cols = st.columns(5)
    if cols[0].button(text.OPEN_SETUP, icon=":material/tune:", help=text.OPEN_SETUP_HELP, key="tb_runs_setup",
                      width="stretch"):
        try:
            state.load_config(jobs.config(run_id))
        except TuneboardError as err:
            show_error(err)
        else:
            st.switch_page("pages/setup.py")
    if cols[1].button(text.OPEN_TRAIN, icon=":material/model_training:", key="tb_runs_train", width="stretch"):
        state.select_run(run_id)
        st.switch_page("pages/train.py", query_params={"run": run_id})
    if cols[2].button(text.OPEN_COMPARE, icon=":material/compare_arrows:", key="tb_runs_compare", width="stretch"):
        state.select_run(run_id)
        st.switch_page("pages/compare.py", query_params={"run": run_id})
    if cols[3].button(text.RESUME_RUN, icon=":material/resume:", disabled=not summary.resumable,
                      key="tb_runs_resume", width="stretch"):
        try:
            jobs.resume(run_id)
        except TuneboardError as err:
            show_error(err)
        else:
            state.select_run(run_id)
            st.switch_page("pages/train.py", query_params={"run": run_id})
    if summary.status == "queued":  # a queued run cannot be deleted, but it can leave the queue
        if cols[4].button(text.CANCEL_RUN, icon=":material/cancel:", help=text.CANCEL_RUN_HELP,
                          key="tb_runs_cancel", width="stretch"):
            try:
                jobs.cancel(run_id)
            except TuneboardError as err:
                show_error(err)
            else:
                st.toast(text.CANCELLED_RUN.format(run_id=run_id))
                st.rerun()
    elif cols[4].button(text.DELETE, icon=":material/delete:", disabled=summary.status == "running",
                        key="tb_runs_delete", width="stretch"):
        st.session_state[DELETE_KEY] = run_id
    fine_tune_further(jobs, summary)
    if st.session_state.get(DELETE_KEY) == run_id:
        delete_confirmation(jobs, summary)


def fine_tune_further(jobs, summary) -> None:
    """Open Setup with this run's config and its fine-tuned model as the base model ('run:<id>')."""
    run_id = summary.run_id
    final = state.run_path(run_id) / "final"
    ready = summary.status == "completed" and any((final / name).is_file() for name in ("config.json", "adapter_config.json"))
    if st.button(text.FINE_TUNE_FURTHER, icon=":material/fork_right:", disabled=not ready, key="tb_runs_further",
                 help=text.FINE_TUNE_FURTHER_HELP if ready else text.FINE_TUNE_FURTHER_DISABLED):
        try:
            cfg = jobs.config(run_id)
        except TuneboardError as err:
            show_error(err)
            return
        cfg.model.source = f"run:{run_id}"
        cfg.name = text.FINE_TUNE_FURTHER_NAME.format(name=cfg.name or run_id)
        state.load_config(cfg)
        st.switch_page("pages/setup.py")


def delete_confirmation(jobs, summary) -> None:
    """Ask before deleting a run folder."""
    run_id = summary.run_id
    st.warning(text.DELETE_CONFIRM.format(run_id=run_id, size=format_bytes(summary.disk_bytes)),
               icon=":material/warning:")
    cols = st.columns([1, 1, 4])
    if cols[0].button(text.DELETE_YES, type="primary", key="tb_runs_delete_yes"):
        st.session_state.pop(DELETE_KEY, None)
        try:
            jobs.delete(run_id)
        except TuneboardError as err:
            show_error(err)
        else:
            state.select_run(None)
            st.toast(text.DELETED.format(run_id=run_id))
            st.rerun()
    if cols[1].button(text.DELETE_NO, key="tb_runs_delete_no"):
        st.session_state.pop(DELETE_KEY, None)
        st.rerun()


def downloads(jobs, summary) -> None:
    """config.yaml, the report, and the model as a zip: a transformers folder (a LoRA merged on request, else its
    adapter) or, for causal and sft runs, a GGUF with its Ollama Modelfile. Both come from core.models.export.export_run,
    as `python -m core export` writes them, prepared on a click (loading and writing the model takes seconds)."""
    st.markdown(f"**{text.DOWNLOADS}**")
    run_id = summary.run_id
    folder = RunFolder(state.run_path(run_id))
    try:
        cfg = jobs.config(run_id)
    except TuneboardError as err:
        show_error(err)
        return
    st.download_button(text.DOWNLOAD_CONFIG, folder.config_path.read_text(encoding="utf-8"),
                       file_name=f"{run_id}-config.yaml", mime="application/x-yaml", on_click="ignore",
                       icon=":material/download:", key="tb_runs_dl_config")
    report_button(folder.path, run_id, key="tb_runs_dl_report")
    from core.models.export import GGUF_TASKS, tuned_model_path

    source = tuned_model_path(folder)
    if source is None:
        st.caption(text.NO_MODEL_YET)
        return
    is_lora = (source / "adapter_config.json").exists()  # a LoRA run saves its adapter alone
    merge = not is_lora or st.toggle(text.MERGE_LORA, value=cfg.strategy.merge_on_export, key="tb_runs_merge")
    prepared = st.session_state.get(EXPORT_KEY)
    if prepared and prepared[:2] == (run_id, merge) and Path(prepared[2]).is_dir():
        export_dir = Path(prepared[2])
        label = text.DOWNLOAD_MERGED if merge and is_lora else (text.DOWNLOAD_ADAPTER if is_lora else text.DOWNLOAD_MODEL)
        suffix = "merged" if merge and is_lora else ("adapter" if is_lora else "model")
        st.download_button(label, data=lambda: zip_folder(export_dir), file_name=f"{run_id}-{suffix}.zip",
                           mime="application/zip", on_click="ignore", icon=":material/download:",
                           key="tb_runs_dl_export")
    elif st.button(text.PREPARE_EXPORT, icon=":material/package_2:", key="tb_runs_prepare"):
        prepare(EXPORT_KEY, (run_id, merge), folder.path, merge=merge)
    if cfg.task not in GGUF_TASKS:
        return
    prepared = st.session_state.get(GGUF_KEY)
    if prepared and prepared[0] == run_id and Path(prepared[1]).is_dir():
        gguf_dir = Path(prepared[1])
        st.download_button(text.DOWNLOAD_GGUF, data=lambda: zip_folder(gguf_dir), file_name=f"{run_id}-gguf.zip",
                           mime="application/zip", on_click="ignore", icon=":material/download:",
                           key="tb_runs_dl_gguf")
    elif st.button(text.PREPARE_GGUF, icon=":material/deployed_code:", help=text.PREPARE_GGUF_HELP,
                   key="tb_runs_prepare_gguf"):
        prepare(GGUF_KEY, (run_id,), folder.path, fmt="gguf")


def prepare(key: str, request: tuple, run_path: Path, **options: Any) -> None:
    """Export the run (core.models.export.export_run, imported here: it loads torch), remember the folder, redraw."""
    from core.models.export import export_run

    try:
        with st.spinner():
            export_dir = export_run(run_path, **options)
    except TuneboardError as err:
        show_error(err)
    else:
        st.session_state[key] = (*request, str(export_dir))
        st.rerun()


def commands(run_id: str) -> None:
    """The commands that rerun this config without the dashboard."""
    st.markdown(f"**{text.COMMANDS}**")
    config = config_path_for_display(run_id)
    st.caption(text.COMMAND_CPU)
    st.code(f"python -m core train --config {config}", language="bash", wrap_lines=True)
    st.caption(text.COMMAND_MULTI)
    st.code(f"accelerate launch -m core train --config {config}", language="bash", wrap_lines=True)


# ---- the page ------------------------------------------------------------------------------

router.require_router()
st.title(text.RUNS_TITLE)
st.caption(text.RUNS_CAPTION.format(root=os.path.relpath(state.runs_root()) if state.runs_root().is_relative_to(
    Path.cwd()) else state.runs_root()))

jobs = state.get_jobs()
runs = jobs.list_runs()
state.watch_history(runs)  # a run that starts, ends or is handed back elsewhere redraws the table
if not runs:
    st.info(text.NO_RUNS, icon=":material/info:")
    st.stop()

history_table(runs)
with st.container(border=True):
    overlay_section(jobs, runs)

with st.container(border=True):
    st.subheader(text.SELECTED)
    run_id = run_picker(jobs)
    summary = next((r for r in runs if r.run_id == run_id), None)
    if summary is not None:
        status_badge(summary.status)
        st.caption(run_details(summary))
        if summary.error and summary.status in ("failed", "interrupted"):
            (st.error if summary.status == "failed" else st.warning)(summary.error)
        run_actions(jobs, summary)
        left, right = st.columns(2, gap="large")
        with left:
            downloads(jobs, summary)
        with right:
            commands(run_id)
