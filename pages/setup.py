"""Setup: task, base model, data, strategy, hyperparameters and probes -> one RunConfig.

The tab's RunConfig lives in session_state (ui.state). Widgets are built from it and write back to
it on every rerun; then the config is validated and each error is shown under its widget. Start
submits the config to the shared JobManager and opens the Train page.

Longer than 500 lines: one form whose sections read and write the same RunConfig and widget keys in
the order a user fills them in; its reusable parts live in ui/.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from core.config import (
    BUNDLED_MODEL,
    PROMPT_STRATEGY,
    SCHEDULERS,
    TASKS,
    DataConfig,
    ModelConfig,
    RunConfig,
    StrategyConfig,
    TrainingConfig,
    strategies_for,
)
from core.data.preflight import DataFacts, data_problems, planned_max_length, too_long_share
from core.errors import ConfigError, DataError, ModelError, TuneboardError
from core.present import charts, text
from ui import layout, router, setup_data, state

if TYPE_CHECKING:  # pandas loads on first use: the Task radio must not wait 0.7 s for its import
    import pandas as pd
from ui.columns import pick_columns
from ui.files import file_suffix, save_upload
from ui.setup_probes import probes_section
from ui.tables import SETUP_FORM_WIDTH_PX, fitted_columns
from ui.widgets import Form, format_bytes, format_count, format_duration, mark_loaded, touch

PREVIEW_ROWS = 200
SUMMARY_KEY = "tb_setup_summary"
SYNTH_SAMPLE_ROWS = 8
YAML_UPLOAD_KEY = "tb_setup_yaml"
YAML_LOADED_KEY = "tb_setup_yaml_loaded"
HUB_PREVIEW_KEY = "tb_setup_hub_preview"


# ---- cached look-ups (no torch here: core imports it lazily where needed) ---------------------

@st.cache_data(show_spinner=False, ttl=60)
def _is_cached(hub_id: str) -> bool:
    from core.models import is_cached

    return is_cached(hub_id)


def _popular_models(task: str) -> list[dict]:
    from core.models import POPULAR_MODELS

    return [m for m in POPULAR_MODELS if m["id"] != BUNDLED_MODEL and task in m.get("tasks", ())]


@st.cache_data(show_spinner=False, ttl=60, max_entries=64)
def _model_problem(source: str) -> tuple[str, str | None] | None:
    """(message, field) when the model source cannot be used; fast (core fails within seconds)."""
    from core.models import resolve_model

    try:
        resolve_model(source)
    except TuneboardError as err:
        return str(err), err.field
    return None


@st.cache_data(show_spinner=False, max_entries=64)
def _estimate_params(task: str, model_yaml: str, strategy_yaml: str) -> tuple[int, int]:
    """Trainable and total parameters; keyed only on what changes them.

    A full fine-tune of a known family is counted from the checkpoint's header, without torch (the
    first visit draws at once); anything else builds the model on the meta device, by which time
    the warm-up (ui.state.warm_up) has usually imported torch and transformers.
    """
    from core.models.params import quick_params

    cfg = RunConfig.from_dict({"task": task, "model": _yaml(model_yaml), "strategy": _yaml(strategy_yaml)})
    quick = quick_params(cfg)
    if quick is not None:
        return quick
    state.wait_for_warm_up()  # it may be importing transformers this very moment
    from core.training.strategies import estimate_params

    return estimate_params(cfg)


@st.cache_data(show_spinner=False, max_entries=64)
def _estimate(cfg_yaml: str, trainable: int, total: int, facts: DataFacts, _runs: list, runs_key: tuple,
              process_ready: bool):
    """(Estimate, DataShape) of a config on its data, with the speed past runs measured (runs_key: their ids).

    process_ready: a training process waits with its imports done (the standby), so no cold start is counted.
    """
    from core.plan.estimate import data_shape, estimate_run, measured_speed

    cfg = RunConfig.from_yaml(cfg_yaml)
    shape = data_shape(cfg, facts)
    return estimate_run(cfg, shape, trainable, total, measured_speed(cfg, _runs), process_ready=process_ready), shape


def estimate_lines(cfg: RunConfig, problems: list, params: tuple | None, facts: DataFacts | None) -> None:
    """The time estimate with what it rests on, or in words why there is none; the disk the run will use."""
    from core.plan.estimate import disk_bytes

    trainable, total = params or (None, None)
    why = (text.ESTIMATE_WHY_PROBLEMS if problems else text.ESTIMATE_WHY_MODEL if not total
           else text.ESTIMATE_WHY_DATA if facts is None else None)
    estimate = shape = None
    if why is None:
        runs = [r for r in state.get_jobs().list_runs() if r.speed]
        estimate, shape = _estimate(cfg.to_yaml(), int(trainable or 0), int(total), facts, runs,
                                    tuple((r.run_id, r.finished_at) for r in runs), state.training_process_waits())
    st.metric(text.ESTIMATE, text.ESTIMATE_VALUE.format(duration=format_duration(estimate.seconds))
              if estimate else text.ESTIMATE_UNKNOWN)
    if estimate is None:
        st.caption(why)
    elif estimate.basis == "measured":
        st.caption(text.ESTIMATE_MEASURED.format(run_id=estimate.measured_run, device=state.device_label()))
    else:
        st.caption(text.ESTIMATE_COMPUTED.format(rows=shape.train_rows, tokens=shape.padded_tokens_per_row,
                                                 device=state.device_label()))
    setup_data.rows_summary(cfg, facts)
    if total:
        peak, kept = disk_bytes(cfg, int(trainable or total), int(total))
        st.caption(text.DISK_USE.format(peak=format_bytes(peak), kept=format_bytes(kept)))
    planned = planned_max_length(facts, cfg.model.max_length)
    if cfg.model.max_length is None and planned is not None:
        st.caption(text.MAX_LENGTH_FITTED.format(max_length=planned))
    share = too_long_share(facts, cfg.model.max_length) if facts is not None else 0.0
    if share:
        action = text.TOO_LONG_DROPPED if cfg.data.curation.too_long == "drop" else text.TOO_LONG_TRUNCATED
        shown = text.TOO_LONG_FEW if share < 0.005 else text.TOO_LONG_SHARE.format(share=share)
        st.info(text.TOO_LONG_NOTE.format(share=shown, max_length=planned, action=action),
                icon=":material/content_cut:")


@st.cache_data(show_spinner=False, max_entries=16)
def _read_preview(path: str, mtime_ns: int) -> pd.DataFrame:
    from core.data.tables import read_table

    return read_table(path, max_rows=PREVIEW_ROWS)


@st.cache_data(show_spinner=False, max_entries=16)
def _synthetic_sample(kind: str, seed: int, null_fraction: float) -> pd.DataFrame:
    if kind == "news":
        from core.data.news import generate_headlines

        return generate_headlines(SYNTH_SAMPLE_ROWS, seed=seed)
    from core.data.synthetic import generate_reviews

    return generate_reviews(SYNTH_SAMPLE_ROWS, seed=seed, null_fraction=null_fraction)


@st.cache_data(show_spinner=False, max_entries=8)
def _curated_preview(name: str) -> pd.DataFrame:
    from core.data.rows import load_rows

    return load_rows(DataConfig(source="curated", path=name)).head(PREVIEW_ROWS)


def _yaml(text_: str) -> dict:
    import yaml

    return yaml.safe_load(text_) or {}


def _as_yaml(obj) -> str:
    return _dump(dataclasses.asdict(obj))


def _dump(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=True)


# ---- sections ------------------------------------------------------------------------------

def task_section(form: Form, cfg: RunConfig) -> tuple[str, str]:
    """Task and run name."""
    left, right = st.columns([3, 2])
    with left:
        task = form.select("task", text.TASK_LABEL, TASKS, cfg.task, format_func=_label(text.TASK_NAMES), radio=True)
    with right:
        name = form.text("name", text.RUN_NAME, cfg.name, placeholder=text.RUN_NAME_PLACEHOLDER)
    return task, name


def model_section(form: Form, model: ModelConfig, task: str) -> ModelConfig:
    """Bundled, a popular Hub model (cached or not), any Hub id, or a local folder."""
    popular = _popular_models(task)
    kind = form.select(
        "model.source", text.MODEL_KIND, list(text.MODEL_KINDS), _model_kind(model.source, popular),
        format_func=_label(text.MODEL_KINDS), radio=True, key_extra=("kind",),
    )
    if kind == "bundled":
        model.source = bundled_inputs(form, model.source, task)
    elif kind == "popular":
        if not popular:
            st.info(text.MODEL_POPULAR_NONE)
            form.slot("model.source")
        else:
            ids = [m["id"] for m in popular]
            notes = {m["id"]: m for m in popular}
            model.source = form.select(
                "model.source", text.MODEL_POPULAR, ids, model.source if model.source in ids else ids[0],
                format_func=lambda i: text.MODEL_POPULAR_OPTION.format(
                    id=i, params=notes[i].get("params", "?"),
                    badge=text.MODEL_CACHED if _is_cached(i) else text.MODEL_NEEDS_NETWORK,
                ),
                key_extra=("popular", task),
            )
            st.caption(notes[model.source].get("note", ""))
    elif kind == "run":
        model.source = finished_run_input(form, model.source, task)
    elif kind == "hub":
        current = model.source if _model_kind(model.source, popular) == "hub" else ""
        model.source = form.text(
            "model.source", text.MODEL_HUB_ID, current, placeholder=text.MODEL_HUB_PLACEHOLDER, key_extra=("hub",)
        )
        if model.source:
            cached = _is_cached(model.source)
            st.caption((text.MODEL_HUB_CACHED if cached else text.MODEL_HUB_UNCACHED).format(id=model.source))
    else:
        current = model.source if _model_kind(model.source, popular) == "local" else ""
        model.source = form.text(
            "model.source", text.MODEL_LOCAL, current, placeholder=text.MODEL_LOCAL_PLACEHOLDER, key_extra=("local",)
        )
        if model.source and not Path(model.source).expanduser().is_dir():
            st.caption(text.MODEL_LOCAL_MISSING.format(path=model.source))
    with st.expander(text.MODEL_ADVANCED):
        model.max_length = form.optional_int("model.max_length", text.MAX_LENGTH, model.max_length, step=8,
                                             placeholder=text.MAX_LENGTH_AUTO)
        model.trust_remote_code = form.toggle("model.trust_remote_code", text.TRUST_REMOTE_CODE, model.trust_remote_code)
        model.allow_pickle_weights = form.toggle(
            "model.allow_pickle_weights", text.ALLOW_PICKLE, model.allow_pickle_weights
        )
    # Outside the expander, so a config loaded from YAML cannot switch them on unnoticed.
    if model.trust_remote_code:
        st.warning(text.TRUST_REMOTE_CODE_WARNING, icon=":material/warning:")
    if model.allow_pickle_weights:
        st.warning(text.ALLOW_PICKLE_WARNING, icon=":material/warning:")
    return model


def bundled_inputs(form: Form, source: str, task: str) -> str:
    """The bundled models as a small catalogue table for this task, and the pick."""
    import pandas as pd

    from core.models.catalogue import BUNDLED_MODELS, bundled_model, catalogue_rows, default_model

    rows = catalogue_rows(task)
    columns = text.BUNDLED_COLUMNS
    # One column per model, one row per fact: eight facts side by side did not fit the form's width (the
    # disk size read "98 MB G"), and a static table wraps a long fact instead of cutting it.
    table = pd.DataFrame(
        {
            (text.BUNDLED_DEFAULT_MARK if row["default"] else "") + row["name"]: {
                columns["architecture"]: row["architecture"],
                columns["params"]: row["params"],
                columns["disk"]: row["disk"],
                columns["tasks"]: ", ".join(text.TASK_NAMES.get(t, t).split(" (")[0] for t in row["tasks"]),
                columns["head"]: text.BUNDLED_HEAD[row["head_pretrained"]],
                columns["licence"]: row["licence"],
                columns["offline"]: text.BUNDLED_YES if row["offline"] else text.BUNDLED_NO,
            }
            for row in rows
        }
    )
    st.caption(text.BUNDLED_TABLE_CAPTION)
    st.table(table)
    chosen = bundled_model(source)
    current = chosen.source if chosen is not None else default_model(task)
    by_source = {m.source: m for m in BUNDLED_MODELS}
    heads = {row["source"]: text.BUNDLED_HEAD[row["head_pretrained"]] for row in rows}
    picked = form.select(
        "model.source", text.BUNDLED_PICK, list(by_source), current,
        format_func=lambda s: text.BUNDLED_OPTION.format(name=by_source[s].name, params=by_source[s].params,
                                                         head=heads[s]) if s in by_source else s,
        key_extra=("bundled", task),
    )
    model = by_source[picked]
    st.caption(model.note)
    if task in model.tasks and not model.head_is_pretrained(task):
        st.caption(text.BUNDLED_UNTRAINED_HEAD.format(name=model.name, task=text.TASK_NAMES[task].split(" (")[0]))
    if _needs_conversion(picked):
        st.caption(text.BUNDLED_FIRST_USE.format(name=model.name))
    return picked


@st.cache_data(show_spinner=False, ttl=30)
def _needs_conversion(source: str) -> bool:
    """Whether a bundled model's first load still has to convert it (core.models.gguf)."""
    from core.models import resolve_model

    try:
        return bool(resolve_model(source).gguf)
    except TuneboardError:
        return False


