"""Compare: the base model's predictions next to the fine-tuned model's, for every probe.

Probe scores come from the run's snapshot (probes.jsonl): phase 'base' before training, 'eval' at
each evaluation and 'final' at the end. A step slider walks through the evaluations. Free-text
probes call core.insight.probes.probe_text, which loads (and caches) both models in core.

For a run fine-tuned from another run, "before" is that parent run (its probes.jsonl 'base') or,
on request, the original base model, scored here through core.insight.probes.score_before. Causal-LM runs
also get generation side by side: core.insight.generate streams both continuations into two columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

import core.insight.generate as generation
import core.insight.probes as probes_core
from core.config import has_mask
from core.errors import TuneboardError
from core.present import charts, text
from core.run.folder import RunFolder
from core.run.sink import RunSnapshot
from ui import router, state
from ui.widgets import picked_run, report_button, show_error, summarise_weight_names

FREE_PROBE_KEY = "tb_compare_free"
GENERATED_KEY = "tb_compare_generated"
ORIGINAL_SCORES_KEY = "tb_compare_original_scores"
BEFORE_KEY = "tb_compare_before"


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
    from core.models.export import tuned_model_path

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


def probe_panel(probe: str, base: list, tuned: list | None, task: str, top_k: int, tuned_title: str, key: str,
                base_title: str = text.COLUMN_BASE) -> None:
    """One probe: base top-k and tuned top-k side by side (or label probabilities before/after)."""
    with st.container(border=True):
        st.markdown(f"**{probe}**")
        if task == "classification":
            sides = [(base_title, base), (tuned_title, tuned or [])]
            st.markdown("  ·  ".join(
                text.PREDICTED_LINE.format(side=side, label=charts.prediction_name(p[0]), score=p[0].get("score") or 0.0)
                for side, p in sides if p))
            st.plotly_chart(charts.label_figure(base, tuned or []), key=f"{key}_labels")
            return
        if task == "sft":  # instruction tuning: each side's greedy answer, as text
            left, right = st.columns(2)
            for column, title, side in ((left, base_title, base), (right, tuned_title, tuned)):
                with column:
                    st.caption(title)
                    if side:
                        st.text(str(side[0].get("answer", "")) or text.SFT_EMPTY_ANSWER)
                    else:
                        st.caption(text.NOT_AVAILABLE if side is base else text.NO_TUNED_PROBES)
            return
        new, dropped = charts.token_changes(base, tuned or []) if tuned is not None else ([], [])
        x_max = charts.shared_x_max([p.get("score") for p in base], [p.get("score") for p in tuned or []])
        left, right = st.columns(2)
        with left:
            st.caption(base_title)
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


def free_probe_panel(run_id: str, task: str, top_k: int, has_model: bool, before: str = probes_core.BEFORE_PARENT,
                     base_title: str = text.COLUMN_BASE) -> None:
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
            # The 'before' argument only when it is not the default, for callers that replace probe_text.
            extra = {"before": before} if before != probes_core.BEFORE_PARENT else {}
            try:
                with st.spinner(text.FREE_PROBE_RUNNING):
                    result = probes_core.probe_text(state.run_path(run_id), sentence, top_k, **extra)
            except TuneboardError as err:
                show_error(err)
            else:
                st.session_state[FREE_PROBE_KEY] = (run_id, before, sentence, result)
    saved = st.session_state.get(FREE_PROBE_KEY)
    if saved and saved[:2] == (run_id, before):
        _, _, sentence, result = saved
        probe_panel(sentence, list(result.get("base") or []), list(result.get("tuned") or []), task, top_k,
                    text.COLUMN_TUNED_LATEST, key="tb_cmp_free", base_title=base_title)


def parent_of(snap: RunSnapshot) -> Mapping[str, Any] | None:
    """What status.json recorded about the run this one continued from ('run:' source), or None."""
    parent = snap.info.get("parent_run")
    return parent if isinstance(parent, Mapping) and parent.get("id") else None


def before_choice(parent: Mapping[str, Any] | None) -> tuple[str, str]:
    """(which 'before' model, its column title): a radio for a run with a parent, else the base model."""
    if parent is None:
        return probes_core.BEFORE_PARENT, text.COLUMN_BASE
    run, model = str(parent.get("id")), str(parent.get("original_base") or parent.get("model_source") or "")
    labels = {
        probes_core.BEFORE_PARENT: text.BEFORE_PARENT.format(run=run),
        probes_core.BEFORE_ORIGINAL: text.BEFORE_ORIGINAL.format(model=model),
    }
    before = st.radio(text.BEFORE_LABEL, list(labels), format_func=labels.get, horizontal=True,
                      help=text.BEFORE_HELP, key=BEFORE_KEY)
    if before == probes_core.BEFORE_ORIGINAL:
        return before, text.COLUMN_BEFORE_ORIGINAL.format(model=model)
    return probes_core.BEFORE_PARENT, text.COLUMN_BEFORE_PARENT.format(run=run)


def original_base_scores(run_id: str, texts: list[str], top_k: int) -> dict[str, list]:
    """The original base model's predictions for the probe texts (scored once per run and texts)."""
    key = (run_id, tuple(texts), top_k)
    saved = st.session_state.get(ORIGINAL_SCORES_KEY)
    if saved and saved[0] == key:
        return saved[1]
    try:
        with st.spinner(text.BEFORE_SCORING):
            results = probes_core.score_before(state.run_path(run_id), texts, top_k, before=probes_core.BEFORE_ORIGINAL)
    except TuneboardError as err:
        show_error(err)
        return {}
    scores = {str(r["text"]): list(r["predictions"]) for r in results}
    st.session_state[ORIGINAL_SCORES_KEY] = (key, scores)
    return scores


