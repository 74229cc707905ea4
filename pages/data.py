"""Data: preview the Setup dataset, build a signal tree, run the integrity checks, keep the result.

Everything edited here is the tab's RunConfig (`data.text_column`, `data.label_column`,
`data.curation.*`), so a run started from Setup curates the same way. "Use this as the training
set" saves the kept rows as a named dataset and points Setup at it.
"""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import streamlit as st
import yaml

from core.config import RunConfig
from core.errors import TuneboardError
from core.present import text
from ui import router, signals, state
from ui.columns import pick_columns
from ui.tables import BOXED_WIDTH_PX, fitted_columns
from ui.widgets import show_error

TREE_KEY = "tb_signal_tree"
RESULT_KEY = "tb_curation"
SAMPLE_ROWS = 25
KIND_ORDER = tuple(text.SIGNAL_KINDS)
MAX_DEPTH = 2
MAX_LABEL_VALUES = 50  # values offered by the label signal: a free-text column has thousands


# ---- cached computations ---------------------------------------------------------------------

@st.cache_data(show_spinner=False, max_entries=4)
def _frame(data_yaml: str, mtime_ns: int) -> pd.DataFrame:
    """The raw rows of the Setup dataset, whatever its columns (mtime_ns: the file's, so an edited file reloads)."""
    from core.data.rows import load_rows

    return load_rows(RunConfig.from_dict({"data": yaml.safe_load(data_yaml)}).data)


@st.cache_data(show_spinner=False, max_entries=32)
def _counts(frame_key: str, signal_yaml: str, text_column: str, label_column: str, _frame: pd.DataFrame) -> dict:
    """Rows passing each node (path -> count); keyed on the data and the tree, not the frame's bytes."""
    from core.data.signal_eval import signal_counts

    return signal_counts(_frame, yaml.safe_load(signal_yaml), text_column=text_column, label_column=label_column or None)


@st.cache_data(show_spinner=False)
def _word_list_names() -> list[str]:
    from core.data.lexicon import word_lists

    return list(word_lists())


def _leaf_problem(leaf: dict[str, Any], path: str = "0") -> str | None:
    from core.data.signals import signal_from_dict

    try:
        signal_from_dict(leaf, path)
    except TuneboardError as err:
        return str(err)
    return None


def _frame_key(cfg: RunConfig) -> tuple[str, int]:
    """The dataset part of the config as YAML, and the data file's mtime."""
    from pathlib import Path

    data = copy.deepcopy(cfg.data)
    data.curation = type(data.curation)()  # curation does not change the raw rows, nor do the columns picked
    data.text_column, data.label_column = "text", "label"
    path = Path(data.path).expanduser() if data.source == "file" and data.path else None
    mtime = path.stat().st_mtime_ns if path is not None and path.is_file() else 0
    return yaml.safe_dump(RunConfig(data=data).to_dict()["data"], sort_keys=True), mtime


# ---- the signal tree (UI state lives in session_state; widgets write into it) ----------------

def tree() -> dict:
    """The tab's UI tree, rebuilt from the config when a new config was loaded."""
    stored = st.session_state.get(TREE_KEY)
    if stored is None or stored["gen"] != state.form_generation():
        stored = {"gen": state.form_generation(), "root": signals.from_signal(state.get_config().data.curation.signal)}
        st.session_state[TREE_KEY] = stored
    return stored["root"]


def _add_leaf(group_id: str) -> None:
    group, _ = signals.find(tree(), group_id)
    if group is not None:
        group["children"].append(signals.new_leaf(st.session_state[f"sig:{group_id}:newkind"]))


def _add_group(group_id: str) -> None:
    group, _ = signals.find(tree(), group_id)
    if group is not None:
        group["children"].append(signals.new_group("or" if group["op"] == "and" else "and"))


def _remove(node_id: str) -> None:
    signals.remove(tree(), node_id)


def _load_example() -> None:
    st.session_state[TREE_KEY] = {"gen": state.form_generation(), "root": signals.from_signal(signals.EXAMPLE_SIGNAL)}


def _clear_tree() -> None:
    st.session_state[TREE_KEY] = {"gen": state.form_generation(), "root": signals.new_group()}


