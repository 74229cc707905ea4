"""Setup's probes panel: the texts a run scores before, during and after training, and how many predictions to keep.

Left alone, the probes follow the task and the data (core.data.probe_texts chooses them, the engine chooses the
same ones at Start); edited, they are the user's own and stay so whatever the data. Widgets only, no torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from core.config import ProbeConfig, RunConfig
from core.data.probe_texts import follows_data, probes_as_text, probes_from_text
from core.present import text
from ui.widgets import Form

# The defaults each probes widget last showed, by widget key: when the data changes under probes left at
# the default, the widget's state is dropped so it shows the new ones (a widget with state ignores its value).
SHOWN_KEY = "tb_setup_probe_defaults"


def probes_section(form: Form, cfg: RunConfig) -> ProbeConfig:
    """Probe texts (the ones chosen from the data unless edited) and, where the task ranks predictions, top-k."""
    hub = cfg.data.source == "hub" and follows_data(cfg)
    defaults = [] if hub else default_probes(cfg)
    shown = probes_as_text(defaults)
    key = form.key("probes.texts", cfg.task)
    last = st.session_state.setdefault(SHOWN_KEY, {})
    if cfg.probes.texts is None and key in st.session_state and last.get(key, shown) != shown:
        del st.session_state[key]  # drawn afresh below, from the new defaults
    last[key] = shown
    cols = st.columns([4, 1])
    with cols[0]:
        current = probes_as_text(cfg.probes.texts) if cfg.probes.texts else shown
        entered = form.text_area("probes.texts", text.PROBE_TEXTS, current, height=150, key_extra=(cfg.task,))
        for line in _hints(cfg, hub):
            st.caption(line)
    with cols[1]:
        if cfg.task in text.PROBE_TOP_K:
            top_k = form.number("probes.top_k", text.PROBE_TOP_K[cfg.task], cfg.probes.top_k,
                                help=text.PROBE_TOP_K_HELP[cfg.task])
        else:  # sft: the model answers each probe by generating; there is nothing to rank
            top_k = cfg.probes.top_k
            st.caption(text.PROBE_ANSWERED)
    entered_probes = probes_from_text(entered)
    return ProbeConfig(texts=None if entered_probes == defaults or not entered_probes else entered_probes, top_k=top_k)


def default_probes(cfg: RunConfig) -> list[str]:
    """The probes a run of this task and data scores when none are typed (cached per data and file version)."""
    data = cfg.data
    path = Path(data.path).expanduser() if data.source == "file" and data.path else None
    mtime = path.stat().st_mtime_ns if path is not None and path.is_file() else 0
    return _default_probes(_dump({"task": cfg.task, "data": dataclasses.asdict(data)}), mtime)


@st.cache_data(show_spinner=False, max_entries=16, ttl=300)
def _default_probes(cfg_yaml: str, mtime_ns: int) -> list[str]:
    """core.data.probe_texts' choice for a task and data (mtime_ns: the file's, so an edited file is read again)."""
    import yaml

    from core.data.probe_texts import run_probe_texts
    from core.errors import TuneboardError

    try:
        cfg = RunConfig.from_dict(yaml.safe_load(cfg_yaml))
    except TuneboardError:
        return []
    return run_probe_texts(cfg)


def _hints(cfg: RunConfig, hub: bool) -> list[str]:
    """The captions under the probes: where the defaults come from, and what a probe of this task must look like."""
    lines = []
    if hub and not cfg.probes.texts:
        lines.append(text.PROBE_TEXTS_FROM_HUB)
    elif follows_data(cfg) and not cfg.probes.texts:
        lines.append(text.PROBE_TEXTS_FROM_DATA[cfg.task])
    lines.append({"mlm": text.PROBE_TEXTS_MLM_HINT, "causal": text.PROBE_TEXTS_CAUSAL_HINT,
                  "sft": text.PROBE_TEXTS_SFT_HINT}.get(cfg.task, ""))
    if cfg.task == "sft":
        lines.append(text.PROBE_TEXTS_SEPARATOR_HINT)
    return [line for line in lines if line]


def _dump(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=True)