def generation_panel(run_id: str, has_model: bool, before: str, base_title: str) -> None:
    """Causal-LM runs: a prompt, the sampling settings, and both continuations streamed side by side."""
    st.subheader(text.GENERATE_TITLE)
    st.caption(text.GENERATE_CAPTION)
    defaults = generation.GenerationSettings()
    prompt = st.text_area(text.GENERATE_PROMPT, placeholder=text.GENERATE_PROMPT_PLACEHOLDER, height=80,
                          key="tb_compare_gen_prompt")
    cols = st.columns(4)
    max_new = cols[0].number_input(text.GENERATE_MAX_NEW, min_value=1, max_value=generation.MAX_NEW_TOKENS_LIMIT,
                                   value=defaults.max_new_tokens, step=1, help=text.GENERATE_MAX_NEW_HELP,
                                   key="tb_compare_gen_max")
    temperature = cols[1].number_input(text.GENERATE_TEMPERATURE, min_value=0.0, max_value=5.0,
                                       value=defaults.temperature, step=0.1, help=text.GENERATE_TEMPERATURE_HELP,
                                       key="tb_compare_gen_temp")
    top_p = cols[2].number_input(text.GENERATE_TOP_P, min_value=0.05, max_value=1.0, value=defaults.top_p,
                                 step=0.05, help=text.GENERATE_TOP_P_HELP, key="tb_compare_gen_top_p")
    seed = cols[3].number_input(text.GENERATE_SEED, min_value=0, max_value=2**31 - 1, value=defaults.seed, step=1,
                                help=text.GENERATE_SEED_HELP, key="tb_compare_gen_seed")
    guard = st.columns(4)
    penalty = guard[0].number_input(text.GENERATE_REPETITION, min_value=1.0, max_value=generation.MAX_REPETITION_PENALTY,
                                    value=defaults.repetition_penalty, step=0.05, help=text.GENERATE_REPETITION_HELP,
                                    key="tb_compare_gen_penalty")
    ngram = guard[1].number_input(text.GENERATE_NO_REPEAT, min_value=0, max_value=generation.MAX_NO_REPEAT_NGRAM,
                                  value=defaults.no_repeat_ngram_size, step=1, help=text.GENERATE_NO_REPEAT_HELP,
                                  key="tb_compare_gen_ngram")
    parts = ([text.GENERATE_GUARD_PENALTY.format(penalty=penalty)] if penalty > 1.0 else []) + (
        [text.GENERATE_GUARD_NGRAM.format(size=int(ngram))] if ngram else [])
    st.caption(text.GENERATE_GUARD_CAPTION.format(parts=", ".join(parts)) if parts else text.GENERATE_GUARD_OFF)
    clicked = st.button(text.GENERATE_BUTTON, type="primary", icon=":material/auto_awesome:", disabled=not has_model,
                        key="tb_compare_gen_go")
    if not has_model:
        st.caption(text.GENERATE_NO_MODEL)
    left, right = st.columns(2)
    left.caption(base_title)
    right.caption(text.COLUMN_TUNED_LATEST)
    slots = {generation.BASE: left.container(border=True).empty(), generation.TUNED: right.container(border=True).empty()}
    if clicked:
        if not prompt.strip():
            st.error(text.GENERATE_EMPTY, icon=":material/error:")
            return
        settings = generation.GenerationSettings(int(max_new), float(temperature), float(top_p), int(seed),
                                                 float(penalty), int(ngram))
        shown = {generation.BASE: "", generation.TUNED: ""}
        slots[generation.BASE].caption(text.GENERATE_LOADING)
        state.wait_for_warm_up()  # generation imports torch and transformers on this thread
        try:
            for which, continuation in generation.stream_continuations(
                state.run_path(run_id), prompt, settings, before=before
            ):
                shown[which] = continuation
                slots[which].markdown(continuation_markdown(prompt, continuation))
        except TuneboardError as err:
            show_error(err)
            return
        st.session_state[GENERATED_KEY] = (run_id, before, prompt, shown)
        return
    saved = st.session_state.get(GENERATED_KEY)
    if saved and saved[:2] == (run_id, before):
        _, _, saved_prompt, shown = saved
        for which, slot in slots.items():
            slot.markdown(continuation_markdown(saved_prompt, shown.get(which, "")))