def follow_task(form: Form, cfg: RunConfig, previous_task: str) -> None:
    """A new task resets its task-specific settings the user did not choose, and says which it kept
    (ui.setup_data); it picks its default bundled model, unless the user chose the current one for the old task."""
    from core.models.catalogue import bundled_model, default_model
    from ui.widgets import TOUCHED_KEY

    # Before the widgets below are drawn: the settings it resets are drawn again from the config.
    setup_data.follow_task_fields(form, cfg, previous_task)
    model = bundled_model(cfg.model.source)
    if cfg.task == previous_task or model is None:
        return  # same task, or a Hub id / folder the user typed: theirs to keep
    chosen = form.key("model.source", "bundled", previous_task) in st.session_state.get(TOUCHED_KEY, set())
    if not chosen or cfg.task not in model.tasks:
        cfg.model.source = default_model(cfg.task)


def demo_section() -> None:
    """One button per preset: loads the whole scenario into the form."""
    from core.plan.presets import PRESETS

    st.subheader(text.DEMO_TITLE)
    st.caption(text.DEMO_CAPTION)
    for name, preset in PRESETS.items():
        if st.button(text.DEMO_BUTTONS.get(name, preset.title), key=f"tb_setup_demo_{name}", help=preset.description,
                     icon=":material/play_circle:", width="stretch"):
            state.load_config(preset.config())
            mark_loaded(state.form_generation())
            st.toast(text.DEMO_LOADED.format(title=preset.title))
            st.rerun()