def group_block(node: dict, slots: dict, frame: pd.DataFrame, cfg: RunConfig, depth: int = 0) -> None:
    """An AND/OR group: its operator, NOT, pass count, children, and buttons to add more."""
    nid = node["id"]
    with st.container(border=True):
        head = st.columns([3, 1.3, 3, 1.2], vertical_alignment="center")
        ops = list(text.SIGNAL_OPS)
        node["op"] = head[0].selectbox(text.SIGNAL_COMBINE, ops, index=ops.index(node["op"]),
                                       format_func=text.SIGNAL_OPS.get, key=f"sig:{nid}:op")
        node["negate"] = head[1].toggle(text.SIGNAL_NOT, value=node["negate"], help=text.SIGNAL_NOT_HELP,
                                        key=f"sig:{nid}:neg")
        slots[nid] = head[2].empty()
        if depth:
            head[3].button(text.SIGNAL_REMOVE, icon=":material/delete:", on_click=_remove, args=(nid,),
                           key=f"sig:{nid}:rm")
        for child in node["children"]:
            if "op" in child:
                group_block(child, slots, frame, cfg, depth + 1)
            else:
                leaf_row(child, slots, frame, cfg)
        add = st.container(horizontal=True, vertical_alignment="bottom")
        add.selectbox(text.SIGNAL_NEW_KIND, KIND_ORDER, format_func=text.SIGNAL_KINDS.get, key=f"sig:{nid}:newkind",
                      width=260)
        add.button(text.SIGNAL_ADD, icon=":material/add:", on_click=_add_leaf, args=(nid,), key=f"sig:{nid}:add")
        if depth < MAX_DEPTH:
            add.button(text.SIGNAL_ADD_GROUP, icon=":material/account_tree:", on_click=_add_group, args=(nid,),
                       key=f"sig:{nid}:addgroup")


def leaf_row(node: dict, slots: dict, frame: pd.DataFrame, cfg: RunConfig) -> None:
    """One signal: its settings, NOT, pass count and a remove button."""
    nid = node["id"]
    with st.container(border=True):
        head = st.columns([3, 1.3, 3, 1.2], vertical_alignment="center")
        head[0].markdown(f"**{text.SIGNAL_KINDS.get(node['kind'], node['kind'])}**")
        node["negate"] = head[1].toggle(text.SIGNAL_NOT, value=node["negate"], help=text.SIGNAL_NOT_HELP,
                                        key=f"sig:{nid}:neg")
        slots[nid] = head[2].empty()
        head[3].button(text.SIGNAL_REMOVE, icon=":material/delete:", on_click=_remove, args=(nid,),
                       key=f"sig:{nid}:rm")
        leaf_settings(node, frame, cfg)


