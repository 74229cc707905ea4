"""Compare: the base model's predictions next to the fine-tuned model's, for every probe.

Probe scores come from the run's snapshot (probes.jsonl): phase 'base' before training, 'eval' at
each evaluation and 'final' at the end. A step slider walks through the evaluations. Free-text
probes call core.probes.probe_text, which loads (and caches) both models in core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from core.config import has_mask
from core.errors import TuneboardError
from core.runs import RunFolder
from core.sink import RunSnapshot
from ui import charts, state, text
from ui.widgets import picked_run, show_error, summarise_weight_names

FREE_PROBE_KEY = "tb_compare_free"


# ---- reading the snapshot ------------------------------------------------------------------

def group_probes(probes: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list], dict[int, dict[str, list]], set[int]]:
    """(base predictions by text, tuned predictions by step then text, steps that are final)."""
    base: dict[str, list] = {}
    tuned: dict[int, dict[str, list]] = {}
    final_steps: set[int] = set()
    for record in probes:
        phase, probe = record.get("phase"), str(record.get("text", ""))
        predictions = list(record.get("predictions") or [])
        if phase == "base":
            base[probe] = predictions
        elif phase in ("eval", "final"):
            step = int(record.get("step", 0) or 0)
            if phase == "final":
                final_steps.add(step)
            by_text = tuned.setdefault(step, {})
            if phase == "final" or probe not in by_text:  # the final scoring wins over an eval at that step
                by_text[probe] = predictions
    return base, tuned, final_steps


def load_report(snap: RunSnapshot, run_id: str) -> Mapping[str, Any]:
    """The model loader's report: in status.json ('load_report') or load_report.json."""
    report = snap.info.get("load_report")
    if isinstance(report, Mapping):
        return report
    try:
        return RunFolder(state.run_path(run_id)).load_report()
    except TuneboardError:
        return {}


def has_tuned_model(run_id: str) -> bool:
    """Whether the run saved a model (final/ or a complete checkpoint) to probe."""
    from core.export import tuned_model_path

    try:
        return tuned_model_path(RunFolder(state.run_path(run_id))) is not None
    except TuneboardError:
        return False


# ---- panels --------------------------------------------------------------------------------

def load_report_panel(report: Mapping[str, Any]) -> None:
    """A prominent warning when the base model's head was freshly initialised."""
    if report.get("head_is_untrained"):
        names = [str(n) for n in report.get("newly_initialized") or []]
        shown = summarise_weight_names(names) or text.NOT_AVAILABLE
        st.warning(
            f"**{text.LOAD_REPORT_TITLE}**\n\n{text.LOAD_REPORT_UNTRAINED.format(names=shown)}",
            icon=":material/warning:",
        )
    warnings = [str(w) for w in report.get("warnings") or []]
    new_weights = [str(n) for n in report.get("newly_initialized") or []]
    if warnings or new_weights:
        with st.expander(text.LOAD_REPORT_WARNINGS):
            for warning in warnings:
                st.markdown(f"- {warning}")
            if new_weights:
                st.caption(text.LOAD_REPORT_ALL_NEW)
                st.code("\n".join(new_weights), language=None)


def step_choice(steps: list[int], final_steps: set[int]) -> int:
    """A slider over the evaluated steps (the latest by default)."""
    if len(steps) == 1:
        return steps[0]
    return st.select_slider(
        text.STEP_SLIDER, options=steps, value=steps[-1], help=text.STEP_SLIDER_HELP,
        format_func=lambda s: f"{s} ✓" if s in final_steps else str(s), key="tb_compare_step",
    )


