"""AppTest: Setup's probes follow the task and the data, stay editable, and the user's own win."""

from __future__ import annotations

from core.data.probe_texts import run_probe_texts
from core.present import text
from tests.support import texts
from tests.test_app_setup import key, setup_page

HEADLINES = [("Stocks rally as the central bank holds rates", "business"), ("Striker signs for a record fee", "sports"),
             ("Parliament passes the budget bill", "politics"), ("Chipmaker unveils a faster processor", "tech")]
CSV = ("text,label,human\n" + "".join(f"{t} {i},{label},{label}\n" for i in range(20) for t, label in HEADLINES)).encode()
COLUMNS = "text|label|human"


def upload_news(at, task: str):
    at.radio(key=key("task")).set_value(task).run()
    at.radio(key=key("data.source")).set_value("file").run()
    at.file_uploader(key=key("data.upload")).upload("news.csv", CSV, "text/csv")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_classification_probes_are_texts_of_the_data_one_per_class(jobs):
    at = upload_news(setup_page(jobs), "classification")
    shown = at.text_area(key=key("probes.texts", "classification")).value.splitlines()
    assert shown == [f"{t} 0" for t, _ in HEADLINES]
    assert not any("Nike" in line for line in shown)
    assert text.PROBE_TEXTS_FROM_DATA["classification"] in texts(at.caption)
    assert text.PROBE_TOP_K["classification"] in [w.label for w in at.number_input]
    cfg = at.session_state["tb_config"]
    assert cfg.probes.texts is None and run_probe_texts(cfg) == shown  # what the engine scores at Start


def test_sft_probes_are_the_datas_prompts_and_have_no_top_k(jobs):
    at = upload_news(setup_page(jobs), "sft")
    value = at.text_area(key=key("probes.texts", "sft")).value
    assert value.startswith("Classify the text into one of: business, politics, sports, tech.")
    assert "\n---\n" in value  # prompts of several lines, one block each
    assert text.PROBE_ANSWERED in texts(at.caption)
    assert not any(label in [w.label for w in at.number_input] for label in text.PROBE_TOP_K.values())
    cfg = at.session_state["tb_config"]
    assert cfg.probes.texts is None and len(run_probe_texts(cfg)) == 3


def test_the_users_probes_survive_a_change_of_data(jobs):
    at = setup_page(jobs)
    at.radio(key=key("task")).set_value("classification").run()
    synthetic = at.text_area(key=key("probes.texts", "classification")).value
    assert "Nike" in synthetic or "made by" in synthetic  # the synthetic reviews' own texts
    at.text_area(key=key("probes.texts", "classification")).set_value("my headline\nanother one").run()
    at.radio(key=key("data.source")).set_value("file").run()
    at.file_uploader(key=key("data.upload")).upload("news.csv", CSV, "text/csv")
    at.run()
    assert at.text_area(key=key("probes.texts", "classification")).value == "my headline\nanother one"
    assert at.session_state["tb_config"].probes.texts == ["my headline", "another one"]


def test_probes_left_alone_follow_a_new_file(jobs):
    at = setup_page(jobs)
    at.radio(key=key("task")).set_value("classification").run()
    before = at.text_area(key=key("probes.texts", "classification")).value
    at = upload_news(at, "classification")
    after = at.text_area(key=key("probes.texts", "classification")).value
    assert after != before and after.startswith(HEADLINES[0][0])
    assert at.session_state["tb_config"].probes.texts is None


def test_a_presets_prompts_of_several_lines_survive_the_editor(jobs):
    """The news demo's probes are prompts of several lines: one per line, the editor split each into three."""
    from core.plan.presets import preset_config

    at = setup_page(jobs)
    at.button(key="tb_setup_demo_news").click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.run()  # a rerun reads the probes back from their editor
    expected = preset_config("news").probes.texts
    assert at.session_state["tb_config"].probes.texts == expected
    assert text.PROBE_TEXTS_SEPARATOR_HINT in texts(at.caption)