def leaf_settings(node: dict, frame: pd.DataFrame, cfg: RunConfig) -> None:
    """The settings widgets of one signal kind; values are written back into the node."""
    nid, kind = node["id"], node["kind"]
    cols = st.columns(3)
    if kind == "keywords":
        node["words"] = signals.parse_list(cols[0].text_input(
            text.SIGNAL_WORDS, ", ".join(node.get("words") or []), key=f"sig:{nid}:words"))
        modes = list(text.SIGNAL_MATCH_OPTIONS)
        node["mode"] = cols[1].selectbox(text.SIGNAL_MATCH, modes, index=modes.index(node.get("mode", "any")),
                                         format_func=text.SIGNAL_MATCH_OPTIONS.get, key=f"sig:{nid}:mode")
    elif kind == "word_list":
        names = [*_word_list_names(), text.SIGNAL_CUSTOM_LIST]
        current = node.get("list") if node.get("list") in names else text.SIGNAL_CUSTOM_LIST
        chosen = cols[0].selectbox(text.SIGNAL_LIST, names, index=names.index(current), key=f"sig:{nid}:list")
        if chosen == text.SIGNAL_CUSTOM_LIST:
            node.pop("list", None)
            node["words"] = signals.parse_list(cols[1].text_input(
                text.SIGNAL_WORDS, ", ".join(node.get("words") or []), key=f"sig:{nid}:words"))
        else:
            node.pop("words", None)
            node["list"] = chosen
    elif kind == "regex":
        node["pattern"] = cols[0].text_input(text.SIGNAL_PATTERN, node.get("pattern", ""), key=f"sig:{nid}:pattern")
    elif kind == "length":
        node["min"] = int(cols[0].number_input(text.SIGNAL_MIN, value=int(node.get("min") or 0), step=1,
                                               key=f"sig:{nid}:min")) or None
        node["max"] = int(cols[1].number_input(text.SIGNAL_MAX, value=int(node.get("max") or 0), step=1,
                                               key=f"sig:{nid}:max")) or None
        units = ["words", "chars"]
        node["unit"] = cols[2].selectbox(text.SIGNAL_UNIT, units, index=units.index(node.get("unit", "words"))
                                         if node.get("unit") in units else 0, key=f"sig:{nid}:unit")
    elif kind == "label":
        label_settings(node, cols, frame, cfg)
    elif kind == "sentiment":
        polarities = ["positive", "negative"]
        node["polarity"] = cols[0].selectbox(text.SIGNAL_POLARITY, polarities,
                                             index=polarities.index(node.get("polarity", "positive")),
                                             key=f"sig:{nid}:polarity")
        methods = list(text.SIGNAL_METHODS)
        node["method"] = cols[1].selectbox(text.SIGNAL_METHOD, methods,
                                           index=methods.index(node.get("method", "lexicon")),
                                           format_func=text.SIGNAL_METHODS.get, key=f"sig:{nid}:method")
        if node["method"] == "model":
            node["model"] = model_picker(node, cols[2], classifiers_only=True)
        else:
            node.pop("method", None)
            node.pop("model", None)
    elif kind == "confidence":
        node["model"] = model_picker(node, cols[0], classifiers_only=False)
        node["below"] = float(cols[1].number_input(text.SIGNAL_BELOW, value=float(node.get("below", 0.6)),
                                                   step=0.05, key=f"sig:{nid}:below"))


def label_settings(node: dict, cols: list, frame: pd.DataFrame, cfg: RunConfig) -> None:
    """"Label is one of": a column of the data, and some of its values offered with their counts."""
    nid = node["id"]
    columns = [c for c in frame.columns if c != cfg.data.text_column] or list(frame.columns)
    current = node.get("column") or cfg.data.label_column
    column = cols[0].selectbox(text.SIGNAL_COLUMN, columns, index=columns.index(current) if current in columns else 0,
                               key=f"sig:{nid}:column")
    if column == cfg.data.label_column:
        node.pop("column", None)  # follows the label column if the mapping changes
    else:
        node["column"] = column
    counts = _value_counts(frame, column)
    chosen = [str(v) for v in node.get("values") or []]
    options = list(dict.fromkeys([*counts, *chosen]))
    node["values"] = cols[1].multiselect(
        text.SIGNAL_VALUES, options, default=[v for v in chosen if v in options], help=text.SIGNAL_VALUES_HELP,
        format_func=lambda v: text.SIGNAL_VALUE_COUNT.format(value=v, count=counts.get(v, 0)),
        key=f"sig:{nid}:values:{column}",
    )


def _value_counts(frame: pd.DataFrame, column: str, limit: int = MAX_LABEL_VALUES) -> dict[str, int]:
    """The column's commonest values as the label signal compares them (1, "1" and 1.0 alike)."""
    from core.data.cells import canonical_labels

    values = canonical_labels(frame[column])
    counts = values[values != ""].value_counts().head(limit)
    return {str(value): int(count) for value, count in counts.items()}


def model_picker(node: dict, col, *, classifiers_only: bool) -> str:
    """A finished run with a saved model, picked from a list, or a typed model folder."""
    nid, current = node["id"], node.get("model") or ""
    runs = [r for r in state.get_jobs().list_runs()
            if r.status == "completed" and (r.task == "classification" or not classifiers_only)]
    labels = {r.run_id: text.SIGNAL_MODEL_RUN.format(run_id=r.run_id, task=r.task, strategy=r.strategy) for r in runs}
    options = [*labels, text.SIGNAL_MODEL_OTHER]
    index = options.index(current) if current in labels else (len(options) - 1 if current else 0)
    chosen = col.selectbox(text.SIGNAL_MODEL, options, index=index, format_func=lambda o: labels.get(o, o),
                           help=text.SIGNAL_MODEL_HELP, key=f"sig:{nid}:modelrun")
    if chosen != text.SIGNAL_MODEL_OTHER:
        return chosen
    return col.text_input(text.SIGNAL_MODEL_FOLDER, current if current not in labels else "", key=f"sig:{nid}:model")


