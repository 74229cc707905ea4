"""AppTest: the Data page (preview, signal tree with counts, integrity checks, curate, keep)."""

from __future__ import annotations

from core.config import RunConfig
from core.data.curation import list_curated
from core.present import text
from tests.support import open_page, texts

PAGE = "pages/data.py"


def node_ids(at, suffix: str) -> list[str]:
    """Widget keys of the signal tree ending in `suffix` (':op', ':list', ...), in page order."""
    keys = []
    for kind in ("selectbox", "text_input", "toggle", "button", "number_input"):
        for widget in at.get(kind):
            key = getattr(widget, "key", None) or ""
            if key.startswith("sig:") and key.endswith(suffix):
                keys.append(key)
    return keys


def test_preview_and_empty_tree(jobs):
    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[text.DATA_ROWS] == "2,000" and metrics[text.DATA_EMPTY_TEXT] == "100"
    assert text.SIGNALS_EMPTY in texts(at.caption)
    assert text.CURATE_FIRST in texts(at.caption)


def test_seed_scenario_counts_curate_and_use_as_training(jobs, isolated_runs):
    at = open_page(PAGE)
    at.button(key="tb_data_example").click().run()
    assert not at.exception
    counts = [m for m in texts(at.markdown) if m.endswith("rows pass")]
    assert len(counts) == 4  # the AND root and its three signals
    root = int(counts[0].split(" of ")[0].replace(",", ""))
    assert 0 < root < min(int(c.split(" of ")[0].replace(",", "")) for c in counts[1:]) + 1
    # The tree is in the tab's config (so a run started from Setup curates the same way).
    signal = at.session_state["tb_config"].data.curation.signal
    assert signal["op"] == "and" and len(signal["children"]) == 3

    at.button(key="tb_data_curate").click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    kept = int(metrics[text.ROWS_KEPT].replace(",", ""))
    assert 0 < kept < 2000
    report = at.dataframe[-3].value  # report table, then the kept and removed samples
    checks = dict(zip(report[text.REPORT_CHECK], report[text.REPORT_COUNT], strict=True))
    assert checks[text.CHECK_NAMES["null_text"]] == 100
    assert checks[text.CHECK_NAMES["signal"]] > 0
    # The too-long check runs with the configured model's tokenizer instead of being skipped.
    actions = dict(zip(report[text.REPORT_CHECK], report[text.REPORT_ACTION], strict=True))
    assert actions[text.CHECK_NAMES["too_long"]] == "truncated"
    kept_sample = at.dataframe[-2].value
    assert set(kept_sample["sentiment"]) == {"positive"} and set(kept_sample["brand"]) == {"Nike"}

    at.text_input(key="tb_data_name").set_value("nike-positive")
    at.button(key="tb_data_use").click().run()
    assert not at.exception
    assert any("nike-positive" in s for s in texts(at.success))
    cfg = at.session_state["tb_config"]
    assert (cfg.data.source, cfg.data.path, cfg.data.curation.signal) == ("curated", "nike-positive", None)
    saved = {d["name"]: d for d in list_curated()}
    assert saved["nike-positive"]["rows"] == kept


def test_add_negate_and_remove_signals(jobs):
    at = open_page(PAGE)
    root_kind = node_ids(at, ":newkind")[0]
    at.selectbox(key=root_kind).set_value("keywords").run()
    at.button(key=root_kind.replace(":newkind", ":add")).click().run()
    words = node_ids(at, ":words")[0]
    # An empty keyword list is incomplete: it is ignored with a note, not an exception.
    assert any("Incomplete" in c for c in texts(at.caption))
    at.text_input(key=words).set_value("cheap, flimsy").run()
    leaf_not = [k for k in node_ids(at, ":neg") if k.split(":")[1] == words.split(":")[1]][0]
    at.toggle(key=leaf_not).set_value(True).run()
    signal = at.session_state["tb_config"].data.curation.signal
    assert signal == {"op": "and", "children": [{"op": "not", "child": {"kind": "keywords", "words": ["cheap", "flimsy"], "mode": "any"}}]}
    at.button(key=words.replace(":words", ":rm")).click().run()
    assert at.session_state["tb_config"].data.curation.signal is None
    assert not at.exception


def test_flagging_keeps_rows(jobs):
    at = open_page(PAGE)
    at.radio(key="tb_data_action").set_value("flag").run()
    at.button(key="tb_data_curate").click().run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[text.ROWS_FLAGGED] != "0"
    assert at.session_state["tb_config"].data.curation.check_action == "flag"


def test_a_bad_dataset_name_is_refused(jobs):
    at = open_page(PAGE)
    at.button(key="tb_data_curate").click().run()
    at.text_input(key="tb_data_name").set_value("../escape")
    at.button(key="tb_data_save").click().run()
    assert any("not a valid dataset name" in e for e in texts(at.error))
    assert not at.exception


