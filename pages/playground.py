"""Chat: a finished causal-LM or instruction-tuning run's base model and fine-tuned model, side by side.

A message goes to both models. Each column keeps its own conversation (in session_state, per run), so each
side sees its own earlier answers. The answers stream in through st.write_stream from
core.insight.chat.stream_reply, first the base model's, then the fine-tuned model's (one generation runs at a
time per process anyway). A run that cannot chat (another task, no saved model yet) gets a note saying what
to do, and no widgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

import core.insight.chat as chat
from core.errors import TuneboardError
from core.present import text
from core.run.sink import RunSnapshot
from ui import router, state
from ui.widgets import picked_run, show_error

# {run id: {"base": [turn, ...], "tuned": [turn, ...]}}, a turn being {"role": "user" | "assistant", "content": str}
HISTORIES_KEY = "tb_chat_histories"
SYSTEM_KEY = "tb_chat_system"
TEMPERATURE_KEY = "tb_chat_temperature"
TOP_P_KEY = "tb_chat_top_p"
MAX_NEW_KEY = "tb_chat_max_new"
CLEAR_KEY = "tb_chat_clear"
INPUT_KEY = "tb_chat_input"

Conversations = dict[str, list[dict[str, str]]]


def conversations_of(run_id: str) -> Conversations:
    """This tab's two conversations with the run (empty at first), kept across reruns and page switches."""
    every = st.session_state.setdefault(HISTORIES_KEY, {})
    return every.setdefault(run_id, {chat.BASE: [], chat.TUNED: []})


def clear_conversations(run_id: str) -> None:
    """Forget this run's conversations on both sides (the Clear button's callback, before the page redraws)."""
    st.session_state.get(HISTORIES_KEY, {}).pop(run_id, None)


def base_title(snap: RunSnapshot) -> str:
    """The base column's title: the run this one continued from (its model is the 'before'), else the base model."""
    parent = snap.info.get("parent_run")
    if isinstance(parent, Mapping) and parent.get("id"):
        return text.COLUMN_BEFORE_PARENT.format(run=parent["id"])
    return text.COLUMN_BASE


def settings_panel(run_id: str, has_history: bool) -> tuple[str, dict[str, Any]]:
    """The system prompt, the sampling knobs and Clear; returns (system prompt, chat_settings keyword arguments)."""
    defaults = chat.CHAT_DEFAULTS
    system = st.text_area(text.CHAT_SYSTEM, placeholder=text.CHAT_SYSTEM_PLACEHOLDER, help=text.CHAT_SYSTEM_HELP,
                          height=68, key=SYSTEM_KEY)
    cols = st.columns([3, 3, 2, 1], vertical_alignment="bottom")
    temperature = cols[0].slider(text.GENERATE_TEMPERATURE, min_value=0.0, max_value=2.0, value=defaults.temperature,
                                 step=0.05, help=text.GENERATE_TEMPERATURE_HELP, key=TEMPERATURE_KEY)
    top_p = cols[1].slider(text.GENERATE_TOP_P, min_value=0.05, max_value=1.0, value=defaults.top_p, step=0.05,
                           help=text.GENERATE_TOP_P_HELP, key=TOP_P_KEY)
    max_new = cols[2].number_input(text.GENERATE_MAX_NEW, min_value=1, max_value=chat.CHAT_MAX_NEW_TOKENS,
                                   value=defaults.max_new_tokens, step=16,
                                   help=text.CHAT_MAX_NEW_HELP.format(limit=chat.CHAT_MAX_NEW_TOKENS), key=MAX_NEW_KEY)
    cols[3].button(text.CHAT_CLEAR, help=text.CHAT_CLEAR_HELP, icon=":material/delete_sweep:", disabled=not has_history,
                   on_click=clear_conversations, args=(run_id,), key=CLEAR_KEY, width="stretch")
    return system, {"temperature": float(temperature), "top_p": float(top_p), "max_new_tokens": int(max_new)}


def show_turns(turns: list[dict[str, str]]) -> None:
    """One side's conversation so far, as chat bubbles. Answers are Markdown: chat models write lists and code."""
    for turn in turns:
        with st.chat_message(turn["role"]):
            if turn["content"]:
                st.markdown(turn["content"])
            else:
                st.caption(text.CHAT_EMPTY_ANSWER)


def answer(run_id: str, message: str, system: str, knobs: dict[str, Any], columns: Mapping[str, Any],
           conversations: Conversations) -> None:
    """Show `message` on both sides, stream each side's answer under it, and keep the exchange once both arrived.

    Nothing is kept when either side fails, so both conversations stay the same length and the message can
    simply be sent again.
    """
    asked = {side: [*turns, {"role": "user", "content": message}] for side, turns in conversations.items()}
    for column in columns.values():
        with column, st.chat_message("user"):
            st.markdown(message)
    run_path = state.run_path(run_id)
    replies: dict[str, str] = {}
    try:
        settings = chat.chat_settings(**knobs)
        state.wait_for_warm_up()  # the models' loading imports torch and transformers on this thread
        with columns[chat.BASE], st.spinner(text.CHAT_LOADING):
            chat.load_chat_models(run_path)
        for side, column in columns.items():
            with column, st.chat_message("assistant"):
                streamed = st.write_stream(chat.stream_reply(run_path, side, asked[side], settings, system=system))
                replies[side] = streamed.strip() if isinstance(streamed, str) else ""
                if not replies[side]:
                    st.caption(text.CHAT_EMPTY_ANSWER)
    except TuneboardError as err:
        show_error(err)
        return
    for side, turns in conversations.items():
        turns[:] = [*asked[side], {"role": "assistant", "content": replies[side]}]


# ---- the page ------------------------------------------------------------------------------

router.require_router()
st.title(text.CHAT_TITLE)
st.caption(text.CHAT_CAPTION)

jobs = state.get_jobs()
run_id, snap, _ = picked_run(jobs)
state.watch(jobs, snap)  # a run that finishes (or is stopped) while this tab is open gets its chat without a reload

try:
    unavailable = chat.chat_unavailable_reason(state.run_path(run_id))
except TuneboardError as err:
    show_error(err)
    st.stop()
if unavailable:
    st.info(unavailable, icon=":material/info:")
    st.stop()
if snap.is_active:
    st.caption(text.CHAT_STILL_TRAINING)

conversations = conversations_of(run_id)
system, knobs = settings_panel(run_id, any(conversations.values()))
message = st.chat_input(text.CHAT_INPUT, max_chars=4000, key=INPUT_KEY)
if not any(conversations.values()) and not message:
    st.caption(text.CHAT_START)
left, right = st.columns(2)
columns = {chat.BASE: left, chat.TUNED: right}
for side, column, title in ((chat.BASE, left, base_title(snap)), (chat.TUNED, right, text.COLUMN_TUNED_LATEST)):
    with column:
        st.markdown(f"**{title}**")
        show_turns(conversations[side])
if message:
    answer(run_id, message, system, knobs, columns, conversations)
elif jobs.active_run_id() is None:  # a training run keeps the cores: its models load when a message asks
    state.load_ahead(f"chat:{run_id}", lambda: chat.load_chat_models(state.run_path(run_id)))
