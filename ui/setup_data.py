"""Setup's pieces that tell the truth before Start: the rows that will train and why the others will not, the
steps they make, the evaluation file (an upload, or a path on the server, checked like the training file), and
what a change of task reset or kept.

Widgets only: the counting is core.data.preflight's, the task switch core.plan.task_switch's and the wording
core.plan.data_plan's and core.present.text's. No torch.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import streamlit as st

from core.config import DataConfig, RunConfig
from core.data.preflight import DataFacts
from core.errors import DataError, TuneboardError
from core.plan import data_plan
from core.plan.task_switch import TASK_FIELDS, FieldChange, get_field, set_field, switch_task, task_defaults
from core.present import text
from ui import state
from ui.files import file_suffix, save_upload
from ui.widgets import TOUCHED_KEY, Form, touch

TASK_NOTE_KEY = "tb_setup_task_note"
# The stored copy of the last evaluation upload: when the upload is removed, so is the path it set.
EVAL_STORED_KEY = "tb_setup_eval_stored"


# ---- the rows that will train ----------------------------------------------------------------

def data_facts(data: DataConfig, task: str) -> DataFacts | None:
    """Facts of the configured (not instruction) data under its curation settings, counted as a run counts them;
    None where they cannot be known cheaply (a Hub dataset: the network) or the data cannot be read."""
    if data.source == "hub" or (data.source != "synthetic" and not data.path):
        return None
    path = Path(data.path).expanduser() if data.source == "file" and data.path else None
    if path is not None and not path.is_file():
        return None
    # Only what changes the counts keys the cache: the split and the row cap apply to the facts afterwards.
    counted = {"source": data.source, "path": data.path, "hub_split": data.hub_split,
               "text_column": data.text_column, "label_column": data.label_column,
               "synthetic": _as_dict(data.synthetic), "curation": _as_dict(data.curation)}
    try:
        return _counted_facts(_dump({"task": task, "data": counted}), path.stat().st_mtime_ns if path else 0)
    except TuneboardError:
        return None  # the preview above already says why the data cannot be read


@st.cache_data(show_spinner=False, max_entries=16)
def _counted_facts(cfg_yaml: str, mtime_ns: int) -> DataFacts:
    """Rows, usable rows and classes after curation (mtime_ns: the file's, so an edited file is counted again)."""
    from core.data.preflight import run_facts
    from core.data.rows import load_rows

    cfg = RunConfig.from_yaml(cfg_yaml)
    return run_facts(load_rows(cfg.data), cfg)


def rows_summary(cfg: RunConfig, facts: DataFacts | None) -> None:
    """Next to the estimate: rows read -> rows after curation (and why) -> the split, and the steps they make."""
    from core.data.preflight import split_sizes

    if facts is None:
        return
    st.caption(data_plan.rows_line(facts, cfg))
    for note in data_plan.rows_notes(facts):
        st.caption(note)
    train, held = split_sizes(facts.usable, cfg)
    st.caption(data_plan.steps_line(cfg, train, classes=data_plan.classes(facts), evaluates=held != 0,
                                    about=facts.estimated))


# ---- the evaluation file ---------------------------------------------------------------------

def eval_file_inputs(form: Form, data: DataConfig, task: str) -> list[TuneboardError]:
    """The evaluation file: an upload, stored as the training upload is, or a path on the server.

    Checked as the training file is (readable, the text and label columns there; instruction data row by
    row, in Setup's instruction facts); problems go under the widget, naming the file as the user knows it.
    """
    from core.data.tables import SUPPORTED_SUFFIXES

    suffixes = sorted({s.lower().lstrip(".") for s in SUPPORTED_SUFFIXES})
    owner = form.key("data.eval_path")  # choosing or removing a file touches the path: its errors turn red
    uploaded = st.file_uploader(text.EVAL_UPLOAD, type=suffixes, help=text.EVAL_UPLOAD_HELP,
                                key=form.key("data.eval_upload"), on_change=touch, args=(owner,))
    if uploaded is not None:
        form.slot("data.eval_path", owner=owner)
        if file_suffix(uploaded.name).lstrip(".") not in suffixes:
            data.eval_path = None
            return [DataError(text.UPLOAD_BAD_TYPE.format(name=uploaded.name, types=", ".join(suffixes)),
                              field="data.eval_path")]
        content = uploaded.getvalue()
        if not content.strip():
            data.eval_path = None
            return [DataError(text.UPLOAD_EMPTY.format(name=uploaded.name), field="data.eval_path")]
        stored = save_upload(uploaded.name, content, state.uploads_root())
        data.eval_path = st.session_state[EVAL_STORED_KEY] = str(stored)
        st.caption(text.EVAL_SAVED.format(name=uploaded.name, path=stored))
    else:
        if data.eval_path and data.eval_path == st.session_state.get(EVAL_STORED_KEY):
            data.eval_path = None  # the upload that set it was removed
        data.eval_path = form.text("data.eval_path", text.EVAL_PATH_SERVER, data.eval_path,
                                   help=text.EVAL_PATH_HELP) or None
    if not data.eval_path:
        return []
    path = Path(data.eval_path).expanduser()
    if not path.is_file():
        return [DataError(text.EVAL_MISSING.format(path=data.eval_path), field="data.eval_path")]
    try:
        rows = _eval_rows(str(path), path.stat().st_mtime_ns, task, data.text_column, data.label_column)
    except DataError as err:
        shown = uploaded.name if uploaded is not None else None
        message = str(err).replace(str(path), shown).replace(path.name, shown) if shown else str(err)
        return [DataError(message, field="data.eval_path")]
    st.caption(text.EVAL_ROWS.format(rows=rows))
    return []


def eval_shown_name(form: Form) -> str | None:
    """The uploaded evaluation file's own name (not its stored copy's), when one is uploaded."""
    uploaded = st.session_state.get(form.key("data.eval_upload"))
    return None if uploaded is None or isinstance(uploaded, list) else uploaded.name


@st.cache_data(show_spinner=False, max_entries=16)
def _eval_rows(path: str, mtime_ns: int, task: str, text_column: str, label_column: str) -> int:
    """Rows of the evaluation file, once its columns are checked (DataError: field data.eval_path)."""
    from core.data.preflight import check_eval_file

    return check_eval_file(DataConfig(source="file", eval_path=path, text_column=text_column,
                                      label_column=label_column), task)


# ---- a change of task ------------------------------------------------------------------------

def follow_task_fields(form: Form, cfg: RunConfig, previous_task: str) -> None:
    """After the task radio: on a switch, the task-specific settings the user did not change in this form go
    back to the new task's defaults (a loaded demo's too: they were chosen for its task); then say what was
    reset and what was kept, with a button that resets the kept ones as well."""
    if cfg.task != previous_task:
        task = cfg.task
        cfg.task = previous_task
        chosen = {path for path in TASK_FIELDS if _changed(path, form.generation)}
        changes = switch_task(cfg, task, chosen)
        for change in changes:
            if not change.kept:
                _forget(change.field, form.generation)
        st.session_state[TASK_NOTE_KEY] = {"task": task, "generation": form.generation, "changes": changes}
    note = st.session_state.get(TASK_NOTE_KEY)
    if not note or note["task"] != cfg.task or note["generation"] != form.generation or not note["changes"]:
        return
    reset = [c for c in note["changes"] if not c.kept]
    kept = [c for c in note["changes"] if c.kept]
    lines = []
    if reset:
        lines.append(text.TASK_SWITCH_RESET.format(
            task=text.TASK_NAMES.get(cfg.task, cfg.task),
            fields=", ".join(text.TASK_SWITCH_CHANGE.format(name=_name(c.field), before=_value(c.field, c.before),
                                                            after=_value(c.field, c.after)) for c in reset)))
    if kept:
        lines.append(text.TASK_SWITCH_KEPT.format(
            fields=", ".join(text.TASK_SWITCH_VALUE.format(name=_name(c.field), value=_value(c.field, c.after))
                             for c in kept)))
    st.info("\n\n".join(lines), icon=":material/restart_alt:")
    if kept:
        st.button(text.TASK_SWITCH_USE_DEFAULTS, key=f"tb_setup_task_defaults@{form.generation}",
                  on_click=_use_task_defaults, args=(form.generation,))


def _use_task_defaults(generation: int) -> None:
    """on_click: the settings kept at the last task switch take the task's defaults too."""
    note = st.session_state.get(TASK_NOTE_KEY)
    if not note:
        return
    cfg = state.get_config()
    defaults = task_defaults(cfg.task)
    changes = []
    for change in note["changes"]:
        if change.kept:
            value = copy.deepcopy(get_field(defaults, change.field))
            set_field(cfg, change.field, value)
            _forget(change.field, generation, untouch=True)
            change = FieldChange(change.field, change.before, value, kept=False)
        changes.append(change)
    note["changes"] = changes
    state.set_config(cfg)


def _widget_keys(keys: Any, path: str, generation: int) -> list[str]:
    """The keys among `keys` of this field's widgets in this form generation (Form.key, any key_extra)."""
    prefix, suffix = f"cfg:{path}", f"@{generation}"
    return [k for k in keys if isinstance(k, str) and k.startswith(prefix) and k.endswith(suffix)
            and k[len(prefix)] in "/@"]


def _changed(path: str, generation: int) -> bool:
    """Whether the user changed a widget of this field in this form generation (the 'Train for' choice, keyed
    under max steps, counts for the epochs as well)."""
    touched = st.session_state.get(TOUCHED_KEY, set())
    also = ("training.max_steps",) if path == "training.epochs" else ()
    return any(_widget_keys(touched, p, generation) for p in (path, *also))


def _forget(path: str, generation: int, *, untouch: bool = False) -> None:
    """Drop the field's widget state, so that its widgets are drawn again from the config's value."""
    for key in _widget_keys(list(st.session_state.keys()), path, generation):
        del st.session_state[key]
    if untouch:
        touched = st.session_state.get(TOUCHED_KEY, set())
        touched.difference_update(_widget_keys(list(touched), path, generation))


def _name(path: str) -> str:
    return text.TASK_FIELD_NAMES.get(path, path)


def _value(path: str, value: Any) -> str:
    """A setting's value as the note shows it ('LoRA adapters', 'follows the data', '1e-04')."""
    if path == "strategy.name":
        return text.STRATEGY_NAMES.get(value, str(value))
    if path == "model.max_length" and value is None:
        return text.TASK_FIELD_FOLLOWS_DATA
    if path == "training.max_steps" and not value:
        return text.TASK_FIELD_OFF
    if path == "training.epochs" and value is None:
        return text.TASK_FIELD_AUTO_LENGTH
    if path == "probes.texts":
        return text.TASK_FIELD_PROBES_CUSTOM.format(n=len(value)) if value else text.TASK_FIELD_PROBES_DEFAULT
    if value is None:
        return text.TASK_FIELD_DEFAULT
    return f"{value:g}" if isinstance(value, float) else str(value)


def _as_dict(obj: Any) -> dict:
    import dataclasses

    return dataclasses.asdict(obj)


def _dump(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=True)
