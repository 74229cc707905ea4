"""Widget helpers that build a RunConfig form: help text from the config, errors under their widget.

Each helper takes the field's dotted path (e.g. "training.learning_rate"), uses
`core.config.field_help(path)` as the help text, keys the widget by path and form generation, and
leaves an empty slot under the widget. After the whole form is built the page validates the
config and `Form.show_error(err)` writes the message into the slot of `err.field`.

Each widget also records, through its on_change callback, that the user touched it. Until then a
required value that is still empty (no file chosen yet) is a neutral hint, not a red error: a new
user should be guided, not scolded. A config loaded from YAML counts as touched everywhere.

Numeric widgets carry no min/max on purpose: an out-of-range value (typed, or loaded from YAML)
must reach `RunConfig.validate()` and be explained under the widget, not crash the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from core.config import field_help
from core.errors import TuneboardError
from core.present.numbers import format_duration  # noqa: F401 - pages take it from here; the CLI from core

TOUCHED_KEY = "tb_form_touched"
LOADED_KEY = "tb_form_loaded"


def touch(key: str) -> None:
    """on_change callback: the user changed the widget with this key."""
    st.session_state.setdefault(TOUCHED_KEY, set()).add(key)


def mark_loaded(generation: int) -> None:
    """A whole config was loaded into this form generation: every field counts as touched."""
    st.session_state[LOADED_KEY] = generation


class Form:
    """Builds config widgets and remembers where each field's error goes."""

    def __init__(self, generation: int = 0):
        self.generation = generation
        self.slots: dict[str, Any] = {}
        self.owners: dict[str, str] = {}  # field -> key of the widget whose slot shows its error
        self._last_key: str | None = None

    def key(self, path: str, *extra: Any) -> str:
        """Widget key of a field, unique per form generation."""
        suffix = "".join(f"/{part}" for part in extra)
        return f"cfg:{path}{suffix}@{self.generation}"

    def slot(self, path: str, owner: str | None = None) -> None:
        """An empty placeholder under the last widget (or `owner`'s key), for the field's error."""
        self.slots[path] = st.empty()
        key = owner or self._last_key
        if key:
            self.owners[path] = key

    def touched(self, path: str | None) -> bool:
        """Whether the user changed the widget of this field (or loaded a whole config)."""
        if st.session_state.get(LOADED_KEY) == self.generation:
            return True
        return self.owners.get(path or "") in st.session_state.get(TOUCHED_KEY, set())

    def show_hint(self, err: TuneboardError, message: str) -> bool:
        """A neutral hint under the field's widget instead of its error (the user has not touched it yet)."""
        placeholder = self.slots.get(err.field or "")
        if placeholder is None:
            return False
        placeholder.info(message, icon=":material/info:")
        return True

    def _key(self, path: str, *extra: Any) -> str:
        """The widget key, remembered as the owner of the next slot."""
        self._last_key = self.key(path, *extra)
        return self._last_key

    def show_error(self, err: TuneboardError) -> bool:
        """Write the error under its widget; False when no widget of that field is on the page."""
        placeholder = self.slots.get(err.field or "")
        if placeholder is None:
            return False
        placeholder.error(str(err), icon=":material/error:")
        return True

    # ---- widgets -----------------------------------------------------------------------------
    def number(self, path: str, label: str, value: int | float, *, step: int | float | None = None,
               format: str | None = None, help: str | None = None) -> Any:
        """st.number_input; ints stay ints, floats stay floats."""
        is_int = isinstance(value, int) and not isinstance(value, bool) and not isinstance(step, float)
        step = step if step is not None else (1 if is_int else 0.01)
        result = st.number_input(
            label,
            value=int(value) if is_int else float(value),
            step=int(step) if is_int else float(step),
            format=format,
            help=help or field_help(path),
            key=self._key(path),
            on_change=touch,
            args=(self.key(path),),
        )
        self.slot(path)
        return result

    def optional_int(self, path: str, label: str, value: int | None, *, placeholder: str, step: int = 1,
                     help: str | None = None, min_value: int = 1) -> int | None:
        """st.number_input that may be left empty (None): for settings whose empty value has a meaning."""
        result = st.number_input(
            label, value=None if value is None else int(value), step=int(step), min_value=min_value, placeholder=placeholder,
            help=help or field_help(path), key=self._key(path), on_change=touch, args=(self.key(path),),
        )
        self.slot(path)
        return None if result is None else int(result)

    def select(self, path: str, label: str, options: Sequence[Any], value: Any, *,
               format_func: Callable[[Any], str] = str, radio: bool = False, help: str | None = None,
               key_extra: Sequence[Any] = ()) -> Any:
        """st.selectbox (or horizontal st.radio); an unknown current value is kept so it is flagged."""
        options = list(options)
        if value not in options:
            options.insert(0, value)
        widget = st.radio if radio else st.selectbox
        kwargs = {"horizontal": True} if radio else {}
        result = widget(
            label,
            options,
            index=options.index(value),
            format_func=format_func,
            help=help or field_help(path),
            key=self._key(path, *key_extra),
            on_change=touch,
            args=(self.key(path, *key_extra),),
            **kwargs,
        )
        self.slot(path)
        return result

    def toggle(self, path: str, label: str, value: bool, *, help: str | None = None) -> bool:
        """st.toggle for a bool field."""
        result = st.toggle(label, value=bool(value), help=help or field_help(path), key=self._key(path),
                           on_change=touch, args=(self.key(path),))
        self.slot(path)
        return result

    def multiselect(self, path: str, label: str, options: Sequence[Any], value: Sequence[Any], *,
                    format_func: Callable[[Any], str] = str, help: str | None = None) -> list[Any]:
        """st.multiselect for a list field; chosen values that are not offered are dropped."""
        result = st.multiselect(label, list(options), default=[v for v in value if v in options],
                                format_func=format_func, help=help or field_help(path), key=self._key(path),
                                on_change=touch, args=(self.key(path),))
        self.slot(path)
        return list(result)

    def text(self, path: str, label: str, value: str | None, *, placeholder: str | None = None,
             help: str | None = None, key_extra: Sequence[Any] = ()) -> str:
        """st.text_input, stripped."""
        result = st.text_input(
            label,
            value=value or "",
            placeholder=placeholder,
            help=help or field_help(path),
            key=self._key(path, *key_extra),
            on_change=touch,
            args=(self.key(path, *key_extra),),
        )
        self.slot(path)
        return result.strip()

    def text_area(self, path: str, label: str, value: str, *, height: int | None = None,
                  help: str | None = None, key_extra: Sequence[Any] = ()) -> str:
        """st.text_area."""
        key = self._key(path, *key_extra)
        result = st.text_area(
            label, value=value, height=height, help=help or field_help(path), key=key, on_change=touch, args=(key,)
        )
        self.slot(path)
        return result