def continuation_markdown(prompt: str, continuation: str) -> str:
    """The prompt in bold, then the model's continuation; model text is escaped, never read as Markdown."""
    return f"**{_escape_markdown(prompt.strip())}**{_escape_markdown(continuation)}"


def _escape_markdown(value: str) -> str:
    escaped = "".join(f"\\{c}" if c in _MARKDOWN_SPECIALS else c for c in value)
    return escaped.replace("\n", "  \n")


_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~$:")


# ---- the page ------------------------------------------------------------------------------

router.require_router()
st.title(text.COMPARE_TITLE)
st.caption(text.COMPARE_CAPTION)

jobs = state.get_jobs()
run_id, snap, cfg = picked_run(jobs)
state.watch(jobs, snap, probes=True)  # new probe scores (each evaluation) and the run's end redraw the page

load_report_panel(load_report(snap, run_id))
if snap.is_active:
    st.caption(text.STILL_TRAINING)
before, before_title = before_choice(parent_of(snap))

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
    if before == probes_core.BEFORE_ORIGINAL:
        base = original_base_scores(run_id, texts, cfg.probes.top_k)
    for i, probe in enumerate(texts):
        probe_panel(probe, base.get(probe, []), tuned.get(step, {}).get(probe) if step is not None else None,
                    cfg.task, cfg.probes.top_k, title, key=f"tb_cmp_{i}", base_title=before_title)

st.divider()
has_model = has_tuned_model(run_id)
free_probe_panel(run_id, cfg.task, cfg.probes.top_k, has_model, before, before_title)
if cfg.task == "causal":
    st.divider()
    generation_panel(run_id, has_model, before, before_title)
st.divider()
report_button(state.run_path(run_id), run_id, key="tb_compare_report")