def data_section(
    form: Form, data: DataConfig, task: str
) -> tuple[DataConfig, list[TuneboardError], DataFacts | None]:
    """Dataset source with its options, a preview, column mapping, the classes; returns problems and facts."""
    problems: list[TuneboardError] = []
    data.source = form.select(
        "data.source", text.DATA_SOURCE, list(text.DATA_SOURCES), data.source,
        format_func=_label(text.DATA_SOURCES), radio=True,
    )
    preview: pd.DataFrame | None = None
    try:
        if data.source == "synthetic":
            synthetic_inputs(form, data)
        elif data.source == "file":
            preview = file_inputs(form, data)
        elif data.source == "hub":
            preview = hub_inputs(form, data)
        else:
            preview = curated_inputs(form, data)
    except TuneboardError as err:
        problems.append(_at(err, "data.path"))
    if preview is not None:
        st.caption(text.FILE_PREVIEW.format(rows=min(len(preview), 20)))
        # Every column gets room for its labels and its name; only long texts are cut, at their column's edge.
        shown = preview.head(20)
        st.dataframe(shown, hide_index=True, height=240, column_config=fitted_columns(
            shown, SETUP_FORM_WIDTH_PX, flexible=[str(c) for c in shown.columns]))
    if task == "sft":
        problems += instruction_inputs(form, data, preview)
    elif data.source != "synthetic":
        problems += column_mapping(form, data, task, preview)
    # Drawn above the split options but filled after them: an instruction set's evaluation file is checked
    # with its facts, so the evaluation file chosen on this rerun must be known first.
    facts_box = st.container()
    with st.expander(text.DATA_ADVANCED):
        cols = st.columns(2)
        with cols[0]:
            data.validation_fraction = form.number(
                "data.validation_fraction", text.VALIDATION_FRACTION, data.validation_fraction, step=0.05
            )
        with cols[1]:
            max_rows = form.number("data.max_rows", text.MAX_ROWS, data.max_rows or 0, step=100)
            data.max_rows = max_rows or None
        if data.source != "synthetic":
            eval_problems = setup_data.eval_file_inputs(form, data, task)
        else:
            eval_problems = []
    with facts_box:
        if task == "sft" and not problems and not eval_problems:
            facts, found = _sft_facts(data, _shown_name(form, data), setup_data.eval_shown_name(form))
            problems += found
        else:
            facts = None if problems or eval_problems else setup_data.data_facts(data, task)
        if facts is not None and facts.labels is not None and facts.labels.classes:
            label_balance(facts)
    return data, problems + eval_problems, facts