def format_count(value: int | float | None) -> str:
    """1234567 -> '1.2M', 22_700_000 -> '22.7M'."""
    if value is None:
        return "—"
    value = float(value)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def format_bytes(value: int | float | None) -> str:
    """Human-readable size: 1536 -> '1.5 KB'."""
    if value is None:
        return "—"
    value = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def summarise_weight_names(names: Sequence[str]) -> str:
    """Weight names grouped by module, e.g. `cls.predictions.* (6 tensors)`; a lone tensor keeps its name."""
    groups: dict[str, list[str]] = {}
    for name in names:
        parts = str(name).split(".")
        prefix = ".".join(parts[:2]) if len(parts) > 2 else parts[0]
        groups.setdefault(prefix, []).append(str(name))
    return ", ".join(
        members[0] if len(members) == 1 else f"{prefix}.* ({len(members)} tensors)" for prefix, members in groups.items()
    )


def status_badge(status: str) -> None:
    """A coloured badge for a run status."""
    from core.present import text

    st.badge(text.STATUS_LABELS.get(status, status), color=text.STATUS_COLORS.get(status, "gray"))


def show_error(err: BaseException) -> None:
    """A user-facing error: the sentence of a TuneboardError, never a traceback."""
    from core.present import text

    if isinstance(err, TuneboardError):
        st.error(str(err), icon=":material/error:")
    else:
        st.error(text.UNKNOWN_ERROR.format(error=type(err).__name__), icon=":material/error:")


