"""Setup's panels for choosing with evidence: "Compare strategies" (a shoot-out group, core.plan.sweep),
"Suggest a learning rate" (a range test, core.training.lr_finder), and the learning-rate field itself (a number,
empty for the measured default, or 'auto'). Widgets only; no torch at import time.
"""

from __future__ import annotations

import streamlit as st

from core.config import LEARNING_RATE_AUTO, RunConfig, default_learning_rate, field_help, strategies_for
from core.errors import TuneboardError
from core.plan import sweep
from core.present import charts, text
from ui import state
from ui.widgets import Form, show_error, touch

MODE_KEY = "tb_sweep_mode"
STRATEGIES_KEY = "tb_sweep_strategies"
RATES_KEY = "tb_sweep_rates"
FINDER_KEY = "tb_lr_finder_result"


def learning_rate_field(form: Form, rate: float | str | None, task: str, strategy: str,
                        model_source: str) -> float | str | None:
    """The learning rate: a number; empty (None) for the default of this task, strategy and model, shown as
    the placeholder so it follows them; or 'auto' (a range test when the run starts) with the checkbox."""
    path = "training.learning_rate"
    number_key, auto_key = form.key(path), form.key(path, "auto")
    auto = bool(st.session_state.get(auto_key, rate == LEARNING_RATE_AUTO))
    value = st.number_input(
        text.LEARNING_RATE, value=float(rate) if isinstance(rate, (int, float)) else None, step=1e-5, format="%.1e",
        placeholder=_default_placeholder(task, strategy, model_source), disabled=auto,
        help=field_help(path) + text.LR_FIELD_HELP_DEFAULT, key=number_key, on_change=touch, args=(number_key,),
    )
    form.slot(path, owner=number_key)
    auto = st.checkbox(text.LR_AUTO_LABEL, value=rate == LEARNING_RATE_AUTO, help=text.LR_AUTO_HELP, key=auto_key,
                       on_change=touch, args=(auto_key,))
    if auto:
        return LEARNING_RATE_AUTO
    return value


def _default_placeholder(task: str, strategy: str, model_source: str) -> str:
    """The default rate as a placeholder ('1e-04'; '≤ 1e-04' for a model we do not ship, whose size lowers it)."""
    from core.models.catalogue import bundled_model

    bundled = bundled_model(model_source)
    try:
        rate = default_learning_rate(task, strategy, _count(bundled.params) if bundled else None)
    except TuneboardError:
        return ""  # an unknown task or strategy: its own error shows under its widget
    return (text.LR_DEFAULT_PLACEHOLDER if bundled else text.LR_DEFAULT_PLACEHOLDER_SCALED).format(rate=rate)


def _count(size: str) -> int | None:
    """'22.7M' -> 22_700_000 (the catalogue's sizes)."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}.get(size.strip()[-1:].upper())
    try:
        return int(float(size.strip()[:-1]) * scale) if scale else int(float(size))
    except ValueError:
        return None


def compare_strategies_panel(cfg: RunConfig, ready: bool) -> None:
    """A switch; when on, the strategies and learning rates to try and a button that queues the group."""
    if not st.toggle(text.SWEEP_MODE, help=text.SWEEP_MODE_HELP, key=MODE_KEY):
        return
    if STRATEGIES_KEY not in st.session_state:
        st.session_state[STRATEGIES_KEY] = list(dict.fromkeys([cfg.strategy.name, "lora", "feature-extraction"]))
    offered = strategies_for(cfg.task)  # prompting (no training) beside the others for instruction tuning
    st.session_state[STRATEGIES_KEY] = [s for s in st.session_state[STRATEGIES_KEY] if s in offered]
    chosen = st.multiselect(text.SWEEP_STRATEGIES, offered, help=text.SWEEP_STRATEGIES_HELP, key=STRATEGIES_KEY,
                            format_func=lambda name: text.STRATEGY_NAMES.get(name, name))
    rates = st.text_input(text.SWEEP_LEARNING_RATES, help=text.SWEEP_LEARNING_RATES_HELP, key=RATES_KEY,
                          placeholder=_rate_placeholder(cfg.training.learning_rate))
    plan = None
    if ready:
        try:
            plan = sweep.plan_group(cfg, chosen, sweep.parse_learning_rates(rates))
        except TuneboardError as err:
            st.error(str(err), icon=":material/error:")
        else:
            st.caption(text.SWEEP_RUN_COUNT.format(runs=len(plan.members)))
    if st.button(text.SWEEP_START, type="primary", help=text.SWEEP_START_HELP, disabled=plan is None,
                 width="stretch", key="tb_sweep_start"):
        try:
            group_id = sweep.submit_group(state.get_jobs(), cfg, chosen, sweep.parse_learning_rates(rates))
        except TuneboardError as err:
            show_error(err)
        else:
            st.toast(text.SWEEP_QUEUED.format(group_id=group_id, runs=len(plan.members)))
            st.switch_page("pages/compare_strategies.py", query_params={"group": group_id})


def learning_rate_panel(cfg: RunConfig, ready: bool) -> None:
    """"Suggest a learning rate": a range test on this config, its curve with the pick, and a button to use it."""
    if st.button(text.LR_FINDER_BUTTON, help=text.LR_FINDER_HELP, disabled=not ready, key="tb_lr_finder",
                 icon=":material/insights:", width="stretch"):
        state.wait_for_warm_up()
        from core.training import lr_finder  # lazy: the range test imports torch only when it runs

        with st.spinner(text.LR_FINDER_RUNNING):
            try:
                result = lr_finder.find_learning_rate(cfg)
            except TuneboardError as err:
                show_error(err)
                return
            except Exception as err:  # the page boundary: a sentence with a next step, never a traceback
                from core.errors import describe_failure

                st.error(describe_failure(err), icon=":material/error:")
                return
        st.session_state[FINDER_KEY] = (_finder_key(cfg), result)
    stored = st.session_state.get(FINDER_KEY)
    if not stored or stored[0] != _finder_key(cfg):
        return  # no test yet, or one made for another model, data, strategy or batch
    result = stored[1]
    st.plotly_chart(charts.lr_finder_figure(result.learning_rates, result.losses, result.smoothed, result.pick),
                    key="tb_lr_finder_chart")
    if result.pick is None:
        st.warning(text.LR_FINDER_NO_PICK, icon=":material/warning:")
        return
    st.caption(text.LR_FINDER_RESULT.format(rate=result.pick, minimum=result.minimum_lr, steps=result.steps,
                                            seconds=result.seconds))
    rounded = float(f"{result.pick:.1e}")
    if st.button(text.LR_FINDER_USE.format(rate=rounded), key="tb_lr_finder_use", disabled=cfg.training.learning_rate == rounded):
        cfg.training.learning_rate = rounded
        state.load_config(cfg)  # rebuilds the widgets, so the learning-rate field shows the pick
        st.toast(text.LR_FINDER_USED.format(rate=rounded))
        st.rerun()


def _rate_placeholder(rate: float | str | None) -> str:
    """What an empty rates field means: the rate above, each strategy's default, or a range test per run."""
    if rate is None:
        return text.SWEEP_RATE_WORDS["default"]
    return text.SWEEP_RATE_WORDS["auto"] if isinstance(rate, str) else f"{rate:.0e}"


def _finder_key(cfg: RunConfig) -> str:
    """What a range test depends on: everything but the learning rate and the run's name."""
    probe = RunConfig.from_dict(cfg.to_dict())
    probe.training.learning_rate, probe.name = 0.1, ""
    return probe.to_yaml()