def instruction_inputs(form: Form, data: DataConfig, preview: pd.DataFrame | None) -> list[TuneboardError]:
    """Instruction data: the recognised shape, else prompt/response pickers (or a labelled set's columns and template)."""
    from core.data.instructions import FORMATS, detect_format

    problems: list[TuneboardError] = []
    labelled = data.source == "synthetic"
    if preview is not None and not labelled:
        columns = [str(c) for c in preview.columns]
        try:
            shape = None if data.prompt_column or data.response_column else detect_format(columns)
        except DataError:
            shape = None
        if shape is not None:
            st.caption(text.SFT_FORMAT_FOUND.format(shape=FORMATS[shape]))
        else:
            st.caption(text.SFT_MAP_COLUMNS)
            options = ["", *columns]
            cols = st.columns(2)
            with cols[0]:
                prompt = form.select("data.prompt_column", text.SFT_PROMPT_COLUMN, options, data.prompt_column or "",
                                     format_func=lambda c: c or text.SFT_NOT_MAPPED, key_extra=("|".join(columns),))
            with cols[1]:
                response = form.select("data.response_column", text.SFT_RESPONSE_COLUMN, options,
                                       data.response_column or "", format_func=lambda c: c or text.SFT_NOT_MAPPED,
                                       key_extra=("|".join(columns),))
            data.prompt_column, data.response_column = prompt or None, response or None
            if not (prompt or response):
                problems += column_mapping(form, data, "classification", preview)
                labelled = _labelled_set(form, data, preview)
                if not labelled:  # the pickers hold guesses: nothing says what the model should learn
                    try:
                        detect_format(columns, source=_shown_name(form, data))
                    except DataError as err:
                        problems.append(err)
    else:
        data.prompt_column = data.response_column = None
    if labelled:
        st.caption(text.SFT_LABELLED)
        data.prompt_template = form.text_area("data.prompt_template", text.SFT_PROMPT_TEMPLATE, data.prompt_template,
                                              height=110)
    data.train_on_prompt = form.toggle("data.train_on_prompt", text.SFT_TRAIN_ON_PROMPT, data.train_on_prompt)
    return problems


def _labelled_set(form: Form, data: DataConfig, preview: pd.DataFrame) -> bool:
    """Whether instruction data without recognised fields is a labelled set: text and label columns the user
    picked, or a label column core finds in it (not merely the picker's first guess, such as free-text answers)."""
    from core.data.columns import find_label_column

    columns = [str(c) for c in preview.columns]
    if data.text_column not in columns or data.label_column not in columns:
        return False
    if form.touched("data.text_column") or form.touched("data.label_column"):
        return True
    return find_label_column(preview, exclude=(data.text_column,)) == data.label_column


def _shown_name(form: Form, data: DataConfig) -> str | None:
    """The data file's name as the user knows it: an upload's own name (not its stored copy's), else the path's."""
    if data.source != "file":
        return data.path or None  # a Hub id or a curated dataset's name
    uploaded = st.session_state.get(form.key("data.upload"))
    if uploaded is not None and not isinstance(uploaded, list):
        return uploaded.name
    return Path(data.path).name if data.path else None


def _sft_facts(data: DataConfig, shown_name: str | None = None,
               eval_name: str | None = None) -> tuple[DataFacts | None, list[TuneboardError]]:
    """Facts of instruction data, every row checked (a bad row is a problem under the data path, or under the
    evaluation file's, named by `shown_name` / `eval_name`, the files as the user knows them)."""
    if data.source == "hub" or (data.source != "synthetic" and not data.path):
        return None, []
    path = Path(data.path).expanduser() if data.source == "file" and data.path else None
    if path is not None and not path.is_file():
        return None, []
    try:
        facts = _instruction_facts(_dump({"task": "sft", "data": dataclasses.asdict(data)}),
                                   path.stat().st_mtime_ns if path is not None else 0)
    except TuneboardError as err:
        if path is not None and shown_name and shown_name != path.name:
            err = type(err)(str(err).replace(path.name, shown_name), field=err.field)
        if err.field == "data.eval_path" and eval_name and data.eval_path:
            err = type(err)(str(err).replace(Path(data.eval_path).name, eval_name), field=err.field)
        return None, [_at(err, "data.path")]
    st.caption(text.SFT_ROWS.format(rows=facts.usable))
    return facts, []


@st.cache_data(show_spinner=False, max_entries=8)
def _instruction_facts(cfg_yaml: str, mtime_ns: int) -> DataFacts:
    """Rows and usable chats of instruction data, every row checked (mtime_ns: the file's, so an edit reloads)."""
    from core.data.preflight import instruction_facts
    from core.data.rows import load_rows

    cfg = RunConfig.from_dict(_yaml(cfg_yaml))
    return instruction_facts(load_rows(cfg.data), cfg)


def label_balance(facts: DataFacts) -> None:
    """Classes of the label column: how many, how balanced, and a small bar chart of their rows."""
    labels = facts.labels
    if labels.balance is not None:
        template = text.LABEL_CLASSES_IMBALANCED if labels.imbalanced else text.LABEL_CLASSES
        st.caption(template.format(classes=labels.classes, rows=facts.usable, balance=labels.balance))
    if labels.missing or labels.unparseable:
        st.caption(text.LABEL_ROWS_DROPPED.format(missing=labels.missing, unparseable=labels.unparseable))
    st.plotly_chart(
        charts.class_counts_figure(labels.counts), config={"displayModeBar": False}, key="tb_setup_label_chart"
    )


