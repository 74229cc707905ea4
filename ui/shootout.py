"""Setup's panels for choosing with evidence: "Compare strategies" (a shoot-out group, core.sweep) and
"Suggest a learning rate" (a range test, core.lr_finder). Widgets only; no torch at import time.
"""

from __future__ import annotations

import streamlit as st

from core import sweep
from core.config import STRATEGIES, RunConfig
from core.errors import TuneboardError
from ui import charts, state, text
from ui.widgets import show_error

MODE_KEY = "tb_sweep_mode"
STRATEGIES_KEY = "tb_sweep_strategies"
RATES_KEY = "tb_sweep_rates"
FINDER_KEY = "tb_lr_finder_result"


def compare_strategies_panel(cfg: RunConfig, ready: bool) -> None:
    """A switch; when on, the strategies and learning rates to try and a button that queues the group."""
    if not st.toggle(text.SWEEP_MODE, help=text.SWEEP_MODE_HELP, key=MODE_KEY):
        return
    if STRATEGIES_KEY not in st.session_state:
        st.session_state[STRATEGIES_KEY] = list(dict.fromkeys([cfg.strategy.name, "lora", "feature-extraction"]))
    chosen = st.multiselect(text.SWEEP_STRATEGIES, STRATEGIES, help=text.SWEEP_STRATEGIES_HELP, key=STRATEGIES_KEY,
                            format_func=lambda name: text.STRATEGY_NAMES.get(name, name))
    rates = st.text_input(text.SWEEP_LEARNING_RATES, help=text.SWEEP_LEARNING_RATES_HELP, key=RATES_KEY,
                          placeholder=f"{cfg.training.learning_rate:.0e}")
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
        from core import lr_finder  # lazy: the range test imports torch only when it runs

        with st.spinner(text.LR_FINDER_RUNNING):
            try:
                result = lr_finder.find_learning_rate(cfg)
            except TuneboardError as err:
                show_error(err)
                return
            except Exception as err:  # the page boundary: a sentence with a next step, never a traceback
                from core.jobs import describe_failure

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


def _finder_key(cfg: RunConfig) -> str:
    """What a range test depends on: everything but the learning rate and the run's name."""
    probe = RunConfig.from_dict(cfg.to_dict())
    probe.training.learning_rate, probe.name = 0.1, ""
    return probe.to_yaml()