def fill_counts(root: dict, slots: dict, frame: pd.DataFrame, frame_key: str, cfg: RunConfig) -> dict | None:
    """Evaluate the tree; write each node's pass count (or why a leaf is ignored) into its slot."""
    problems: dict[str, str] = {}

    def valid(leaf: dict) -> bool:
        return _leaf_problem(leaf) is None

    signal, paths = signals.to_signal(root, valid)
    for node_id in slots:
        node, _ = signals.find(root, node_id)
        if node is not None and "kind" in node:
            problem = _leaf_problem(signals.leaf_signal(node), signals.path_of(root, node_id) or "0")
            if problem:
                problems[node_id] = problem
    for node_id, problem in problems.items():
        slots[node_id].caption(text.SIGNAL_INVALID.format(error=problem))
    if signal is None:
        return None
    label = cfg.data.label_column if cfg.data.label_column in frame.columns else None
    try:
        counts = _counts(frame_key, yaml.safe_dump(signal, sort_keys=True), cfg.data.text_column, label or "", frame)
    except TuneboardError as err:
        st.error(f"{text.SIGNAL_COUNT_FAILED} {err}", icon=":material/error:")
        return signal
    for node_id, path in paths.items():
        if path in counts:
            slots[node_id].markdown(text.SIGNAL_PASS.format(count=counts[path], total=len(frame)))
    return signal


# ---- sections --------------------------------------------------------------------------------

def overview(frame: pd.DataFrame, cfg: RunConfig) -> None:
    """Size, columns, empty texts and a preview."""
    from core.data.cells import null_text_mask

    cols = st.columns(3)
    cols[0].metric(text.DATA_ROWS, f"{len(frame):,}")
    cols[1].metric(text.DATA_COLUMNS, len(frame.columns))
    cols[2].metric(text.DATA_EMPTY_TEXT, f"{int(null_text_mask(frame[cfg.data.text_column]).sum()):,}")
    with st.expander(text.DATA_PREVIEW, expanded=True):
        shown = frame.head(50)
        st.dataframe(shown, hide_index=True, height=260,
                     column_config=fitted_columns(shown, flexible=[str(c) for c in shown.columns]))


def column_mapping(frame: pd.DataFrame, cfg: RunConfig) -> None:
    """Text (and label) column, offered from the data's own columns; written to the tab's config."""
    from core.config import field_help

    pick_columns(cfg.data, frame, state.form_generation())
    columns = [str(c) for c in frame.columns]
    cols = st.columns(2)
    text_index = columns.index(cfg.data.text_column) if cfg.data.text_column in columns else 0
    cfg.data.text_column = cols[0].selectbox(text.TEXT_COLUMN, columns, index=text_index,
                                             help=field_help("data.text_column"), key="tb_data_text_col")
    if cfg.task == "classification":
        label_index = columns.index(cfg.data.label_column) if cfg.data.label_column in columns else 0
        cfg.data.label_column = cols[1].selectbox(text.LABEL_COLUMN, columns, index=label_index,
                                                  help=field_help("data.label_column"), key="tb_data_label_col")