def synthetic_inputs(form: Form, data: DataConfig) -> None:
    """Which generator (reviews or news headlines), rows, seed and empty-row share, with sample rows."""
    from core.config import SYNTHETIC_KINDS

    data.synthetic.kind = form.select("data.synthetic.kind", text.SYNTH_KIND, SYNTHETIC_KINDS, data.synthetic.kind,
                                      format_func=lambda k: text.SYNTH_KINDS.get(k, k), radio=True)
    news = data.synthetic.kind == "news"
    cols = st.columns(2 if news else 3)
    with cols[0]:
        data.synthetic.rows = form.number("data.synthetic.rows", text.SYNTH_ROWS, data.synthetic.rows, step=500)
    with cols[1]:
        data.synthetic.seed = form.number("data.synthetic.seed", text.SYNTH_SEED, data.synthetic.seed)
    if not news:  # headlines have no empty rows: their flaws are repeats and a disagreeing annotator
        with cols[2]:
            data.synthetic.null_fraction = form.number(
                "data.synthetic.null_fraction", text.SYNTH_NULLS, data.synthetic.null_fraction, step=0.01
            )
    data.path = None
    data.text_column, data.label_column = "text", "label"
    with st.expander(text.SYNTH_SAMPLE):
        try:
            sample = _synthetic_sample(data.synthetic.kind, int(data.synthetic.seed),
                                       float(data.synthetic.null_fraction))
        except TuneboardError as err:
            st.error(str(err))
        else:  # a static table: a few rows, whose sentences wrap instead of pushing the labels out of view
            st.table(sample.astype(object).where(sample.notna(), text.NOT_AVAILABLE), hide_index=True)  # not "None"


def file_inputs(form: Form, data: DataConfig) -> pd.DataFrame | None:
    """Upload (stored under the uploads folder) or a server path; returns a preview or raises DataError."""
    from core.data.tables import SUPPORTED_SUFFIXES

    suffixes = sorted({s.lower().lstrip(".") for s in SUPPORTED_SUFFIXES})
    # Choosing or removing a file is touching the data path: its errors may turn red from then on.
    uploaded = st.file_uploader(
        text.UPLOAD_LABEL, type=suffixes, help=text.UPLOAD_HELP, key=form.key("data.upload"),
        on_change=touch, args=(form.key("data.path"),),
    )
    if uploaded is not None:
        if file_suffix(uploaded.name).lstrip(".") not in suffixes:
            form.slot("data.path", owner=form.key("data.path"))
            raise DataError(text.UPLOAD_BAD_TYPE.format(name=uploaded.name, types=", ".join(suffixes)))
        content = uploaded.getvalue()
        if not content.strip():
            form.slot("data.path", owner=form.key("data.path"))
            raise DataError(text.UPLOAD_EMPTY.format(name=uploaded.name))
        stored = save_upload(uploaded.name, content, state.uploads_root())
        data.path = str(stored)
        st.caption(text.UPLOAD_SAVED.format(path=data.path))
        form.slot("data.path", owner=form.key("data.path"))
        try:
            return _read_preview(str(stored), stored.stat().st_mtime_ns)
        except DataError as err:  # name the file as the user knows it, not our stored copy
            raise DataError(str(err).replace(stored.name, uploaded.name), field="data.path") from None
    else:
        data.path = form.text("data.path", text.FILE_PATH, data.path, help=text.FILE_PATH_HELP) or None
    if not data.path:
        return None
    path = Path(data.path).expanduser()
    if not path.is_file():
        raise DataError(f"There is no file at {data.path}: upload it again or fix the path.")
    return _read_preview(str(path), path.stat().st_mtime_ns)


def hub_inputs(form: Form, data: DataConfig) -> pd.DataFrame | None:
    """A Hub dataset name and split; the preview loads on request (it may need the network)."""
    cols = st.columns([3, 1])
    with cols[0]:
        data.path = form.text("data.path", text.HUB_DATASET, data.path, placeholder=text.HUB_DATASET_PLACEHOLDER) or None
    with cols[1]:
        data.hub_split = form.text("data.hub_split", text.HUB_SPLIT, data.hub_split) or "train"
    st.caption(text.HUB_NETWORK_NOTE)
    cached = st.session_state.get(HUB_PREVIEW_KEY)
    if data.path and st.button(text.HUB_PREVIEW, key=form.key("data.hub_preview")):
        from core.data.hub_datasets import load_hub_dataset

        with st.spinner():
            frame = load_hub_dataset(data.path, data.hub_split)
        cached = (data.path, data.hub_split, frame.head(PREVIEW_ROWS))
        st.session_state[HUB_PREVIEW_KEY] = cached
    if cached and cached[:2] == (data.path, data.hub_split):
        return cached[2]
    return None


def curated_inputs(form: Form, data: DataConfig) -> pd.DataFrame | None:
    """A dataset saved from the Data page."""
    datasets = {str(d.get("name")): d for d in state.curated_datasets() if d.get("name")}
    if not datasets:
        st.info(text.CURATED_NONE)
        form.slot("data.path", owner=form.key("data.path", "curated"))
        return None
    names = list(datasets)
    data.path = form.select(
        "data.path", text.CURATED_PICK, names, data.path if data.path in names else names[0],
        format_func=lambda n: text.CURATED_OPTION.format(
            name=n, rows=datasets.get(n, {}).get("rows", datasets.get(n, {}).get("rows_out", "?"))
        ),
        key_extra=("curated",),
    )
    return _curated_preview(data.path)


