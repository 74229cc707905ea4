"""AppTest: the router, the sidebar and the Setup page (form, validation, uploads, YAML, Start)."""

from __future__ import annotations

import yaml

from core.config import RunConfig
from core.present import text
from tests.support import (
    all_text,
    app,
    make_run,
    texts,
    wait_for,
)


def key(path: str, *extra: str, gen: int = 0) -> str:
    suffix = "".join(f"/{part}" for part in extra)
    return f"cfg:{path}{suffix}@{gen}"


def setup_page(jobs):
    at = app().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_router_shows_setup_with_defaults_and_sidebar(jobs):
    at = setup_page(jobs)
    assert at.title[0].value == text.SETUP_TITLE
    # The default config is valid and ready to start the seed demo.
    assert text.CONFIG_OK in texts(at.success)
    assert not at.button(key="tb_setup_start").disabled
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[text.PARAMS_TOTAL].endswith("M")  # the bundled MiniLM, estimated without weights
    assert metrics[text.ESTIMATE].startswith("about")
    sidebar = "\n".join(texts(at.sidebar.caption))
    assert text.SIDEBAR_NO_RUN in sidebar
    assert "CPU" in sidebar or "GPU" in sidebar or "NVIDIA" in sidebar
    # Help texts come from the RunConfig field metadata.
    assert at.number_input(key=key("training.batch_size")).help.startswith("Examples per step")


def test_sidebar_shows_the_selected_run(jobs, runs_root):
    run_id = make_run(runs_root, status="completed")
    at = app({"run": run_id}).run()
    assert run_id in texts(at.sidebar.caption)
    assert at.sidebar.get("progress")


def test_validation_error_appears_next_to_its_widget(jobs):
    at = setup_page(jobs)
    at.number_input(key=key("training.batch_size")).set_value(0).run()
    errors = [e for e in texts(at.error) if "training.batch_size" in e]
    assert len(errors) == 2  # under the widget, and in the summary next to Start
    assert at.button(key="tb_setup_start").disabled
    assert not at.exception


def test_strategy_knobs_follow_the_strategy(jobs):
    at = setup_page(jobs)
    at.selectbox(key=key("strategy.name")).set_value("lora").run()
    labels = [w.label for w in at.number_input]
    assert text.LORA_R in labels and text.LORA_ALPHA in labels
    assert at.get("toggle")  # merge on export
    at.selectbox(key=key("strategy.name")).set_value("freeze-layers").run()
    labels = [w.label for w in at.number_input]
    assert text.FREEZE_LAYERS in labels and text.LORA_R not in labels
    assert not at.exception


def test_uploaded_csv_is_previewed_and_stored_safely(jobs, isolated_runs):
    at = setup_page(jobs)
    at.radio(key=key("data.source")).set_value("file").run()
    csv = b"text,label\nNike shoes are great,1\nAdidas socks are awful,0\n"
    at.file_uploader(key=key("data.upload")).upload("../../My Reviews!.csv", csv, "text/csv")
    at.run()
    assert not at.exception
    assert at.dataframe, "a preview of the upload"
    uploads = isolated_runs.parent / "uploads"
    stored = list(uploads.iterdir())
    assert len(stored) == 1 and stored[0].name.endswith("My_Reviews_.csv")
    assert stored[0].read_bytes() == csv
    assert at.selectbox(key=key("data.text_column", "text|label")).value == "text"
    # Two rows: one trains, one is held out, so a batch of 32 cannot be filled.
    assert any("Only 1 training rows" in e for e in texts(at.error)), texts(at.error)
    at.number_input(key=key("training.batch_size")).set_value(1).run()
    assert text.CONFIG_OK in texts(at.success)


def review_csv(rows: int = 60, labels=("positive", "negative")) -> bytes:
    lines = ["id,review,sentiment"]
    for i in range(rows):
        lines.append(f"{i},Review number {i} of these Nike shoes,{labels[i % len(labels)]}")
    return ("\n".join(lines) + "\n").encode()