def integrity_options(cfg: RunConfig) -> None:
    """Duplicates, normalisation, too-long action and remove-or-flag; written to the tab's config."""
    from core.config import field_help

    cur = cfg.data.curation
    st.caption(text.INTEGRITY_CAPTION)
    # The two toggles stack in a wider first column: a toggle's label never wraps, and a quarter of the page
    # cut "Ignore case and whitespace when comparing" short.
    cols = st.columns([2, 1.3, 1])
    cur.drop_duplicates = cols[0].toggle(text.DUPLICATES, value=cur.drop_duplicates,
                                         help=field_help("data.curation.drop_duplicates"), key="tb_data_dups")
    cur.normalise_duplicates = cols[0].toggle(text.NORMALISE, value=cur.normalise_duplicates,
                                              disabled=not cur.drop_duplicates,
                                              help=field_help("data.curation.normalise_duplicates"),
                                              key="tb_data_norm")
    long_options = list(text.TOO_LONG_OPTIONS)
    cur.too_long = cols[1].selectbox(text.TOO_LONG, long_options, index=long_options.index(cur.too_long)
                                     if cur.too_long in long_options else 0, format_func=text.TOO_LONG_OPTIONS.get,
                                     help=field_help("data.curation.too_long"), key="tb_data_long")
    actions = list(text.CHECK_ACTION_OPTIONS)
    cur.check_action = cols[2].radio(text.CHECK_ACTION, actions, index=actions.index(cur.check_action)
                                     if cur.check_action in actions else 0,
                                     format_func=text.CHECK_ACTION_OPTIONS.get,
                                     help=field_help("data.curation.check_action"), key="tb_data_action")


def report_table(report: dict) -> pd.DataFrame:
    """One row per check: name, rows failing, action, why, examples."""
    rows = []
    for entry in report.get("checks", []):
        examples = [_example(e.get("text")) for e in entry.get("examples") or []][:3]
        rows.append({
            text.REPORT_CHECK: text.CHECK_NAMES.get(entry.get("check"), entry.get("check")),
            text.REPORT_COUNT: int(entry.get("failed", 0)),
            text.REPORT_ACTION: entry.get("action", ""),
            text.REPORT_DETAIL: entry.get("detail", ""),
            text.REPORT_EXAMPLES: " | ".join(examples),
        })
    return pd.DataFrame(rows)


def result_section(result: Any) -> None:
    """Counts, the integrity report and samples of kept and removed rows."""
    report = result.report
    cols = st.columns(4)
    cols[0].metric(text.ROWS_IN, f"{report['rows_in']:,}")
    cols[1].metric(text.ROWS_KEPT, f"{report['rows_out']:,}",
                   delta=text.ROWS_KEPT_SHARE.format(share=report["rows_out"] / max(report["rows_in"], 1)), delta_color="off",
                   delta_arrow="off")
    cols[2].metric(text.ROWS_REMOVED, f"{len(result.removed):,}")
    cols[3].metric(text.ROWS_FLAGGED, f"{report.get('flagged', 0):,}")
    st.markdown(f"**{text.REPORT_TABLE}**")
    checks = report_table(report)
    st.dataframe(checks, hide_index=True, width="stretch", column_config=fitted_columns(
        checks, BOXED_WIDTH_PX, flexible=[text.REPORT_DETAIL, text.REPORT_EXAMPLES]))
    kept_tab, removed_tab = st.tabs([text.SAMPLE_KEPT, text.SAMPLE_REMOVED])
    with kept_tab:
        if len(result.kept):
            sample_table(result.kept)
        else:
            st.warning(text.NOTHING_KEPT, icon=":material/warning:")
    with removed_tab:
        if len(result.removed):
            sample_table(result.removed)
        else:
            st.caption(text.NOTHING_REMOVED)


def keep_section(result: Any, cfg: RunConfig) -> None:
    """Save the kept rows as a named dataset, and optionally train on it."""
    from core.data.curation import save_curated

    default = f"{cfg.data.source}-curated" if cfg.data.source != "curated" else f"{cfg.data.path}-v2"
    cols = st.columns([3, 1, 2], vertical_alignment="bottom")
    name = cols[0].text_input(text.DATASET_NAME, default, help=text.DATASET_NAME_HELP, key="tb_data_name").strip()
    save = cols[1].button(text.SAVE_DATASET, icon=":material/save:", key="tb_data_save", width="stretch")
    use = cols[2].button(text.USE_AS_TRAINING, type="primary", icon=":material/check:", key="tb_data_use",
                         width="stretch", disabled=not len(result.kept))
    if save or use:
        try:
            folder = save_curated(result, name)
        except TuneboardError as err:
            show_error(err)
            return
        state.curated_datasets.clear()
        if use:
            cfg.data.source, cfg.data.path = "curated", name
            cfg.data.curation.signal = None  # the saved rows already passed it
            state.load_config(cfg)
            st.success(text.USING_AS_TRAINING.format(name=name, rows=len(result.kept)), icon=":material/check_circle:")
            st.page_link("pages/setup.py", label=text.OPEN_SETUP_PAGE, icon=":material/tune:")
        else:
            st.success(text.SAVED_DATASET.format(rows=len(result.kept), name=name, path=folder),
                       icon=":material/check_circle:")