def column_mapping(
    form: Form, data: DataConfig, task: str, preview: pd.DataFrame | None
) -> list[TuneboardError]:
    """Which column holds the text (and the label): only the data's own columns, found by name or type."""
    problems: list[TuneboardError] = []
    columns = None if preview is None else [str(c) for c in preview.columns]
    if columns:
        pick_columns(data, preview, state.form_generation())
    cols = st.columns(2)
    wanted = [("data.text_column", text.TEXT_COLUMN, "text_column")]
    if task == "classification":
        wanted.append(("data.label_column", text.LABEL_COLUMN, "label_column"))
    for (path, label, attr), col in zip(wanted, cols, strict=False):
        with col:
            current = getattr(data, attr)
            if columns:
                value = form.select(path, label, columns, current, key_extra=("|".join(columns),))
                if value not in columns:
                    problems.append(
                        DataError(text.COLUMN_MISSING.format(column=value, columns=", ".join(columns)), field=path)
                    )
            else:
                value = form.text(path, label, current)
            setattr(data, attr, value)
    return problems


def strategy_section(form: Form, strategy: StrategyConfig, task: str) -> StrategyConfig:
    """The strategy and the knobs that strategy uses; instruction tuning's few-shot examples."""
    strategy.name = form.select(
        "strategy.name", text.STRATEGY_LABEL, strategies_for(task), strategy.name,
        format_func=_label(text.STRATEGY_NAMES),
    )
    if task == "sft":
        prompting = strategy.name == PROMPT_STRATEGY
        strategy.few_shot = form.number("strategy.few_shot", text.FEW_SHOT if prompting else text.FEW_SHOT_BEFORE,
                                        strategy.few_shot)
        st.caption(text.PROMPTING_NOTE if prompting else text.FEW_SHOT_BEFORE_NOTE)
    if strategy.name == "freeze-layers":
        strategy.freeze_layers = form.number("strategy.freeze_layers", text.FREEZE_LAYERS, strategy.freeze_layers)
    elif strategy.name == "gradual-unfreeze":
        strategy.unfreeze_every_steps = form.number(
            "strategy.unfreeze_every_steps", text.UNFREEZE_EVERY, strategy.unfreeze_every_steps, step=10
        )
    elif strategy.name == "lora":
        cols = st.columns(3)
        with cols[0]:
            strategy.lora_r = form.number("strategy.lora_r", text.LORA_R, strategy.lora_r)
        with cols[1]:
            strategy.lora_alpha = form.number("strategy.lora_alpha", text.LORA_ALPHA, strategy.lora_alpha)
        with cols[2]:
            strategy.lora_dropout = form.number("strategy.lora_dropout", text.LORA_DROPOUT, strategy.lora_dropout)
        targets = form.text(
            "strategy.lora_targets", text.LORA_TARGETS, ", ".join(strategy.lora_targets or []),
            placeholder=text.LORA_TARGETS_PLACEHOLDER,
        )
        strategy.lora_targets = [t.strip() for t in targets.split(",") if t.strip()] or None
        strategy.merge_on_export = form.toggle("strategy.merge_on_export", text.LORA_MERGE, strategy.merge_on_export)
    return strategy


def training_section(form: Form, training: TrainingConfig, task: str, strategy: str = "full",
                     model_source: str = "bundled") -> TrainingConfig:
    """Length of training, batch, learning-rate schedule; logging, checkpoints and device in an expander.

    Prompting trains nothing: only the seed (it draws the few-shot examples) and the device apply.
    """
    if strategy == PROMPT_STRATEGY:
        st.info(text.PROMPTING_NO_TRAINING, icon=":material/chat:")
        cols = st.columns(2)
        with cols[0]:
            training.seed = form.number("training.seed", text.SEED, training.seed)
        with cols[1]:
            from core.config import DEVICES

            training.device = form.select("training.device", text.DEVICE, DEVICES, training.device)
        return training
    mode = form.select(
        "training.max_steps", text.TRAIN_FOR, list(text.TRAIN_FOR_OPTIONS),
        "steps" if training.max_steps else ("auto" if training.epochs is None else "epochs"),
        format_func=_label(text.TRAIN_FOR_OPTIONS), radio=True, key_extra=("mode",),
    )
    cols = st.columns(3)
    with cols[0]:
        if mode == "steps":
            training.max_steps = form.number("training.max_steps", text.MAX_STEPS, training.max_steps or 100, step=10)
        elif mode == "epochs":
            from core.training.run_length import DEFAULT_EPOCHS

            epochs = training.epochs if training.epochs is not None else DEFAULT_EPOCHS
            training.epochs = form.number("training.epochs", text.EPOCHS, float(epochs), step=0.5)
            training.max_steps = 0
        else:  # the default rule picks the steps for the data (core.training.run_length)
            from core.training import run_length

            training.epochs, training.max_steps = None, 0
            st.caption(text.TRAIN_FOR_AUTO_NOTE.format(
                steps=run_length.MIN_STEPS, per_class=run_length.SAMPLES_PER_CLASS, epochs=run_length.MAX_EPOCHS,
                evaluations=run_length.EVALUATIONS, patience=run_length.PATIENCE))
    with cols[1]:
        training.batch_size = form.number("training.batch_size", text.BATCH_SIZE, training.batch_size)
    with cols[2]:
        from ui.shootout import learning_rate_field

        # Empty: the default for this task, strategy and model; or 'auto', a range test when the run starts.
        training.learning_rate = learning_rate_field(form, training.learning_rate, task, strategy, model_source)
    cols = st.columns(3)
    with cols[0]:
        training.lr_scheduler = form.select("training.lr_scheduler", text.SCHEDULER, SCHEDULERS, training.lr_scheduler)
    with cols[1]:
        training.warmup_ratio = form.number("training.warmup_ratio", text.WARMUP, float(training.warmup_ratio), step=0.05)
    with cols[2]:
        training.weight_decay = form.number(
            "training.weight_decay", text.WEIGHT_DECAY, float(training.weight_decay), step=0.01
        )
    with st.expander(text.TRAINING_ADVANCED):
        from core.training.run_length import EVALUATIONS, PATIENCE

        cols = st.columns(3)
        with cols[0]:
            training.eval_steps = form.optional_int("training.eval_steps", text.EVAL_STEPS, training.eval_steps, step=10,
                                                    placeholder=text.EVAL_STEPS_AUTO.format(evaluations=EVALUATIONS))
            training.logging_steps = form.number("training.logging_steps", text.LOGGING_STEPS, training.logging_steps)
            training.seed = form.number("training.seed", text.SEED, training.seed)
        with cols[1]:
            training.save_steps = form.number("training.save_steps", text.SAVE_STEPS, training.save_steps, step=10)
            training.save_total_limit = form.number("training.save_total_limit", text.SAVE_LIMIT, training.save_total_limit)
            training.gradient_accumulation_steps = form.number(
                "training.gradient_accumulation_steps", text.GRAD_ACCUM, training.gradient_accumulation_steps
            )
        with cols[2]:
            from core.config import DEVICES, PRECISIONS

            training.device = form.select("training.device", text.DEVICE, DEVICES, training.device)
            training.precision = form.select("training.precision", text.PRECISION, PRECISIONS, training.precision)
            if task == "mlm":
                training.mlm_probability = form.number(
                    "training.mlm_probability", text.MLM_PROBABILITY, float(training.mlm_probability), step=0.05
                )
        # Full-width rows: a toggle's label never wraps, and a third of the form cut this one to "Keep check…".
        training.auto_find_batch_size = form.toggle(
            "training.auto_find_batch_size", text.AUTO_BATCH, training.auto_find_batch_size
        )
        training.keep_checkpoints = form.toggle(
            "training.keep_checkpoints", text.KEEP_CHECKPOINTS, training.keep_checkpoints
        )
        cols = st.columns(2)
        with cols[0]:
            training.keep_model = form.select(
                "training.keep_model", text.KEEP_MODEL, list(text.KEEP_MODEL_OPTIONS), training.keep_model,
                format_func=_label(text.KEEP_MODEL_OPTIONS), radio=True,
            )
        with cols[1]:
            training.early_stopping_patience = form.optional_int(
                "training.early_stopping_patience", text.EARLY_STOPPING, training.early_stopping_patience,
                placeholder=text.EARLY_STOPPING_AUTO.format(patience=PATIENCE), min_value=0,
            )
        training.log_to = tracker_choice(form, training.log_to)
    return training