def upload(at, name: str, content: bytes, task: str = "classification"):
    at.radio(key=key("task")).set_value(task).run()
    at.radio(key=key("data.source")).set_value("file").run()
    at.file_uploader(key=key("data.upload")).upload(name, content, "text/csv")
    return at.run()


def test_review_and_sentiment_columns_are_found_without_touching_the_pickers(jobs):
    at = upload(setup_page(jobs), "reviews.csv", review_csv())
    assert not at.exception, [e.value for e in at.exception]
    columns = "id|review|sentiment"
    text_picker = at.selectbox(key=key("data.text_column", columns))
    label_picker = at.selectbox(key=key("data.label_column", columns))
    assert (text_picker.value, label_picker.value) == ("review", "sentiment")
    # Only columns the file has are offered: no phantom 'text' or 'label'.
    assert text_picker.options == ["id", "review", "sentiment"] == label_picker.options
    assert text.CONFIG_OK in texts(at.success), texts(at.error)
    assert not at.button(key="tb_setup_start").disabled
    cfg = at.session_state["tb_config"]
    assert (cfg.data.text_column, cfg.data.label_column) == ("review", "sentiment")


def test_an_explicit_column_choice_sticks_across_reruns(jobs):
    at = upload(setup_page(jobs), "reviews.csv", review_csv())
    columns = "id|review|sentiment"
    at.selectbox(key=key("data.label_column", columns)).set_value("id").run()
    at.number_input(key=key("training.batch_size")).set_value(8).run()
    at.run()
    assert at.selectbox(key=key("data.label_column", columns)).value == "id"
    assert at.session_state["tb_config"].data.label_column == "id"


def test_a_one_class_label_column_is_refused_before_start_with_its_classes_drawn(jobs):
    at = upload(setup_page(jobs), "one-class.csv", review_csv(labels=("positive",)))
    assert not at.exception
    errors = [e for e in texts(at.error) if "single class" in e and "'positive', 60 rows" in e]
    assert len(errors) == 2, texts(at.error)  # under the label picker, and next to Start
    assert at.button(key="tb_setup_start").disabled
    assert text.CONFIG_OK not in texts(at.success)
    assert at.get("plotly_chart"), "the label column's classes as a bar chart"


def test_label_classes_are_drawn_for_classification(jobs):
    at = setup_page(jobs)
    assert not at.get("plotly_chart")  # masked-LM has no labels
    at.radio(key=key("task")).set_value("classification").run()
    assert not at.exception
    assert at.get("plotly_chart")
    assert any("2 classes in" in c for c in texts(at.caption)), texts(at.caption)
    assert text.CONFIG_OK in texts(at.success)


def test_too_few_rows_for_a_batch_is_shown_under_the_batch_size(jobs):
    at = upload(setup_page(jobs), "small.csv", review_csv(rows=20))
    errors = [e for e in texts(at.error) if "Only 18 training rows" in e]
    assert len(errors) == 2, texts(at.error)
    assert at.button(key="tb_setup_start").disabled
    at.number_input(key=key("training.batch_size")).set_value(16).run()
    assert text.CONFIG_OK in texts(at.success), texts(at.error)


def test_a_fresh_file_step_guides_instead_of_scolding(jobs):
    at = setup_page(jobs)
    at.radio(key=key("data.source")).set_value("file").run()
    assert not at.exception
    assert not at.error, texts(at.error)
    assert text.DATA_PATH_HINTS["file"] in texts(at.info)
    assert at.button(key="tb_setup_start").disabled
    # Once the user has typed a path and cleared it, the missing file is an error.
    at.text_input(key=key("data.path")).set_value("x").run()
    at.text_input(key=key("data.path")).set_value("").run()
    assert any("needs a file" in e for e in texts(at.error))


def test_a_probe_without_mask_is_shown_next_to_the_probes_before_start(jobs):
    at = setup_page(jobs)
    at.radio(key=key("data.source")).set_value("file").run()
    at.text_area(key=key("probes.texts", "mlm")).set_value("Nike shoes are very comfortable").run()
    errors = [e for e in texts(at.error) if "has no [MASK]" in e]
    assert len(errors) == 2, texts(at.error)  # under the probes, and next to Start
    assert at.button(key="tb_setup_start").disabled
    assert not any("needs a file" in e for e in texts(at.error))  # still a hint: not touched yet