def run_label(summary: Any) -> str:
    """'name · run id' for pickers (a summary is a core.service.jobs.RunSummary).

    No status here: a keyed picker's labels can lag a run that just finished; the status is
    shown next to the picker from the live snapshot instead.
    """
    name = getattr(summary, "name", "") or getattr(summary, "task", "")
    return " · ".join(part for part in (name, summary.run_id) if part)


def run_picker(jobs: Any, *, label: str | None = None) -> str | None:
    """Pick a run (default: the selected one from the URL, else the active one, else the newest).

    The choice is stored in the URL via ui.state.select_run; the widget key follows the
    selection so a run chosen elsewhere (Start, the Runs page, a reloaded URL) shows here.
    """
    from core.present import text
    from ui import state

    runs = jobs.list_runs()
    if not runs:
        return None
    ids = [r.run_id for r in runs]
    labels = {r.run_id: run_label(r) for r in runs}
    selected = state.selected_run_id()
    if selected not in ids:
        if selected is not None:
            st.warning(text.UNKNOWN_RUN.format(run_id=selected), icon=":material/warning:")
        active = jobs.active_run_id()
        selected = active if active in ids else ids[0]
    choice = st.selectbox(
        label or text.RUN_PICKER, ids, index=ids.index(selected), format_func=labels.get,
        help=text.RUN_PICKER_HELP, key=f"tb_run_picker:{selected}",
    )
    if choice != state.selected_run_id():
        state.select_run(choice)
    return choice


def picked_run(jobs: Any, *, when_none: Callable[[], None] | None = None) -> tuple[str, Any, Any]:
    """The run picker, then the picked run's (id, snapshot, config); stops the page when there is
    no run (after `when_none` offers a way out) or the run cannot be read (with the reason)."""
    from core.present import text

    run_id = run_picker(jobs)
    if run_id is None:
        st.info(text.NO_RUNS, icon=":material/info:")
        if when_none is not None:
            when_none()
        st.stop()
    try:
        return run_id, jobs.snapshot(run_id), jobs.config(run_id)
    except TuneboardError as err:
        show_error(err)
        st.stop()
    raise AssertionError("unreachable: st.stop() ends the script")


def run_progress(snap: Any) -> tuple[int, int, float]:
    """(step, max_steps, epoch) of a snapshot; a finished run whose status.json lacks them falls back
    to its last logged metric (and a completed run counts as done)."""
    step, max_steps, epoch = int(snap.step or 0), int(snap.max_steps or 0), float(snap.epoch or 0.0)
    if not snap.is_active and not step:
        logged = [m for m in snap.metrics if isinstance(m.get("step"), int)]
        if logged:
            step = max(m["step"] for m in logged)
            epochs = [m["epoch"] for m in logged if isinstance(m.get("epoch"), (int, float))]
            epoch = epoch or (max(epochs) if epochs else 0.0)
        max_steps = max_steps or int(snap.info.get("max_steps") or 0) or (step if snap.status == "completed" else 0)
    return step, max_steps, epoch


def report_button(run_path: Path, run_id: str, key: str) -> None:
    """'Download report': the run's self-contained HTML report, built only when the button is clicked."""
    from core.insight.report import build_report
    from core.present import text

    st.download_button(text.DOWNLOAD_REPORT, data=lambda: build_report(run_path), file_name=f"{run_id}-report.html",
                       mime="text/html", on_click="ignore", icon=":material/description:",
                       help=text.DOWNLOAD_REPORT_HELP, key=key)