def tracker_choice(form: Form, chosen: list[str]) -> list[str]:
    """'Also log to': TensorBoard always (its writer is installed), MLflow where it is installed."""
    import importlib.util

    from core.config import TRACKERS, field_help

    offered = [name for name, package in TRACKERS.items() if importlib.util.find_spec(package) is not None]
    return form.multiselect("training.log_to", text.LOG_TO, offered, chosen, format_func=text.TRACKER_NAMES.get,
                            help=field_help("training.log_to") + " " + text.LOG_TO_HELP)


def summary_section(
    cfg: RunConfig, problems: list[TuneboardError], params: tuple | None, form: Form, hints: dict[int, str],
    facts: DataFacts | None = None,
) -> None:
    """Parameter count, time estimate, readiness (errors, or hints before the user touched a field) and Start."""
    st.subheader(text.SECTION_SUMMARY)
    st.caption(cfg.summary())
    trainable, total = params or (None, None)
    cols = st.columns(2)
    with cols[0]:
        st.metric(
            text.PARAMS_TRAINABLE, format_count(trainable),
            help=text.PARAMS_SHARE.format(share=trainable / total) if trainable is not None and total else None,
        )
    with cols[1]:
        st.metric(text.PARAMS_TOTAL, format_count(total))
    estimate_lines(cfg, problems, params, facts)
    for problem in problems:
        if id(problem) in hints:
            st.info(hints[id(problem)], icon=":material/info:")
        else:
            st.error(str(problem), icon=":material/error:")
    if not problems:
        st.success(text.CONFIG_OK, icon=":material/check_circle:")
    if st.button(text.START, type="primary", help=text.START_HELP, disabled=bool(problems),
                 width="stretch", key="tb_setup_start"):
        try:
            run_id = state.get_jobs().submit(cfg)
        except TuneboardError as err:
            form.show_error(err)
            st.error(str(err), icon=":material/error:")
        else:
            state.select_run(run_id)
            st.switch_page("pages/train.py", query_params={"run": run_id})


def config_file_section(cfg: RunConfig) -> None:
    """Download the config as YAML, load one, or go back to the defaults."""
    st.subheader(text.SECTION_CONFIG_FILE)
    st.download_button(
        text.SAVE_YAML, cfg.to_yaml(), file_name=f"{cfg.name or 'tuneboard'}.yaml", mime="application/x-yaml",
        on_click="ignore", icon=":material/download:", width="stretch",
    )
    upload = st.file_uploader(text.LOAD_YAML, type=["yaml", "yml"], help=text.LOAD_YAML_HELP, key=YAML_UPLOAD_KEY)
    if upload is not None and st.session_state.get(YAML_LOADED_KEY) != upload.file_id:
        try:
            loaded = RunConfig.from_yaml(upload.getvalue().decode("utf-8"))
        except UnicodeDecodeError:
            st.error(text.LOAD_YAML_NOT_TEXT.format(name=upload.name), icon=":material/error:")
        except ConfigError as err:
            st.error(str(err), icon=":material/error:")
        else:
            st.session_state[YAML_LOADED_KEY] = upload.file_id
            state.load_config(loaded)
            mark_loaded(state.form_generation())  # its values were chosen: show their errors at once
            st.toast(text.LOAD_YAML_OK.format(name=upload.name))
            st.rerun()
    if st.button(text.RESET_DEFAULTS, key="tb_setup_reset"):
        state.load_config(RunConfig())
        st.rerun()


# ---- helpers -------------------------------------------------------------------------------