def probe_panel(probe: str, base: list, tuned: list | None, task: str, top_k: int, tuned_title: str, key: str) -> None:
    """One probe: base top-k and tuned top-k side by side (or label probabilities before/after)."""
    with st.container(border=True):
        st.markdown(f"**{probe}**")
        if task == "classification":
            st.plotly_chart(charts.label_figure(base, tuned or []), key=f"{key}_labels")
            return
        new, dropped = charts.token_changes(base, tuned or []) if tuned is not None else ([], [])
        x_max = charts.shared_x_max([p.get("score") for p in base], [p.get("score") for p in tuned or []])
        left, right = st.columns(2)
        with left:
            st.caption(text.COLUMN_BASE)
            if base:
                st.plotly_chart(charts.topk_figure(base, highlight=dropped, highlight_color=charts.DROPPED_COLOR,
                                                   color=charts.NEUTRAL, x_max=x_max), key=f"{key}_base")
            else:
                st.caption(text.NOT_AVAILABLE)
        with right:
            st.caption(tuned_title)
            if tuned:
                st.plotly_chart(charts.topk_figure(tuned, highlight=new, x_max=x_max),
                                key=f"{key}_tuned")
            else:
                st.caption(text.NO_TUNED_PROBES)
        if tuned:
            if new:
                st.markdown(f":green[{text.NEW_TOKENS.format(k=top_k, tokens=', '.join(new))}]")
            if dropped:
                st.markdown(f":red[{text.DROPPED_TOKENS.format(k=top_k, tokens=', '.join(dropped))}]")
            if not new and not dropped:
                st.caption(text.NO_CHANGE.format(k=top_k))


def free_probe_panel(run_id: str, task: str, top_k: int, has_model: bool) -> None:
    """Probe any sentence against the base and the fine-tuned model of this run."""
    st.subheader(text.FREE_PROBE)
    placeholder = text.FREE_PROBE_PLACEHOLDER_MLM if task == "mlm" else text.FREE_PROBE_PLACEHOLDER
    cols = st.columns([5, 1], vertical_alignment="bottom")
    sentence = cols[0].text_input(text.FREE_PROBE, placeholder=placeholder, label_visibility="collapsed",
                                  key="tb_compare_free_text").strip()
    clicked = cols[1].button(text.FREE_PROBE_BUTTON, type="primary", disabled=not has_model,
                             key="tb_compare_free_go", width="stretch")
    if not has_model:
        st.caption(text.FREE_PROBE_NO_MODEL)
    if clicked:
        if not sentence:
            st.error(text.FREE_PROBE_EMPTY, icon=":material/error:")
        elif task == "mlm" and not has_mask(sentence):
            st.error(text.FREE_PROBE_NEEDS_MASK, icon=":material/error:")
        else:
            from core.probes import probe_text

            try:
                with st.spinner(text.FREE_PROBE_RUNNING):
                    result = probe_text(state.run_path(run_id), sentence, top_k)
            except TuneboardError as err:
                show_error(err)
            else:
                st.session_state[FREE_PROBE_KEY] = (run_id, sentence, result)
    saved = st.session_state.get(FREE_PROBE_KEY)
    if saved and saved[0] == run_id:
        _, sentence, result = saved
        probe_panel(sentence, list(result.get("base") or []), list(result.get("tuned") or []), task, top_k,
                    text.COLUMN_TUNED_LATEST, key="tb_cmp_free")


# ---- the page ------------------------------------------------------------------------------

state.require_router()
st.title(text.COMPARE_TITLE)
st.caption(text.COMPARE_CAPTION)

jobs = state.get_jobs()
run_id, snap, cfg = picked_run(jobs)
state.watch(jobs, snap, probes=True)  # new probe scores (each evaluation) and the run's end redraw the page

load_report_panel(load_report(snap, run_id))
if snap.is_active:
    st.caption(text.STILL_TRAINING)

base, tuned, final_steps = group_probes(snap.probes)
if not base and not tuned:
    st.info(text.NO_PROBES, icon=":material/info:")
else:
    steps = sorted(tuned)
    step = step_choice(steps, final_steps) if steps else None
    if step is None:  # each panel says why its fine-tuned column is empty
        title = text.COLUMN_TUNED_PENDING
    else:
        title = (text.COLUMN_TUNED_FINAL if step in final_steps else text.COLUMN_TUNED).format(step=step)
    texts = list(dict.fromkeys([*base, *(tuned.get(step, {}) if step is not None else {})]))
    for i, probe in enumerate(texts):
        probe_panel(probe, base.get(probe, []), tuned.get(step, {}).get(probe) if step is not None else None,
                    cfg.task, cfg.probes.top_k, title, key=f"tb_cmp_{i}")

st.divider()
has_model = has_tuned_model(run_id)
free_probe_panel(run_id, cfg.task, cfg.probes.top_k, has_model)