def test_empty_and_broken_uploads_show_errors_not_tracebacks(jobs):
    at = setup_page(jobs)
    at.radio(key=key("data.source")).set_value("file").run()
    uploader = at.file_uploader(key=key("data.upload"))
    uploader.upload("empty.csv", b"", "text/csv")
    at.run()
    assert any("empty.csv is empty" in e for e in texts(at.error))
    assert not at.exception
    at.file_uploader(key=key("data.upload")).set_value(("header.csv", b"text,label\n", "text/csv"))
    at.run()
    assert any("header.csv has a header" in e for e in texts(at.error)), texts(at.error)
    assert not at.exception
    # Streamlit refuses other extensions itself; a binary file disguised as CSV is refused by core.
    at.file_uploader(key=key("data.upload")).set_value(("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00binary", "text/csv"))
    at.run()
    assert at.error and not at.exception
    assert at.button(key="tb_setup_start").disabled


def test_config_yaml_round_trip_and_bad_yaml(jobs):
    at = setup_page(jobs)
    assert at.get("download_button"), "Download config.yaml"
    cfg = RunConfig(task="classification", name="from-yaml")
    cfg.training.batch_size = 8
    cfg.strategy.name = "lora"
    at.file_uploader(key="tb_setup_yaml").upload("run.yaml", cfg.to_yaml().encode(), "application/x-yaml")
    at.run()
    assert not at.exception
    assert at.session_state["tb_config"].name == "from-yaml"
    assert at.number_input(key=key("training.batch_size", gen=1)).value == 8
    assert at.radio(key=key("task", gen=1)).value == "classification"
    assert text.LORA_R in [w.label for w in at.number_input]

    at.file_uploader(key="tb_setup_yaml").set_value(("bad.yaml", b"training: [unclosed\n  - x: 1", "application/x-yaml"))
    at.run()
    assert any("not valid YAML" in e for e in texts(at.error))
    at.file_uploader(key="tb_setup_yaml").set_value(
        ("typo.yaml", yaml.safe_dump({"training": {"batchsize": 4}}).encode(), "application/x-yaml")
    )
    at.run()
    assert any("training.batchsize" in e for e in texts(at.error))
    assert not at.exception


def test_start_submits_and_opens_train(jobs, trainer):
    at = setup_page(jobs)
    at.text_input(key=key("name")).set_value("ui-start").run()
    at.button(key="tb_setup_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = at.query_params.get("run")
    assert run_id and run_id in [r.run_id for r in jobs.list_runs()]
    assert at.title[0].value == text.TRAIN_TITLE
    assert wait_for(lambda: jobs.snapshot(run_id).status == "completed")
    assert jobs.config(run_id).name == "ui-start"


def test_submission_errors_are_shown_inline(jobs, monkeypatch):
    from core.errors import DataError

    def refuse(cfg):
        raise DataError("Data file x.csv does not exist: upload it again or fix the path.", field="data.path")

    monkeypatch.setattr(jobs, "_preflight_fn", refuse)
    at = setup_page(jobs)
    at.button(key="tb_setup_start").click().run()
    assert not at.exception
    assert any("x.csv does not exist" in e for e in texts(at.error))
    assert at.title[0].value == text.SETUP_TITLE


def test_uncached_hub_model_is_explained(jobs):
    at = setup_page(jobs)
    at.radio(key=key("model.source", "kind")).set_value("hub").run()
    at.text_input(key=key("model.source", "hub")).set_value("someone/not-a-cached-model").run()
    assert not at.exception
    assert "not cached" in all_text(at)
    # Resolving the model is part of validation: the reason sits under the model widget.
    assert any("not in the local Hugging Face cache" in e for e in texts(at.error))
    assert at.button(key="tb_setup_start").disabled