def _label(names: dict[str, str]):
    return lambda value: names.get(value, str(value))


def finished_run_input(form: Form, source: str, task: str) -> str:
    """A completed run of this task whose fine-tuned model becomes the base ('run:<id>')."""
    runs = [r for r in state.get_jobs().list_runs() if r.status == "completed" and r.task == task]
    options = [f"run:{r.run_id}" for r in runs]
    if source.startswith("run:") and source not in options:
        options.insert(0, source)  # kept, so preflight says what is wrong with it
    if not options:
        st.info(text.MODEL_RUN_NONE.format(task=text.TASK_NAMES.get(task, task)))
        form.slot("model.source")
        return source
    names = {f"run:{r.run_id}": r.name for r in runs}
    chosen = form.select(
        "model.source", text.MODEL_RUN, options, source if source in options else options[0],
        format_func=lambda o: f"{names[o]} · {o[4:]}" if names.get(o) else o[4:], key_extra=("run", task),
    )
    st.caption(text.MODEL_RUN_NOTE)
    return chosen


def _model_kind(source: str, popular: list[dict]) -> str:
    from core.models.catalogue import bundled_model

    if bundled_model(source) is not None:
        return "bundled"
    if source.startswith("run:"):
        return "run"
    if source in {m["id"] for m in popular}:
        return "popular"
    if source.startswith(("/", ".", "~")) or Path(source).expanduser().is_dir():
        return "local"
    return "hub"


def _blank(cfg: RunConfig, field: str | None) -> bool:
    """Whether the config value at a dotted field path is still empty (None or blank text)."""
    value: object = cfg
    for part in (field or "").split("."):
        if not part or not hasattr(value, part):
            return False
        value = getattr(value, part)
    return value is None or (isinstance(value, str) and not value.strip())


def _hint(err: TuneboardError, cfg: RunConfig) -> str:
    """A neutral next step for a required value the user has not entered yet."""
    if err.field == "data.path":
        return text.DATA_PATH_HINTS.get(cfg.data.source, str(err))
    return text.FIELD_HINTS.get(err.field or "", str(err))


def _at(err: TuneboardError, field: str) -> TuneboardError:
    """The error, attached to a widget's field when it names none."""
    if not err.field:
        err.field = field
    return err


def _check(
    cfg: RunConfig, found: list[TuneboardError], facts: DataFacts | None
) -> tuple[list[TuneboardError], tuple | None]:
    """Every problem of the config (values, data, model source, task support) and the param count."""
    problems = list(found)
    for err in cfg.problems():
        if not any(p.field == err.field for p in problems):
            problems.append(err)
    if facts is not None:
        # What the data itself shows (one class, fewer rows than a batch), where the value is valid.
        for err in data_problems(facts, cfg):
            if not any(p.field == err.field for p in problems):
                problems.append(err)
    if any((p.field or "").startswith(("model.", "strategy.", "task")) for p in problems):
        return problems, None
    found = _model_problem(cfg.model.source)
    if found is not None:
        problems.insert(0, ModelError(found[0], field=found[1] or "model.source"))
        return problems, None
    try:
        params = _estimate_params(cfg.task, _as_yaml(cfg.model), _as_yaml(cfg.strategy))
    except TuneboardError as err:
        problems.insert(0, _at(err, "model.source"))
        return problems, None
    return problems, params


# ---- the page ------------------------------------------------------------------------------

router.require_router()
st.title(text.SETUP_TITLE)
st.caption(text.SETUP_CAPTION)

cfg = state.get_config()
form = Form(state.form_generation())
main, side = st.columns([3, 2], gap="large")
with main:
    with st.container(border=True):
        previous_task = cfg.task
        cfg.task, cfg.name = task_section(form, cfg)
        follow_task(form, cfg, previous_task)
    with st.container(border=True):
        st.subheader(text.SECTION_MODEL)
        cfg.model = model_section(form, cfg.model, cfg.task)
    with st.container(border=True):
        st.subheader(text.SECTION_DATA)
        cfg.data, found, facts = data_section(form, cfg.data, cfg.task)
    with st.container(border=True):
        st.subheader(text.SECTION_STRATEGY)
        cfg.strategy = strategy_section(form, cfg.strategy, cfg.task)
    with st.container(border=True):
        st.subheader(text.SECTION_TRAINING)
        cfg.training = training_section(form, cfg.training, cfg.task, cfg.strategy.name, cfg.model.source)
    with st.container(border=True):
        st.subheader(text.SECTION_PROBES)
        cfg.probes = probes_section(form, cfg)

state.set_config(cfg)
with st.spinner(text.SETUP_CHECKING, show_time=True):  # a strategy other than full may import torch here
    problems, params = _check(cfg, found, facts)
# A required value not entered yet, under a widget the user has not touched: guide, do not scold.
pending = {id(p): _hint(p, cfg) for p in problems if _blank(cfg, p.field) and not form.touched(p.field)}
with side:
    # First in a sticky column (ui.layout.sticky_column), so the estimate, the problems and Start
    # stay in view while the user scrolls through the form on the left.
    with st.container(border=True, key=SUMMARY_KEY):
        summary_section(cfg, problems, params, form, pending, facts)
    with st.container(border=True):
        demo_section()
    with st.container(border=True):  # strategy shoot-out and learning-rate finder (ui.shootout)
        from ui.shootout import compare_strategies_panel, learning_rate_panel

        if cfg.strategy.name != PROMPT_STRATEGY:  # no training: no learning rate to suggest
            learning_rate_panel(cfg, ready=not problems)
        compare_strategies_panel(cfg, ready=not problems)
    with st.container(border=True):
        config_file_section(cfg)
layout.sticky_column(SUMMARY_KEY)
for problem in problems:
    if id(problem) in pending:
        form.show_hint(problem, pending[id(problem)])
    else:
        form.show_error(problem)