def _example(value: Any) -> str:
    return text.MISSING_TEXT if value is None or (isinstance(value, float) and value != value) else str(value)


def sample_table(frame: pd.DataFrame) -> None:
    """A sample of the rows, every column given room for its short values (labels, flags, reasons)."""
    sample = _sample(frame)
    st.dataframe(sample, hide_index=True,
                 column_config=fitted_columns(sample, BOXED_WIDTH_PX, flexible=[str(c) for c in sample.columns]))


def _sample(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sample(n=min(SAMPLE_ROWS, len(frame)), random_state=0) if len(frame) > SAMPLE_ROWS else frame


def _source_label(cfg: RunConfig) -> str:
    name = text.DATA_SOURCES.get(cfg.data.source, cfg.data.source)
    if cfg.data.source == "synthetic":
        kind = text.SYNTH_KINDS.get(cfg.data.synthetic.kind, cfg.data.synthetic.kind)
        return f"{name}: {kind} ({cfg.data.synthetic.rows:,} rows, seed {cfg.data.synthetic.seed})"
    return f"{name}: {cfg.data.path}"


# ---- the page --------------------------------------------------------------------------------

router.require_router()
st.title(text.DATA_TITLE)
st.caption(text.DATA_CAPTION)

cfg = state.get_config()
st.markdown(text.DATA_FROM_SETUP.format(source=_source_label(cfg)))
data_yaml, mtime = _frame_key(cfg)
try:
    with st.spinner():
        frame = _frame(data_yaml, mtime)
except TuneboardError as err:
    st.error(text.DATA_LOAD_FAILED, icon=":material/error:")
    show_error(err)
    st.page_link("pages/setup.py", label=text.OPEN_SETUP_PAGE, icon=":material/tune:")
    st.stop()

overview_box = st.container()  # drawn after the mapping: it counts empty texts in the chosen column
with st.container(border=True):
    st.subheader(text.SECTION_COLUMNS)
    column_mapping(frame, cfg)
with overview_box:
    overview(frame, cfg)

with st.container(border=True):
    st.subheader(text.SECTION_SIGNALS)
    st.caption(text.SIGNALS_CAPTION)
    buttons = st.container(horizontal=True)
    buttons.button(text.SIGNAL_EXAMPLE, icon=":material/auto_awesome:", on_click=_load_example, key="tb_data_example")
    buttons.button(text.SIGNAL_CLEAR, icon=":material/clear_all:", on_click=_clear_tree, key="tb_data_clear")
    root, slots = tree(), {}
    group_block(root, slots, frame, cfg)
    frame_key = f"{data_yaml}|{mtime}"
    cfg.data.curation.signal = fill_counts(root, slots, frame, frame_key, cfg)
    if cfg.data.curation.signal is None:
        st.caption(text.SIGNALS_EMPTY)

with st.container(border=True):
    st.subheader(text.SECTION_INTEGRITY)
    integrity_options(cfg)

state.set_config(cfg)
settings_key = (frame_key, cfg.task, yaml.safe_dump(RunConfig(data=cfg.data).to_dict()["data"], sort_keys=True))
if st.button(text.CURATE, type="primary", icon=":material/filter_alt:", help=text.CURATE_HELP, key="tb_data_curate"):
    from core.data.integrity import curate_for_model

    try:
        with st.spinner():
            # With the model's tokenizer (loaded in core, no weights), so the too-long check runs.
            result = curate_for_model(frame, cfg)
    except TuneboardError as err:
        show_error(err)
    else:
        st.session_state[RESULT_KEY] = (settings_key, result)

stored = st.session_state.get(RESULT_KEY)
with st.container(border=True):
    st.subheader(text.SECTION_RESULT)
    if stored is None:
        st.caption(text.CURATE_FIRST)
    else:
        if stored[0] != settings_key:
            st.info(text.CURATE_STALE, icon=":material/info:")
        result_section(stored[1])
        keep_section(stored[1], cfg)