def test_unreadable_setup_data_is_explained(jobs, isolated_runs):
    at = open_page("pages/setup.py")
    cfg = RunConfig()
    cfg.data.source, cfg.data.path = "file", str(isolated_runs.parent / "missing.csv")
    at.session_state["tb_config"] = cfg
    at.switch_page(PAGE).run()
    assert text.DATA_LOAD_FAILED in texts(at.error)
    assert not at.exception


def test_columns_are_found_in_a_file_without_a_text_column(jobs, isolated_runs):
    data = isolated_runs.parent / "reviews.csv"
    rows = "\n".join(f"{i},Review {i} of the Nike shoes,{'positive' if i % 2 else 'negative'}" for i in range(30))
    data.write_text("id,review,sentiment\n" + rows + "\n")
    at = open_page("pages/setup.py")
    cfg = RunConfig(task="classification")
    cfg.data.source, cfg.data.path = "file", str(data)
    at.session_state["tb_config"] = cfg
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert text.DATA_LOAD_FAILED not in texts(at.error)
    assert at.selectbox(key="tb_data_text_col").value == "review"
    assert at.selectbox(key="tb_data_label_col").value == "sentiment"
    assert at.selectbox(key="tb_data_text_col").options == ["id", "review", "sentiment"]
    # The user's choice sticks across reruns and carries back to Setup.
    at.selectbox(key="tb_data_label_col").set_value("id").run()
    at.run()
    assert at.selectbox(key="tb_data_label_col").value == "id"
    assert at.session_state["tb_config"].data.label_column == "id"


def _add_leaf(at, kind: str) -> str:
    """Add a leaf of `kind` to the root group; returns its node id."""
    root_kind = node_ids(at, ":newkind")[0]
    at.selectbox(key=root_kind).set_value(kind).run()
    before = set(node_ids(at, ":rm"))
    at.button(key=root_kind.replace(":newkind", ":add")).click().run()
    (added,) = set(node_ids(at, ":rm")) - before
    return added.split(":")[1]


def test_label_signal_offers_a_column_and_its_values_with_counts(jobs):
    at = open_page(PAGE)
    nid = _add_leaf(at, "label")
    column = at.selectbox(key=f"sig:{nid}:column")
    assert column.value == "label" and "text" not in column.options  # the text column is not a label
    values = at.multiselect(key=f"sig:{nid}:values:label")
    assert len(values.options) == 2 and all(" rows)" in option for option in values.options)  # with counts
    values.set_value(["1"]).run()
    signal = at.session_state["tb_config"].data.curation.signal
    assert signal == {"op": "and", "children": [{"kind": "label", "values": ["1"]}]}
    counts = [m for m in texts(at.markdown) if m.endswith("rows pass")]
    assert counts and all(not c.startswith("0 of") for c in counts)  # "positive" typed by hand matched 0
    at.selectbox(key=f"sig:{nid}:column").set_value("brand").run()
    brands = at.multiselect(key=f"sig:{nid}:values:brand")
    assert any(option.startswith("Nike (") for option in brands.options)
    brands.set_value(["Nike"]).run()
    assert at.session_state["tb_config"].data.curation.signal["children"][0] == {
        "kind": "label", "values": ["Nike"], "column": "brand"}
    assert not at.exception


def test_confidence_signal_picks_a_finished_run(jobs, runs_root):
    from tests.support import make_run

    run_id = make_run(runs_root, task="classification", strategy="lora")
    at = open_page(PAGE)
    nid = _add_leaf(at, "confidence")
    picker = at.selectbox(key=f"sig:{nid}:modelrun")
    assert picker.value == run_id  # offered by id, not typed
    assert text.SIGNAL_MODEL_OTHER in picker.options
    assert at.session_state["tb_config"].data.curation.signal["children"][0]["model"] == run_id
    picker.set_value(text.SIGNAL_MODEL_OTHER).run()
    at.text_input(key=f"sig:{nid}:model").set_value("/models/mine").run()
    assert at.session_state["tb_config"].data.curation.signal["children"][0]["model"] == "/models/mine"


def test_an_incomplete_signal_is_named_by_its_place_in_the_tree(jobs):
    at = open_page(PAGE)
    _add_leaf(at, "keywords")
    second = _add_leaf(at, "regex")  # the second signal of the root group, left empty
    notes = [c for c in texts(at.caption) if "Incomplete" in c and "pattern" in c.lower()]
    assert notes and "Signal 2" in notes[0], texts(at.caption)
    assert "Signal node 0" not in " ".join(texts(at.caption))
    assert second


def test_the_signal_tree_and_its_result_survive_a_page_change(jobs):
    at = open_page(PAGE)
    at.button(key="tb_data_example").click().run()
    at.button(key="tb_data_curate").click().run()
    signal = at.session_state["tb_config"].data.curation.signal
    at.switch_page("pages/setup.py").run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.session_state["tb_config"].data.curation.signal == signal
    assert len([m for m in texts(at.markdown) if m.endswith("rows pass")]) == 4  # the tree is drawn again
    assert text.CURATE_STALE not in texts(at.info)  # the kept result still matches the tree
    assert text.ROWS_KEPT in {m.label for m in at.metric}
